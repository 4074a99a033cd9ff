# thinctl: build, test and demo targets. `make help` lists them.

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
export CGO_ENABLED := 0

GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
LDFLAGS   := -X main.version=$(VERSION)
# BIN is where make build writes the release binary (cmd/thinctl's
# release_test.go builds it elsewhere with BIN=...). The release build has
# no failpoints; every test rig builds with -tags failpoints instead.
BIN       := bin/thinctl
PKGDIR    ?= bin/pkg
# The containerd snapshotter (a separate Go module, containerd/) is built
# next to thinctl.
SNAPSHOTTER_BIN ?= $(abspath $(dir $(BIN)))/thinctl-snapshotter
# So is the CSI driver (csi/, docs/csi.md).
CSI_BIN ?= $(abspath $(dir $(BIN)))/thinctl-csi
FUZZTIME  ?= 10s
FUZZPKGS  ?=
# FuzzApplyTar (layer archives against a sentinel outside the layer): how
# long make test runs it, and how long make fuzz runs it on top of FUZZTIME.
FUZZAPPLY_TEST ?= 30s
FUZZAPPLY_LONG ?= 10m
BENCHFLAGS ?=
VMFLAGS   ?=
DEMO      ?= tests/vm/demo/demo.sh
# The power cut across reboots (tests/reliability/reboot_vm_test.go): N steps
# take N+1 boots; tests/reliability/testdata/full cuts every step but pool init.
POWERCUT_BOOTS ?= $(if $(wildcard tests/reliability/testdata/full),40,4)
POWERCUTFLAGS ?=
# Flags for tests/vagrant/run.sh (make test-vagrant), e.g. --pkg ./dm --no-reboot.
VAGRANTFLAGS ?=
POWERCUT  := tests/vm/run.sh --pkg ./tests/reliability --pkg ./cmd/thinctl --run '^TestReliabilityPowerCutReboot$$' \
	--no-udev --max-boots $(POWERCUT_BOOTS) --timeout 15m

.PHONY: help build test test-host rpm deb dist test-packaging test-vm test-powercut test-vagrant test-native demo demo-native bench bench-native fuzz vet fmt-check vagrant-check clean distclean

help:
	@echo "make build        static bin/thinctl, bin/thinctl-snapshotter and bin/thinctl-csi (CGO_ENABLED=0, version $(VERSION), no failpoints)"
	@echo "make test         host unit tests, the VM suite without and with udev, a real Docker on devicemapper, the power cut across reboots, the packages, the Vagrant VM, the Vagrantfile check"
	@echo "make test-host    host unit tests only (go test ./...)"
	@echo "make test-vm      the VM suite only (tests/vm/run.sh --both; VMFLAGS=... adds flags)"
	@echo "make test-powercut  thinctl frozen at failpoints, the guest's power cut, checked in the next boot (POWERCUTFLAGS=...)"
	@echo "make test-vagrant the integration tests, the demo and a reboot in a throwaway Vagrant VM (Debian box, libvirt, TCG; VAGRANTFLAGS=...)"
	@echo "make test-native  the integration suite on this host (root, kernel with device-mapper)"
	@echo "make demo         build, then run $(DEMO) in the VM"
	@echo "make demo-native  run $(DEMO) on this host (root, device-mapper)"
	@echo "make bench        benchmarks in the VM;  make bench-native: on this host"
	@echo "make fuzz         every Fuzz target (or those of FUZZPKGS=./pkg ...) for FUZZTIME=$(FUZZTIME) each, then FuzzApplyTar for FUZZAPPLY_LONG=$(FUZZAPPLY_LONG)"
	@echo "make rpm / deb    packages in $(PKGDIR) from bin/thinctl (rpmbuild / dpkg-deb; docs/packaging.md)"
	@echo "make dist         the source tarball a RHEL-style host builds the RPM from (rpmbuild -ta)"
	@echo "make test-packaging  build both packages and check contents, scriptlets, installs and the units"
	@echo "make vet / fmt-check"

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/thinctl
	cd containerd && $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(SNAPSHOTTER_BIN) ./cmd/thinctl-snapshotter
	cd csi && $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(CSI_BIN) ./cmd/thinctl-csi

# test runs the host suite and the VM suite and ends with a summary of both.
test:
	@set -o pipefail; log="$$(mktemp -d)"; \
	echo "=== host unit tests: go test -count=1 ./... (and -tags failpoints ./internal/failpoint and the registry migration, and the containerd and csi modules) ==="; \
	$(GO) test -count=1 ./... 2>&1 | tee "$$log/host"; host=$${PIPESTATUS[0]}; \
	$(GO) test -count=1 -tags failpoints ./internal/failpoint 2>&1 | tee -a "$$log/host"; [ $${PIPESTATUS[0]} -eq 0 ] || host=1; \
	$(GO) test -count=1 -tags failpoints -run Migrat ./thinpool/... 2>&1 | tee -a "$$log/host"; [ $${PIPESTATUS[0]} -eq 0 ] || host=1; \
	(cd containerd && $(GO) test -count=1 ./...) 2>&1 | tee -a "$$log/host"; [ $${PIPESTATUS[0]} -eq 0 ] || host=1; \
	(cd csi && $(GO) test -count=1 ./...) 2>&1 | tee -a "$$log/host"; [ $${PIPESTATUS[0]} -eq 0 ] || host=1; \
	echo "=== FuzzApplyTar, the sentinel oracle, for $(FUZZAPPLY_TEST) ==="; \
	FUZZ_TARGETS='^FuzzApplyTar$$' FUZZ_MINIMIZE=3s tests/reliability/fuzz.sh $(FUZZAPPLY_TEST) ./driver 2>&1 | tee "$$log/fuzz"; fz=$${PIPESTATUS[0]}; \
	v1gen=; if thinpool/testdata/v1gen/build.sh "$$log/thinctl-v1gen"; then v1gen="--extra-bin $$log/thinctl-v1gen"; \
	else echo "make test: thinctl-v1gen (the version 1 release's library) did not build; TestALiveVersion1RootIsMigratedByOpen will skip"; fi; \
	echo "=== VM suite: tests/vm/run.sh --both $$v1gen $(VMFLAGS) ==="; \
	tests/vm/run.sh --both $$v1gen $(VMFLAGS) 2>&1 | tee "$$log/vm"; vm=$${PIPESTATUS[0]}; \
	echo "=== real Docker on devicemapper stores: tests/vm/run.sh --docker --no-udev --pkg ./tests/docker ==="; \
	$(GO) build -trimpath -o "$$log/thinctl" ./cmd/thinctl && \
	tests/vm/run.sh --docker --no-udev --pkg ./tests/docker --extra-bin "$$log/thinctl" 2>&1 | tee "$$log/docker"; dk=$${PIPESTATUS[0]}; \
	echo "=== power cut across reboots: $(POWERCUT) ==="; \
	$(POWERCUT) $(POWERCUTFLAGS) 2>&1 | tee "$$log/cut"; cut=$${PIPESTATUS[0]}; \
	echo "=== packaging: make test-packaging ==="; \
	$(MAKE) --no-print-directory test-packaging 2>&1 | tee "$$log/pkg"; pkg=$${PIPESTATUS[0]}; \
	echo "=== Vagrant VM: tests/vagrant/run.sh $(VAGRANTFLAGS) ==="; \
	tests/vagrant/run.sh $(VAGRANTFLAGS) 2>&1 | tee "$$log/vagrant"; vagr=$${PIPESTATUS[0]}; \
	$(MAKE) --no-print-directory vagrant-check; vag=$$?; \
	echo; echo "=== make test summary ==="; \
	echo "host (go test ./..., exit $$host): $$(grep -c '^ok' "$$log/host") packages ok," \
		"$$(grep -c '^FAIL'$$'\t' "$$log/host") failed, $$(grep -c 'no test files' "$$log/host") without tests"; \
	grep -a '^fuzz.sh: ' "$$log/fuzz" | sed 's/^fuzz.sh:/FuzzApplyTar:/' | grep . || echo "FuzzApplyTar: no result (exit $$fz)"; \
	grep -a -E '^VM \(.*boot\+run' "$$log/vm" || echo "VM suite: no result (exit $$vm)"; \
	grep -a -E '^VM: ' "$$log/vm" | tail -1; \
	grep -a -E '^VM \(.*boot\+run' "$$log/cut" | sed 's/^VM/power cut across reboots:/' | grep . || \
		echo "power cut across reboots: no result (exit $$cut)"; \
	grep -a -E '^power cut across reboots: [0-9]+ points' "$$log/cut" | tail -1; \
	grep -a -E '^VM \(.*boot\+run' "$$log/docker" | sed 's/^VM/real Docker:/' | grep . || echo "real Docker: no result (exit $$dk)"; \
	grep -a '^packaging: ' "$$log/pkg" | tail -1 | grep . || echo "packaging: no result (exit $$pkg)"; \
	grep -a -E '^vagrant \(' "$$log/vagrant" | tail -1 | grep . || echo "vagrant: no result (exit $$vagr)"; \
	grep -a -h -E '^VM \([a-z]+\) failed: ' "$$log/vm" "$$log/docker" "$$log/cut"; \
	grep -a -h -E '^--- FAIL: |^FAIL'$$'\t' "$$log/host" | sed 's/^/host failed: /'; \
	grep -a -h -E '^--- FAIL: ' "$$log/vagrant" | sed 's/^/vagrant failed: /'; \
	rm -rf "$$log"; \
	[ $$host -eq 0 ] && [ $$fz -eq 0 ] && [ $$vm -eq 0 ] && [ $$dk -eq 0 ] && [ $$cut -eq 0 ] && [ $$pkg -eq 0 ] && [ $$vagr -eq 0 ] && [ $$vag -eq 0 ]

test-host:
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -tags failpoints ./internal/failpoint
	cd containerd && $(GO) test -count=1 ./...
	cd csi && $(GO) test -count=1 ./...

# Packages (docs/packaging.md). Versions come from packaging/version.sh
# (git describe); the man pages and completion scripts from the binary.
rpm: build
	packaging/rpm/build.sh $(BIN) $(PKGDIR)

deb: build
	packaging/deb/build.sh $(BIN) $(PKGDIR)

dist:
	packaging/dist.sh $(PKGDIR)

# test-packaging builds the rpm, the deb and the RPM from the source tarball,
# checks them (packaging/test.sh) and ends with one line:
# "packaging: N checks passed, M failed (...) in Ns".
test-packaging: build
	packaging/test.sh $(BIN)

test-vm:
	tests/vm/run.sh --both $(VMFLAGS)

test-powercut:
	$(POWERCUT) $(POWERCUTFLAGS)

# test-vagrant boots the locally built Debian box with vagrant-libvirt inside a
# network namespace of its own and destroys it again (tests/vagrant/README.md).
test-vagrant:
	tests/vagrant/run.sh $(VAGRANTFLAGS)

test-native:
	@[ "$$(id -u)" -eq 0 ] || { echo "make test-native: run as root (it creates device-mapper and loop devices)"; exit 1; }
	@[ -e /dev/mapper/control ] || modprobe dm_mod 2>/dev/null || true
	@modprobe -a dm_thin_pool dm_zero loop 2>/dev/null || true
	THINCTL_UDEV=$$([ -e /run/udev/control ] && echo 1 || echo 0) $(GO) test -tags vm,failpoints -count=1 -p 1 ./...

# vagrant-check validates both branches of the Vagrantfile (AlmaLinux, and the
# local Debian box of make test-vagrant) offline, with a scratch VAGRANT_HOME.
vagrant-check:
	@if command -v vagrant >/dev/null 2>&1; then \
		echo "=== vagrant validate ==="; \
		tmp="$$(mktemp -d)"; \
		export VAGRANT_HOME="$$tmp/home" VAGRANT_DOTFILE_PATH="$$tmp/dot" VAGRANT_CHECKPOINT_DISABLE=1 \
			VAGRANT_BOX_UPDATE_CHECK_DISABLE=1; \
		{ vagrant validate >/dev/null 2>&1 && echo "Vagrantfile validated successfully." || \
			vagrant validate --ignore-provider; } && \
		THINCTL_VAGRANT_BOX=thinctl-check THINCTL_VAGRANT_SYNC="$$tmp" vagrant validate | \
			sed 's/^Vagrantfile validated successfully\./Vagrantfile (local Debian box) validated successfully./'; \
		rc=$${PIPESTATUS[0]}; rm -rf "$$tmp"; exit $$rc; \
	else \
		echo "vagrant not installed: skipping 'vagrant validate' of the Vagrantfile"; \
	fi

demo: build
	tests/vm/run.sh --script $(DEMO) $(VMFLAGS)

demo-native: build
	@[ "$$(id -u)" -eq 0 ] || { echo "make demo-native: run as root"; exit 1; }
	PATH="$(CURDIR)/bin:$$PATH" bash $(DEMO)

# bench runs the benchmark program in the VM (three boots: everything without
# udev, then the operation cost with udev, then containerd's devmapper
# snapshotter against thinctl-snapshotter; lvm2 and containerd from Debian's
# packages in the guest), rewrites docs/BENCHMARKS.md and docs/bench/ and ends with every
# target's value, goal and verdict; BENCHFLAGS=--quick uses small counts and
# writes to $$TMPDIR.
bench:
	tests/bench/run.sh $(BENCHFLAGS)

bench-native:
	@[ "$$(id -u)" -eq 0 ] || { echo "make bench-native: run as root (it creates device-mapper and loop devices)"; exit 1; }
	tests/bench/run.sh --native $(BENCHFLAGS)

fuzz:
	tests/reliability/fuzz.sh $(FUZZTIME) $(FUZZPKGS)
	FUZZ_TARGETS='^FuzzApplyTar$$' tests/reliability/fuzz.sh $(FUZZAPPLY_LONG) ./driver

vet:
	$(GO) vet ./...
	$(GO) vet -tags vm,failpoints ./...
	cd containerd && $(GO) vet ./... && $(GO) vet -tags vm,failpoints ./...
	cd csi && $(GO) vet ./... && $(GO) vet -tags vm,failpoints ./...

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi; echo "gofmt: ok"

clean:
	rm -rf bin

# distclean also drops the VM rig's cache (kernel package, base initramfs).
distclean: clean
	rm -rf tests/vm/.cache

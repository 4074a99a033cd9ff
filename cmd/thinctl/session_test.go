package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	dmdriver "github.com/thinctl/thinctl/driver/devicemapper"
	"github.com/thinctl/thinctl/overlayfallback/overlay2"
)

// overlayHarness returns a harness whose commands run on overlay2 in a
// fresh temp root, skipping when this host cannot run overlay2.
func overlayHarness(t *testing.T) *harness {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("overlay2 mounts need root")
	}
	h := newHarness(t)
	if _, err := (overlay2.Backend{}).Probe(t.TempDir()); err != nil {
		t.Skipf("overlay2 cannot run here: %v", err)
	}
	t.Cleanup(func() { h.rooted("--driver", "overlay2", "pool", "destroy", "--force") })
	return h
}

// hostFacts hides the lines of overlay2's status that depend on the host
// (backing filesystem, native diff, quota support) from golden files;
// hostSpace hides the gauge of the filesystem holding the home, whose
// width changes with its numbers.
var (
	hostFacts = regexp.MustCompile(`(?m)^(Backing Filesystem|Native Overlay Diff|Size Quota):(\s+)\S+$`)
	hostSpace = regexp.MustCompile(`(?m)^Data%:\s+\d.*$`)
)

func (h *harness) text(r result) string {
	out := hostFacts.ReplaceAllString(h.normalize(r.stdout), "$1:$2<host>")
	return hostSpace.ReplaceAllString(out, "Data%:  <the home's filesystem>")
}

// ov runs a command with --driver overlay2 that must succeed.
func (h *harness) ov(args ...string) result {
	h.t.Helper()
	return h.must(append([]string{"--driver", "overlay2"}, args...)...)
}

// ovFails runs a command with --driver overlay2 that must fail with code
// and a stderr containing each of want.
func (h *harness) ovFails(code int, args []string, want ...string) result {
	h.t.Helper()
	r := h.rooted(append([]string{"--driver", "overlay2"}, args...)...)
	if r.code != code {
		h.t.Fatalf("thinctl %s: exit %d, want %d\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			h.t.Fatalf("thinctl %s: stderr lacks %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
	if !strings.HasPrefix(r.stderr, "thinctl: ") {
		h.t.Fatalf("thinctl %s: stderr does not start with \"thinctl: \":\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// ovJSON runs a -o json command and decodes its one document into v.
func (h *harness) ovJSON(v interface{}, args ...string) {
	h.t.Helper()
	r := h.ov(append([]string{"-o", "json"}, args...)...)
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		h.t.Fatalf("thinctl -o json %s: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
	if dec.More() {
		h.t.Fatalf("thinctl -o json %s printed more than one document:\n%s", strings.Join(args, " "), r.stdout)
	}
}

// TestEveryCommandOnOverlay2 runs the whole command set against overlay2
// in-process: text output against golden files, JSON decoded strictly,
// and each failure with its exit status and hint.
func TestEveryCommandOnOverlay2(t *testing.T) {
	h := overlayHarness(t)

	golden(t, "overlay2_pool_init", h.text(h.ov("pool", "init")))
	if _, err := os.Stat(filepath.Join(h.root, "overlay2")); err != nil {
		t.Fatalf("pool init made no driver home: %v", err)
	}
	h.ovFails(1, []string{"pool", "init"}, "already initialized", "hint: use the existing pool")

	golden(t, "overlay2_pool_status_empty", h.text(h.ov("pool", "status")))
	var st poolStatus
	h.ovJSON(&st, "pool", "status")
	var fsst unix.Statfs_t
	if err := unix.Statfs(filepath.Join(h.root, "overlay2"), &fsst); err != nil {
		t.Fatal(err)
	}
	total := fsst.Blocks * uint64(fsst.Bsize)
	if st.Driver != "overlay2" || st.DriverReason != "chosen with --driver" || st.State != "rw" || st.Devices != 0 ||
		st.DataTotalBytes != total || st.DataUsedBytes == 0 || st.DataUsedBytes > total ||
		st.PoolName != "" || st.MetadataTotalBytes != 0 {
		t.Fatalf("pool status: %+v\nwant overlay2, chosen with --driver, rw, no devices, the %d bytes of the home's filesystem", st, total)
	}

	golden(t, "overlay2_create_base", h.text(h.ov("create", "base")))
	golden(t, "overlay2_create_app", h.text(h.ov("create", "app", "--parent", "base")))
	h.ovFails(1, []string{"create", "app"}, "create app: overlay2 layer app: already exists", "hint: choose another ID")
	h.ovFails(1, []string{"create", "orphan", "--parent", "nosuch"}, "parent layer nosuch of orphan: not found", "hint: 'thinctl --root ")

	basePath := strings.TrimSpace(h.ov("mount", "base").stdout)
	if err := os.WriteFile(filepath.Join(basePath, "in-base"), []byte("base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	appPath := strings.TrimSpace(h.ov("mount", "app").stdout)
	if appPath != filepath.Join(h.root, "overlay2", "app", "merged") {
		t.Fatalf("mount app printed %q", appPath)
	}
	if b, err := os.ReadFile(filepath.Join(appPath, "in-base")); err != nil || string(b) != "base\n" {
		t.Fatalf("app does not see its parent's file: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(appPath, "in-app"), []byte("app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(basePath, "in-app")); !os.IsNotExist(err) {
		t.Fatalf("a file written in app shows in base (%v)", err)
	}

	golden(t, "overlay2_list", h.text(h.ov("list")))
	var list []deviceInfo
	h.ovJSON(&list, "list")
	if len(list) != 2 || list[0].ID != "app" || list[0].Parent != "base" || !list[0].Mounted ||
		list[0].MountPath != appPath || list[1].ID != "base" || list[1].Parent != "" {
		t.Fatalf("list: %+v", list)
	}
	golden(t, "overlay2_info_app", h.text(h.ov("info", "app")))
	var info deviceInfo
	h.ovJSON(&info, "info", "app")
	if info != list[0] {
		t.Fatalf("info app = %+v, list says %+v", info, list[0])
	}
	h.ovFails(1, []string{"info", "nosuch"}, `layer "nosuch": not found`, "list' shows the devices")

	// devicemapper-only commands and flags
	h.ovFails(1, []string{"pool", "grow", "--data-size", "1G"},
		"thinctl: pool grow: pool grow is only available with the devicemapper driver (current driver: overlay2)")
	h.ovFails(1, []string{"activate", "app"}, "activate is only available with the devicemapper driver (current driver: overlay2)")
	h.ovFails(1, []string{"deactivate", "app"}, "deactivate is only available with the devicemapper driver")
	h.ovFails(1, []string{"mount", "app", "--mount-opt", "ro"}, "--mount-opt is only available with the devicemapper driver")

	h.ovFails(1, []string{"pool", "down"}, "overlay2 layers still mounted: app (mounted at ", "hint: unmount the devices first")
	golden(t, "overlay2_unmount_app", h.text(h.ov("unmount", "app")))
	h.ov("unmount", "app") // not mounted: nothing to do, still fine
	var after deviceInfo
	h.ovJSON(&after, "info", "app")
	if after.Mounted {
		t.Fatalf("app is still mounted after unmount: %+v", after)
	}

	h.ovFails(1, []string{"remove", "base"}, "hint: remove its snapshots first")

	golden(t, "overlay2_check", h.text(h.ov("check")))
	var rep checkReport
	h.ovJSON(&rep, "check")
	if !rep.Consistent || rep.Problems == nil || len(rep.Problems) != 0 {
		t.Fatalf("check: %+v", rep)
	}
	golden(t, "overlay2_gc", h.text(h.ov("gc")))

	golden(t, "overlay2_pool_down", h.text(h.ov("pool", "down")))
	golden(t, "overlay2_pool_up", h.text(h.ov("pool", "up")))
	golden(t, "overlay2_pool_status", h.text(h.ov("pool", "status")))

	golden(t, "overlay2_remove_app", h.text(h.ov("remove", "app")))
	h.ovFails(1, []string{"pool", "destroy"}, "1 layer exists (base)", "hint: remove them first, or remove them with the pool: thinctl --root ")
	golden(t, "overlay2_pool_destroy", h.text(h.ov("pool", "destroy", "--force")))
	if _, err := os.Stat(filepath.Join(h.root, "overlay2")); !os.IsNotExist(err) {
		t.Fatalf("pool destroy left the driver home (%v)", err)
	}
	h.ovFails(1, []string{"list"}, "not initialized", "hint: create it first")
}

// TestAutoPicksOverlay2WithoutDeviceMapper runs on a host whose kernel
// lacks device-mapper (like the build machines).
func TestAutoPicksOverlay2WithoutDeviceMapper(t *testing.T) {
	h := overlayHarness(t)
	if _, err := (dmdriver.Backend{}).Probe(h.root); err == nil {
		t.Skip("this kernel has dm-thin-pool; auto would pick devicemapper")
	}
	out := h.must("pool", "init").stdout
	if !strings.Contains(out, "Driver: overlay2 (devicemapper unavailable: ") {
		t.Fatalf("pool init with auto printed:\n%s", out)
	}
	var st poolStatus
	r := h.must("-o", "json", "pool", "status")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.Driver != "overlay2" || st.DriverReason != filepath.Join(h.root, "overlay2")+" already exists" {
		t.Fatalf("auto then keeps %q because %q", st.Driver, st.DriverReason)
	}
}

// TestANamedDriverThatCannotRunFailsWithoutAFallback asks for
// devicemapper on a kernel without it: an error naming the missing kernel
// support and what auto would pick, and nothing written.
func TestANamedDriverThatCannotRunFailsWithoutAFallback(t *testing.T) {
	h := newHarness(t)
	if _, err := (dmdriver.Backend{}).Probe(h.root); err == nil {
		t.Skip("this kernel has dm-thin-pool")
	}
	r := h.rooted("--driver", "devicemapper", "pool", "init", "--data-size", "1G")
	if r.code != 1 || !strings.Contains(r.stderr, "hint: this kernel lacks dm-thin-pool (try: modprobe dm-thin-pool); --driver auto would pick overlay2") {
		t.Fatalf("--driver devicemapper pool init without dm: exit %d\n%s", r.code, r.stderr)
	}
	r = h.rooted("--driver", "devicemapper", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "hint: create it first") {
		t.Fatalf("--driver devicemapper on a root without a pool: exit %d\n%s", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(h.root); len(ents) != 0 {
		t.Fatalf("a failed devicemapper init left state under the root: %v", ents)
	}
}

func TestVersion(t *testing.T) {
	h := newHarness(t)
	h.euid = 1000 // needs no root
	r := h.run("version")
	if r.code != 0 {
		t.Fatalf("version: exit %d\n%s", r.code, r.stderr)
	}
	golden(t, "version", strings.ReplaceAll(r.stdout, runtime.Version(), "goX"))
	r = h.run("version", "-o", "json")
	var v versionInfo
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v.Version == "" || v.GoVersion != runtime.Version() || v.Kernel != "6.1.0-test-amd64" {
		t.Fatalf("version -o json: %+v", v)
	}
}

func TestHelpGoesToStdoutAndExitsZero(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"--help shows the command list", []string{"--help"}, "Commands:"},
		{"-h is --help", []string{"-h"}, "Commands:"},
		{"a command's --help shows its usage", []string{"create", "--help"}, "Usage: thinctl create ID [--parent ID] [--size SIZE]"},
		{"--help after arguments still helps", []string{"create", "web", "--help"}, "Usage: thinctl create ID"},
		{"a group's --help lists its subcommands", []string{"pool", "--help"}, "Subcommands:"},
		{"--help before the command is the command's help", []string{"--help", "pool", "grow"}, "Usage: thinctl pool grow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.euid = 1000
			r := h.run(tt.args...)
			if r.code != 0 || !strings.Contains(r.stdout, tt.want) || r.stderr != "" {
				t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
		})
	}
	h := newHarness(t)
	golden(t, "help", h.run("--help").stdout)
	golden(t, "help_pool_init", h.run("pool", "init", "--help").stdout)
}

package plugin

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thinctl/thinctl/fs"
)

// ParamOverProvisioning is the StorageClass parameter that multiplies the
// free data space GetCapacity reports (a thin pool holds more than it has;
// 1, the default, reports only what is really free).
const ParamOverProvisioning = "overProvisioningRatio"

// k8sParamPrefix marks the parameters the external-provisioner adds itself
// (PVC name and namespace, with --extra-create-metadata): accepted and not
// compared.
const k8sParamPrefix = "csi.storage.k8s.io/"

const (
	maxParams        = 32
	maxParamKeyLen   = 253
	maxParamValueLen = 1024
	maxOverProvision = 1000
)

// volumeParams is what a volume's parameters say.
type volumeParams struct {
	overProvisioning float64
	canonical        string // the compared parameters, sorted "k=v" lines
}

// checkVolumeParams refuses unknown keys and bad values.
func checkVolumeParams(in map[string]string) (volumeParams, error) {
	vp := volumeParams{overProvisioning: 1}
	if len(in) > maxParams {
		return vp, status.Errorf(codes.InvalidArgument, "%d parameters: the limit is %d", len(in), maxParams)
	}
	var kept []string
	for k, v := range in {
		if err := checkParamSize(k, v); err != nil {
			return vp, err
		}
		switch {
		case strings.HasPrefix(k, k8sParamPrefix):
			continue
		case k == ParamOverProvisioning:
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) || f < 1 || f > maxOverProvision {
				return vp, status.Errorf(codes.InvalidArgument, "parameter %s=%.40q: give a number from 1 to %d", k, v, maxOverProvision)
			}
			vp.overProvisioning = f
		default:
			return vp, status.Errorf(codes.InvalidArgument, "unknown parameter %.60q: this driver takes only %s (and the %s* ones the provisioner adds)",
				k, ParamOverProvisioning, k8sParamPrefix)
		}
		kept = append(kept, k+"="+v)
	}
	sort.Strings(kept)
	vp.canonical = strings.Join(kept, "\n")
	return vp, nil
}

// checkSnapshotParams accepts only the provisioner's own parameters.
func checkSnapshotParams(in map[string]string) error {
	if len(in) > maxParams {
		return status.Errorf(codes.InvalidArgument, "%d parameters: the limit is %d", len(in), maxParams)
	}
	for k, v := range in {
		if err := checkParamSize(k, v); err != nil {
			return err
		}
		if !strings.HasPrefix(k, k8sParamPrefix) {
			return status.Errorf(codes.InvalidArgument, "unknown snapshot parameter %.60q: snapshots take none", k)
		}
	}
	return nil
}

func checkParamSize(k, v string) error {
	if len(k) == 0 || len(k) > maxParamKeyLen || len(v) > maxParamValueLen {
		return status.Errorf(codes.InvalidArgument, "parameter %.60q: keys are 1 to %d bytes and values at most %d", k, maxParamKeyLen, maxParamValueLen)
	}
	return nil
}

// volumeKind is what a set of capabilities asks for: a raw block device or
// a filesystem of one type.
type volumeKind struct {
	access string  // accessBlock or accessMount
	fs     fs.Type // for accessMount
}

// checkCapabilities refuses an empty list, a capability without an access
// type or mode, modes across nodes, a mix of block and mount, and a
// filesystem other than the pool's (every volume is a snapshot of the
// pool's base device, which carries that filesystem).
func checkCapabilities(caps []*csi.VolumeCapability, poolFS fs.Type) (volumeKind, error) {
	var k volumeKind
	if len(caps) == 0 {
		return k, status.Error(codes.InvalidArgument, "no volume capabilities: give at least one")
	}
	if len(caps) > 16 {
		return k, status.Errorf(codes.InvalidArgument, "%d volume capabilities: the limit is 16", len(caps))
	}
	for _, c := range caps {
		ck, err := checkCapability(c, poolFS)
		if err != nil {
			return k, err
		}
		if k.access != "" && k != ck {
			return k, status.Error(codes.InvalidArgument, "volume capabilities ask for both a block device and a filesystem (or two filesystems): give one")
		}
		k = ck
	}
	return k, nil
}

// checkCapability checks one capability (see checkCapabilities).
func checkCapability(c *csi.VolumeCapability, poolFS fs.Type) (volumeKind, error) {
	var k volumeKind
	if c == nil {
		return k, status.Error(codes.InvalidArgument, "a volume capability is empty")
	}
	switch m := c.GetAccessMode().GetMode(); m {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
	case csi.VolumeCapability_AccessMode_UNKNOWN:
		return k, status.Error(codes.InvalidArgument, "a volume capability has no access mode")
	default:
		return k, status.Errorf(codes.InvalidArgument, "access mode %s: a thin volume lives on one node; use a SINGLE_NODE mode", m)
	}
	switch {
	case c.GetBlock() != nil:
		k.access = accessBlock
	case c.GetMount() != nil:
		k.access = accessMount
		t := c.GetMount().GetFsType()
		if t != "" && fs.Type(t) != poolFS {
			return k, status.Errorf(codes.InvalidArgument, "fsType %.20q: this node's thin pool makes %s volumes (its base device's filesystem); "+
				"use %s or a pool made with the other --fs", t, poolFS, poolFS)
		}
		k.fs = poolFS
		if err := checkMountFlags(c.GetMount().GetMountFlags()); err != nil {
			return k, err
		}
	default:
		return k, status.Error(codes.InvalidArgument, "a volume capability has no access type: give block or mount")
	}
	return k, nil
}

// Mount flags a capability may carry: flags that change only how the
// filesystem behaves, never what is mounted where.
var allowedFlags = map[string]bool{
	"ro": true, "rw": true, "noatime": true, "relatime": true, "strictatime": true, "nodiratime": true,
	"lazytime": true, "nosuid": true, "nodev": true, "noexec": true, "sync": true, "dirsync": true,
	"discard": true, "nodiscard": true, "noquota": true, "usrquota": true, "grpquota": true, "prjquota": true,
	"nouuid": true, "errors=continue": true, "errors=remount-ro": true,
	"data=ordered": true, "data=journal": true, "data=writeback": true,
}

// Keys of key=value flags whose value is a small number.
var numericFlags = map[string]bool{"commit": true, "logbufs": true, "stripe": true, "inode_readahead_blks": true}

func checkMountFlags(flags []string) error {
	if len(flags) > 32 {
		return status.Errorf(codes.InvalidArgument, "%d mount flags: the limit is 32", len(flags))
	}
	for _, f := range flags {
		if allowedFlags[f] {
			continue
		}
		if k, v, ok := strings.Cut(f, "="); ok && numericFlags[k] {
			if n, err := strconv.ParseUint(v, 10, 32); err == nil && n < 1<<20 {
				continue
			}
		}
		return status.Errorf(codes.InvalidArgument, "mount flag %.40q is not one this driver passes on (it takes options like noatime, discard, data=..., commit=N)", f)
	}
	return nil
}

const (
	mib       = 1 << 20
	sizeAlign = 4 << 10
)

// volumeSize picks the size of a new volume: what was required, at least
// floor (the base device's or the source's size), rounded up to a MiB when
// that stays within the limit (4 KiB otherwise).
func volumeSize(cr *csi.CapacityRange, floor uint64) (uint64, error) {
	req, lim := cr.GetRequiredBytes(), cr.GetLimitBytes()
	if req < 0 || lim < 0 {
		return 0, status.Errorf(codes.InvalidArgument, "capacity range %d..%d: sizes are not negative", req, lim)
	}
	if lim != 0 && lim < req {
		return 0, status.Errorf(codes.InvalidArgument, "capacity range: limit %d is under the required %d", lim, req)
	}
	want := max(uint64(req), floor)
	size := roundUp(want, mib)
	if lim != 0 && size > uint64(lim) {
		size = roundUp(want, sizeAlign)
	}
	if lim != 0 && size > uint64(lim) {
		return 0, status.Errorf(codes.OutOfRange, "capacity limit %d is under %d, the smallest volume this pool makes here (its base device's or the source's size)", lim, size)
	}
	return size, nil
}

func roundUp(n, to uint64) uint64 { return (n + to - 1) / to * to }

// fits reports whether an existing volume of size satisfies cr.
func fits(size uint64, cr *csi.CapacityRange) bool {
	return size >= uint64(max(cr.GetRequiredBytes(), 0)) && (cr.GetLimitBytes() <= 0 || size <= uint64(cr.GetLimitBytes()))
}

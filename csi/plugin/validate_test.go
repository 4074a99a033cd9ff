package plugin

import (
	"math"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/pkg/errors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool"
)

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("code %v (%v), want %v", got, err, want)
	}
}

func TestHostileNamesAreRefusedAndNeverBecomeIDs(t *testing.T) {
	for _, name := range []string{"", strings.Repeat("a", maxNameLen+1), "bad\xff", "new\nline", "nul\x00", "del\x7f"} {
		wantCode(t, checkName("volume name", name), codes.InvalidArgument)
	}
	for _, name := range []string{"pvc-1", "../../etc/passwd", "ünïcode ✓", strings.Repeat("z", maxNameLen)} {
		if err := checkName("volume name", name); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		id := volumeID(name)
		if err := thinpool.ValidateID(id); err != nil || !isOurID(id, volumePrefix) || isOurID(id, snapshotPrefix) {
			t.Fatalf("%q -> %q: not a valid id of ours (%v)", name, id, err)
		}
	}
	if volumeID("a") == volumeID("b") || volumeID("a") != volumeID("a") {
		t.Fatal("ids are not a function of the name")
	}
}

func TestOnlyIDsOfOurShapeAreLookedUp(t *testing.T) {
	good := volumeID("x")
	for _, id := range []string{"", "base", "containerd-root", "../" + good, good + "0", strings.ToUpper(good),
		volumePrefix + strings.Repeat("g", hashHexLen), snapshotID("x")} {
		if isOurID(id, volumePrefix) {
			t.Errorf("%q taken as a volume id", id)
		}
	}
	if !isOurID(good, volumePrefix) {
		t.Fatal("our own id refused")
	}
}

func TestUnknownOrBadParametersAreRefused(t *testing.T) {
	bad := []map[string]string{
		{"fsType": "ext4"},
		{ParamOverProvisioning: "0.5"},
		{ParamOverProvisioning: "NaN"},
		{ParamOverProvisioning: "1e9"},
		{ParamOverProvisioning: "two"},
		{strings.Repeat("k", maxParamKeyLen+1): "v"},
		{"csi.storage.k8s.io/pvc/name": strings.Repeat("v", maxParamValueLen+1)},
	}
	many := map[string]string{}
	for i := 0; i <= maxParams; i++ {
		many["csi.storage.k8s.io/"+strings.Repeat("x", i+1)] = ""
	}
	bad = append(bad, many)
	for _, in := range bad {
		_, err := checkVolumeParams(in)
		wantCode(t, err, codes.InvalidArgument)
	}
	vp, err := checkVolumeParams(map[string]string{ParamOverProvisioning: "2.5", "csi.storage.k8s.io/pvc/name": "data"})
	if err != nil || vp.overProvisioning != 2.5 || vp.canonical != ParamOverProvisioning+"=2.5" {
		t.Fatalf("%+v %v", vp, err)
	}
	wantCode(t, checkSnapshotParams(map[string]string{"x": "y"}), codes.InvalidArgument)
	if err := checkSnapshotParams(map[string]string{"csi.storage.k8s.io/volumesnapshot/name": "s"}); err != nil {
		t.Fatal(err)
	}
}

func mountCap(fsType string, mode csi.VolumeCapability_AccessMode_Mode, flags ...string) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fsType, MountFlags: flags}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

func blockCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

func TestCapabilitiesThePoolCannotServeAreRefused(t *testing.T) {
	rw := csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
	for name, caps := range map[string][]*csi.VolumeCapability{
		"none":            nil,
		"nil":             {nil},
		"no access type":  {{AccessMode: &csi.VolumeCapability_AccessMode{Mode: rw}}},
		"no mode":         {mountCap("", csi.VolumeCapability_AccessMode_UNKNOWN)},
		"multi node":      {mountCap("", csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)},
		"other fs":        {mountCap("xfs", rw)},
		"block and mount": {mountCap("", rw), blockCap(rw)},
		"bind flag":       {mountCap("", rw, "bind")},
		"remount flag":    {mountCap("", rw, "remount")},
		"errors=panic":    {mountCap("", rw, "errors=panic")},
		"comma smuggling": {mountCap("", rw, "noatime,dax")},
		"huge commit":     {mountCap("", rw, "commit=99999999999")},
	} {
		if _, err := checkCapabilities(caps, fs.Ext4); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
	k, err := checkCapabilities([]*csi.VolumeCapability{mountCap("ext4", rw, "noatime", "commit=30"), mountCap("", csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY)}, fs.Ext4)
	if err != nil || k != (volumeKind{accessMount, fs.Ext4}) {
		t.Fatalf("%+v %v", k, err)
	}
	k, err = checkCapabilities([]*csi.VolumeCapability{blockCap(rw)}, fs.XFS)
	if err != nil || k.access != accessBlock {
		t.Fatalf("%+v %v", k, err)
	}
}

func TestSizesAreBoundedAndRounded(t *testing.T) {
	const floor = 32 * mib
	for _, c := range []struct {
		req, lim int64
		want     uint64
		code     codes.Code
	}{
		{0, 0, floor, codes.OK},
		{1, 0, floor, codes.OK},
		{floor + 1, 0, floor + mib, codes.OK},
		{floor + 1, floor + sizeAlign, floor + sizeAlign, codes.OK},
		{math.MaxInt64, 0, roundUp(math.MaxInt64, mib), codes.OK}, // the pool refuses it (OutOfRange) as bigger than its data
		{-1, 0, 0, codes.InvalidArgument},
		{0, -1, 0, codes.InvalidArgument},
		{10, 5, 0, codes.InvalidArgument},
		{0, floor - 1, 0, codes.OutOfRange},
	} {
		got, err := volumeSize(&csi.CapacityRange{RequiredBytes: c.req, LimitBytes: c.lim}, floor)
		if status.Code(err) != c.code || err == nil && got != c.want {
			t.Errorf("%d..%d: %d %v, want %d %v", c.req, c.lim, got, err, c.want, c.code)
		}
	}
	if !fits(64*mib, &csi.CapacityRange{RequiredBytes: 64 * mib}) || fits(64*mib, &csi.CapacityRange{LimitBytes: 32 * mib}) ||
		fits(64*mib, &csi.CapacityRange{RequiredBytes: 65 * mib}) {
		t.Fatal("fits")
	}
}

func TestPoolErrorsBecomeTheCodesTheSpecAsksFor(t *testing.T) {
	for err, want := range map[error]codes.Code{
		thinpool.ErrInvalidSize:      codes.OutOfRange,
		thinpool.ErrLowSpace:         codes.ResourceExhausted,
		thinpool.ErrDeviceNotFound:   codes.NotFound,
		thinpool.ErrDeviceExists:     codes.AlreadyExists,
		thinpool.ErrHasChildren:      codes.FailedPrecondition,
		thinpool.ErrBusy:             codes.FailedPrecondition,
		thinpool.ErrPoolReadOnly:     codes.FailedPrecondition,
		thinpool.ErrInvalidLabel:     codes.InvalidArgument,
		errors.New("kernel said no"): codes.Internal,
	} {
		got := grpcError(errors.Wrap(err, "deep"), "create volume %s", "v")
		if status.Code(got) != want || !strings.Contains(status.Convert(got).Message(), "create volume v: deep") {
			t.Errorf("%v -> %v, want %v", err, got, want)
		}
	}
	if grpcError(nil, "x") != nil {
		t.Fatal("nil is not an error")
	}
}

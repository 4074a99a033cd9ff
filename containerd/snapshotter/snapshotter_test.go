package snapshotter

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/filters"
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/thinpool"
)

func TestASnapshotReadsBackFromItsDeviceLabels(t *testing.T) {
	created := time.Date(2026, 11, 26, 14, 0, 0, 123456789, time.UTC)
	for _, sn := range []*snapshot{
		{id: "ctrd-1", name: "default/3/extract-1 sha256:ab", kind: snapshots.KindActive, parent: "default/2/sha256:cd",
			created: created, updated: created, labels: map[string]string{"containerd.io/snapshot/x": "1", "label:tricky": "a:b"}},
		{id: "ctrd-2", name: "sha256:cd", kind: snapshots.KindCommitted, created: created, updated: created.Add(time.Second),
			labels: map[string]string{}, usage: 20 << 20},
		{id: "ctrd-3", name: "v", kind: snapshots.KindView, parent: "sha256:cd", created: created, updated: created, labels: map[string]string{}},
	} {
		t.Run(kindName(sn.kind)+" "+sn.name, func(t *testing.T) {
			got, err := decode(sn.id, sn.encode())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, sn) {
				t.Fatalf("read back %+v\nwant       %+v", got, sn)
			}
			if (got.info().Created == got.info().Updated) != (sn.created == sn.updated) {
				t.Fatalf("Created and Updated compare differently after the round trip: %v %v", got.created, got.updated)
			}
		})
	}
}

func TestDecodeRefusesWhatItCannotRead(t *testing.T) {
	good := (&snapshot{name: "a", kind: snapshots.KindActive, created: time.Now().UTC(), updated: time.Now().UTC()}).encode()
	for _, c := range []struct {
		name, key, value, want string
	}{
		{"an unknown kind", keyKind, "frozen", `unknown kind "frozen"`},
		{"a bad created time", keyCreated, "yesterday", "created time"},
		{"a bad usage", keyUsage, "lots", "usage"},
	} {
		t.Run(c.name+" is refused naming the device", func(t *testing.T) {
			l := map[string]string{}
			for k, v := range good {
				l[k] = v
			}
			l[c.key] = c.value
			_, err := decode("ctrd-9", l)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "ctrd-9") {
				t.Fatalf("decode = %v, want an error naming ctrd-9 and %q", err, c.want)
			}
		})
	}
}

func TestWalkFiltersMatchContainerdsFieldNames(t *testing.T) {
	infos := []snapshots.Info{
		{Name: "a", Kind: snapshots.KindActive, Parent: "p", Labels: map[string]string{"l": "2"}},
		{Name: "p", Kind: snapshots.KindCommitted},
		{Name: "v", Kind: snapshots.KindView, Parent: "p", Labels: map[string]string{"containerd.io/gc.root": "x"}},
	}
	for _, c := range []struct {
		filter string
		want   []string
	}{
		{"kind==active", []string{"a"}},
		{"kind==committed", []string{"p"}},
		{"kind==view", []string{"v"}},
		{"parent==p", []string{"a", "v"}},
		{`parent!=""`, []string{"a", "v"}},
		{"name==p", []string{"p"}},
		{"labels.l==2", []string{"a"}},
		{`labels."containerd.io/gc.root"`, []string{"v"}},
	} {
		t.Run(c.filter, func(t *testing.T) {
			f, err := filters.Parse(c.filter)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, info := range infos {
				if f.Match(adapt(info)) {
					got = append(got, info.Name)
				}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("matched %v, want %v", got, c.want)
			}
		})
	}
}

func TestThinpoolErrorsReachContainerdAsItsClasses(t *testing.T) {
	for _, c := range []struct {
		name  string
		err   error
		class error
	}{
		{"a missing device is not found", thinpool.ErrDeviceNotFound, errdefs.ErrNotFound},
		{"a taken id already exists", thinpool.ErrDeviceExists, errdefs.ErrAlreadyExists},
		{"a device with children is a failed precondition", thinpool.ErrHasChildren, errdefs.ErrFailedPrecondition},
		{"a bad size is an invalid argument", thinpool.ErrInvalidSize, errdefs.ErrInvalidArgument},
		{"a bad label is an invalid argument", thinpool.ErrInvalidLabel, errdefs.ErrInvalidArgument},
		{"a full pool is resource exhausted", thinpool.ErrLowSpace, errdefs.ErrResourceExhausted},
		{"a read-only pool is unavailable", thinpool.ErrPoolReadOnly, errdefs.ErrUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := mapErr(errors.Wrap(c.err, "deep"), "prepare %q", "k")
			if !errors.Is(err, c.class) {
				t.Fatalf("%v does not match %v", err, c.class)
			}
			if !strings.Contains(err.Error(), `prepare "k"`) || !strings.Contains(err.Error(), "deep") {
				t.Fatalf("%q lost its context", err)
			}
		})
	}
	t.Run("an error of no class keeps its chain", func(t *testing.T) {
		base := errors.New("kernel said no")
		if err := mapErr(base, "x"); !errors.Is(err, base) {
			t.Fatalf("%v lost its cause", err)
		}
	})
}

func TestTheSizeLabelsAskForADeviceSizeAndBadOnesAreRefusedByName(t *testing.T) {
	if MaxSizeLabel != "containerd.io/snapshot/max-size" {
		t.Fatalf("containerd's generic size label is now %q; docs/containerd.md names containerd.io/snapshot/max-size", MaxSizeLabel)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		size   uint64
		bad    string // in the error, when refused
	}{
		{"no label: the parent's size", map[string]string{"containerd.io/snapshot/other": "1"}, 0, ""},
		{"thinctl.size with a unit", map[string]string{SizeLabel: "1G"}, 1 << 30, ""},
		{"max-size in bytes", map[string]string{MaxSizeLabel: "536870912"}, 512 << 20, ""},
		{"both, the same size", map[string]string{SizeLabel: "512M", MaxSizeLabel: "536870912"}, 512 << 20, ""},
		{"both, different sizes", map[string]string{SizeLabel: "1G", MaxSizeLabel: "536870912"}, 0, "ask for different sizes"},
		{"max-size with a unit", map[string]string{MaxSizeLabel: "10G"}, 0, `max-size="10G": give the size as a decimal number of bytes`},
		{"max-size zero", map[string]string{MaxSizeLabel: "0"}, 0, "above zero"},
		{"max-size negative", map[string]string{MaxSizeLabel: "-1"}, 0, "above zero"},
		{"max-size past int64", map[string]string{MaxSizeLabel: "9223372036854775808"}, 0, "decimal number of bytes"},
		{"max-size empty", map[string]string{MaxSizeLabel: ""}, 0, "decimal number of bytes"},
		{"thinctl.size malformed", map[string]string{SizeLabel: "big"}, 0, SizeLabel},
	} {
		t.Run(c.name, func(t *testing.T) {
			size, err := requestedSize(c.labels)
			if c.bad == "" {
				if err != nil || size != c.size {
					t.Fatalf("requestedSize = %d, %v; want %d", size, err, c.size)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.bad) {
				t.Fatalf("requestedSize = %d, %v; want ErrInvalidArgument saying %q", size, err, c.bad)
			}
		})
	}
}

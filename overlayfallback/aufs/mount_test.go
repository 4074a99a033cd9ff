package aufs

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// chain lays out n layers l000 <- l001 <- ... the way Docker's aufs driver
// left them on disk (written directly: Create's fsync per layer would make
// deep chains slow to set up) and returns their ids, bottom first.
func chain(t *testing.T, d *Driver, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("l%03d-%s", i, strings.Repeat("f", 56))
		mkdirAll(t, d.diffPath(ids[i]))
		mkdirAll(t, d.mntPath(ids[i]))
		var up []string
		for j := i - 1; j >= 0; j-- {
			up = append(up, ids[j])
		}
		if err := os.WriteFile(d.layersPath(ids[i]), formatLayers(up), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func TestGetMountsTheLayerOverItsAncestors(t *testing.T) {
	d, f := newTestDriver(t)
	d.dirperm1 = true
	ids := chain(t, d, 3)
	top := ids[2]
	p, err := d.Get(t.Context(), top, "")
	if err != nil {
		t.Fatal(err)
	}
	if p != d.mntPath(top) {
		t.Fatalf("Get returned %q, want %q", p, d.mntPath(top))
	}
	mnt := filepath.Join(d.Home(), "mnt")
	want := []mountCall{
		{op: "mount", target: mnt, flags: unix.MS_BIND},
		{op: "mount", target: mnt, flags: unix.MS_PRIVATE},
		{op: "mount", target: d.mntPath(top), data: "br:" +
			d.diffPath(ids[2]) + "=rw:" + d.diffPath(ids[1]) + "=ro+wh:" + d.diffPath(ids[0]) + "=ro+wh" +
			",dirperm1,xino=/dev/shm/aufs.xino"}}
	if !reflect.DeepEqual(f.calls, want) {
		t.Fatalf("mount calls:\n got %+v\nwant %+v", f.calls, want)
	}
}

func TestGetOfA128LayerChainAppendsBranchesByRemount(t *testing.T) {
	d, f := newTestDriver(t)
	ids := chain(t, d, 128)
	top := ids[127]
	if _, err := d.Get(t.Context(), top, ""); err != nil {
		t.Fatal(err)
	}
	if n := len(f.layerCalls(d.mntPath(top))); n < 2 {
		t.Fatalf("a 128-layer chain must need remounts; calls: %d", n)
	}
	var got []string
	for i, c := range f.layerCalls(d.mntPath(top)) {
		if c.op != "mount" || c.target != d.mntPath(top) {
			t.Fatalf("call %d = %+v", i, c)
		}
		if len(c.data)+1 > 4096 {
			t.Fatalf("call %d carries %d bytes of data, over a page", i, len(c.data))
		}
		if (i == 0) != (c.flags&unix.MS_REMOUNT == 0) {
			t.Fatalf("call %d flags %#x: only the first call mounts, the rest remount", i, c.flags)
		}
		if i == 0 {
			got = append(got, planBranches(mountPlan{First: c.data})...)
		} else {
			got = append(got, planBranches(mountPlan{Appends: []string{c.data}})...)
		}
	}
	want := []string{d.diffPath(top) + "=rw"}
	for i := 126; i >= 0; i-- {
		want = append(want, d.diffPath(ids[i])+"=ro+wh")
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("branches mounted, top first:\n got %q\nwant %q", got, want)
	}
}

func TestGetAndPutCountReferences(t *testing.T) {
	d, f := newTestDriver(t)
	mustCreate(t, d, "a", "")
	for i := 0; i < 3; i++ {
		if _, err := d.Get(t.Context(), "a", ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.layerCalls(d.mntPath("a"))); n != 1 {
		t.Fatalf("three Gets made %d mount calls, want 1", n)
	}
	for i := 0; i < 2; i++ {
		if err := d.Put(t.Context(), "a"); err != nil {
			t.Fatal(err)
		}
		if !f.mounts[d.mntPath("a")] {
			t.Fatalf("Put %d of 3 unmounted", i+1)
		}
	}
	if err := d.Put(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	if f.mounts[d.mntPath("a")] {
		t.Fatal("the last Put did not unmount")
	}
	if err := d.Put(t.Context(), "a"); err == nil {
		t.Fatal("a Put without a Get must fail")
	}
}

func TestGetPassesTheMountLabel(t *testing.T) {
	d, f := newTestDriver(t)
	mustCreate(t, d, "a", "")
	if _, err := d.Get(t.Context(), "a", "system_u:object_r:container_file_t:s0"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(f.layerCalls(d.mntPath("a"))[0].data, `,context="system_u:object_r:container_file_t:s0"`) {
		t.Fatalf("mount data %q lacks the context option", f.calls[0].data)
	}
}

func TestFailedRemountUndoesTheMount(t *testing.T) {
	d, f := newTestDriverPage(t, 512) // small pages: a short chain needs remounts
	ids := chain(t, d, 8)
	f.failOn = func(c mountCall) error {
		if c.flags&unix.MS_REMOUNT != 0 {
			return unix.EINVAL
		}
		return nil
	}
	_, err := d.Get(t.Context(), ids[7], "")
	if err == nil || !strings.Contains(err.Error(), "append branch batch 1") || !strings.Contains(err.Error(), "8 layers") {
		t.Fatalf("Get error = %v, want one naming the batch and the layer count", err)
	}
	if f.mounts[d.mntPath(ids[7])] {
		t.Fatal("a failed remount left the partial union mounted")
	}
	if len(d.refs) != 0 {
		t.Fatalf("a failed Get left references: %v", d.refs)
	}
}

func TestCleanupUnmountsEverything(t *testing.T) {
	d, f := newTestDriver(t)
	mustCreate(t, d, "a", "")
	mustCreate(t, d, "b", "a")
	for _, id := range []string{"a", "b", "b"} {
		if _, err := d.Get(t.Context(), id, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(f.mounts) != 0 || len(d.refs) != 0 {
		t.Fatalf("after Cleanup: mounts %v, refs %v", f.mounts, d.refs)
	}
	if _, err := d.Get(t.Context(), "b", ""); err != nil {
		t.Fatalf("the driver must stay usable after Cleanup: %v", err)
	}
}

func TestLayerMountsLiveInAPrivateMount(t *testing.T) {
	tests := []struct {
		name        string
		mntIsMount  bool // mnt/ is a mount point before the first Get
		wantBind    bool
		wantUnbound bool // Cleanup unmounts mnt/
	}{
		{"mnt is bind-mounted onto itself, made private, and released by Cleanup", false, true, true},
		{"an existing mount at mnt is made private and left alone by Cleanup", true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, f := newTestDriver(t)
			mnt := filepath.Join(d.Home(), "mnt")
			f.mounts[mnt] = tt.mntIsMount
			mustCreate(t, d, "a", "")
			mustCreate(t, d, "b", "")
			for _, id := range []string{"a", "b"} {
				if _, err := d.Get(t.Context(), id, ""); err != nil {
					t.Fatal(err)
				}
			}
			calls := f.layerCalls(mnt)
			var flags []uintptr
			for _, c := range calls {
				flags = append(flags, c.flags)
			}
			want := []uintptr{unix.MS_PRIVATE}
			if tt.wantBind {
				want = []uintptr{unix.MS_BIND, unix.MS_PRIVATE}
			}
			if !reflect.DeepEqual(flags, want) {
				t.Fatalf("calls on mnt/ before two layer mounts: %+v, want flags %#x", calls, want)
			}
			if err := d.Cleanup(t.Context()); err != nil {
				t.Fatal(err)
			}
			if f.mounts[mnt] == tt.wantUnbound {
				t.Fatalf("after Cleanup mnt/ mounted = %v, want %v", f.mounts[mnt], !tt.wantUnbound)
			}
		})
	}
}

func TestProbeDirperm1(t *testing.T) {
	tests := []struct {
		name    string
		mountOK bool
		want    bool
	}{
		{"a module that mounts with dirperm1 supports it", true, true},
		{"a module that refuses dirperm1 does not", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, f := newTestDriver(t)
			f.failOn = func(mountCall) error {
				if tt.mountOK {
					return nil
				}
				return unix.EINVAL
			}
			if got := d.probeDirperm1(); got != tt.want {
				t.Fatalf("probeDirperm1 = %v, want %v", got, tt.want)
			}
			if len(f.calls) == 0 || !strings.HasSuffix(f.calls[0].data, ",dirperm1") || !strings.HasPrefix(f.calls[0].data, "br:"+d.Home()) {
				t.Fatalf("probe mount calls: %+v", f.calls)
			}
			if len(f.mounts) != 0 {
				t.Fatalf("the probe left mounts: %v", f.mounts)
			}
			if got := listTree(t, d.Home()); !reflect.DeepEqual(got, []string{"diff/", "layers/", "mnt/"}) {
				t.Fatalf("the probe left files in the home: %q", got)
			}
		})
	}
}

package dockerdm

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

// openWithin runs Open and fails the test if it does not return within
// five seconds (a FIFO opened for reading would wait for ever).
func openWithin(t *testing.T, root string) (*Store, error) {
	t.Helper()
	type result struct {
		s   *Store
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := Open(root, OpenOptions{})
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.s, r.err
	case <-time.After(5 * time.Second):
		t.Fatalf("Open of %s still runs after 5 s", root)
		return nil, nil
	}
}

func TestAFIFOOrSocketAnywhereInAStoreIsRefusedByTypeWithoutWaiting(t *testing.T) {
	_, id1 := testStore(t)
	for _, rel := range []string{
		"devicemapper/metadata/la",
		"devicemapper/metadata/deviceset-metadata",
		"devicemapper/devicemapper/metadata",
		"devicemapper/devicemapper/data",
		"image/devicemapper/repositories.json",
		"image/devicemapper/imagedb/content/sha256/" + id1[7:],
		"image/devicemapper/layerdb/sha256/" + diffA[7:] + "/cache-id",
		"image/devicemapper/layerdb/mounts/" + ctr1 + "/mount-id",
		"containers/" + ctr1 + "/config.v2.json",
		"image/devicemapper/layerdb/sha256", // a directory's place
	} {
		for _, kind := range []string{"FIFO", "socket"} {
			t.Run(kind+" "+rel, func(t *testing.T) {
				root, _ := testStore(t)
				p := filepath.Join(root, rel)
				if err := os.RemoveAll(p); err != nil {
					t.Fatal(err)
				}
				if kind == "FIFO" {
					if err := unix.Mkfifo(p, 0o600); err != nil {
						t.Fatal(err)
					}
				} else {
					l, err := net.Listen("unix", p)
					if err != nil {
						t.Skipf("socket path too long here: %v", err)
					}
					defer l.Close()
				}
				before := snapshotTree(t, root)
				_, err := openWithin(t, root)
				if err == nil {
					t.Fatalf("a store with a %s at %s opened", kind, rel)
				}
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, ErrPartial) {
					t.Errorf("error %v has no store class", err)
				}
				if !strings.Contains(err.Error(), rel) || strings.Count(err.Error(), "\n") > 0 {
					t.Errorf("error %q does not name %s on one line", err, rel)
				}
				if after := snapshotTree(t, root); after != before {
					t.Errorf("the store changed:\n%s\nwas\n%s", after, before)
				}
			})
		}
	}
}

func TestAStoreFileThatIsASymlinkIsNotFollowed(t *testing.T) {
	root, _ := testStore(t)
	outside := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(outside, []byte(`{"device_id":99,"size":1,"transaction_id":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "devicemapper/metadata/la")
	os.Remove(p)
	if err := os.Symlink(outside, p); err != nil {
		t.Fatal(err)
	}
	s, err := openWithin(t, root)
	if err == nil {
		t.Fatalf("a store whose record is a symlink opened (record la: %+v)", s.Records["la"])
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p+" is a symlink") {
		t.Errorf("error %v, want ErrCorrupt saying %s is a symlink", err, p)
	}
}

func TestAnOversizedRecordFileIsRefusedUnread(t *testing.T) {
	root, _ := testStore(t)
	p := filepath.Join(root, "devicemapper/metadata/la")
	if err := os.Truncate(p, 10<<30); err != nil { // sparse: 10 GiB, no blocks
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err := openWithin(t, root)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "10737418240 bytes") {
		t.Fatalf("error %v, want ErrCorrupt naming the size", err)
	}
	if took := time.Since(t0); took > time.Second {
		t.Errorf("refusing took %v: it read the file", took)
	}
}

func TestSymlinkedPoolFilesAreResolvedAndShownOrRefusedByType(t *testing.T) {
	root, _ := testStore(t)
	elsewhere := t.TempDir()
	data := filepath.Join(elsewhere, "data")
	if err := os.WriteFile(data, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "devicemapper/devicemapper/data")
	os.Remove(p)
	if err := os.Symlink(data, p); err != nil {
		t.Fatal(err)
	}
	s, err := openWithin(t, root)
	if err != nil {
		t.Fatal(err)
	}
	if s.DataFile != data || !strings.Contains(strings.Join(s.Notes, "\n"), p+" is a symlink: thinctl uses "+data) {
		t.Errorf("data file %q, notes %q; want %s shown as resolved", s.DataFile, s.Notes, data)
	}
	fifo := filepath.Join(elsewhere, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if err := os.Symlink(fifo, p); err != nil {
		t.Fatal(err)
	}
	if _, err := openWithin(t, root); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fifo+" is a FIFO") {
		t.Errorf("a data file symlinked to a FIFO: %v, want ErrCorrupt naming the FIFO", err)
	}
	os.Remove(p)
	if err := os.Symlink(filepath.Join(elsewhere, "gone"), p); err != nil {
		t.Fatal(err)
	}
	if _, err := openWithin(t, root); !errors.Is(err, ErrPartial) {
		t.Errorf("a data file symlinked to nothing: %v, want ErrPartial", err)
	}
}

func TestAssembleTarRefusesALayerRootThatIsASymlink(t *testing.T) {
	raw, root := testLayer(t)
	link := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err := AssembleTar(bytes.NewReader(tarSplitOf(t, raw)), link, &out)
	if !errors.Is(err, driver.ErrBadLayerRoot) || !strings.Contains(err.Error(), link) {
		t.Fatalf("AssembleTar through a symlinked root = %v, want ErrBadLayerRoot naming it", err)
	}
	if out.Len() != 0 {
		t.Errorf("%d bytes were written", out.Len())
	}
}

func TestTarSplitSizeIsWhatAssembleTarWrites(t *testing.T) {
	raw, root := testLayer(t)
	split := tarSplitOf(t, raw)
	n, err := TarSplitSize(bytes.NewReader(split))
	if err != nil || n != int64(len(raw)) {
		t.Fatalf("TarSplitSize = %d, %v; want %d", n, err, len(raw))
	}
	// A tar-split claiming more than any tar can hold is refused.
	huge := []byte(`{"type":1,"name":"a","size":9223372036854775807,"payload":"AAAAAAAAAAA="}` + "\n" +
		`{"type":1,"name":"b","size":9223372036854775807,"payload":"AAAAAAAAAAA="}` + "\n")
	if _, err := TarSplitSize(bytes.NewReader(huge)); !errors.Is(err, ErrTarSplit) {
		t.Errorf("an overflowing size: %v, want ErrTarSplit", err)
	}
	var sink bytes.Buffer
	bw := &boundedWriter{w: &sink, left: 10, what: "test"}
	if n, err := bw.Write(make([]byte, 11)); n != 10 || !errors.Is(err, ErrWorkSpace) || sink.Len() != 10 {
		t.Errorf("bounded write of 11 into 10: %d, %v, %d in the sink", n, err, sink.Len())
	}
	_ = root
}

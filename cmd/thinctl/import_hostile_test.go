package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver/drivertest"
)

// TestImportOfEveryHostileArchiveLeavesTheOutsideAlone runs the driver
// suite's catalogue of hostile archives through the command, as a user
// would pipe them in: the archive check in front of the applier must pass
// every byte on without expanding it (a 2 KiB archive announcing a 2^60
// byte sparse file finishes), a sentinel directory outside the root is
// unchanged, a refusal is one line and leaves no layer, and an accepted
// archive reads back as the catalogue demands. No hint sends the user to
// grow the pool: the layer's own filesystem is what an archive fills.
func TestImportOfEveryHostileArchiveLeavesTheOutsideAlone(t *testing.T) {
	requireRootForLayers(t)
	h := newHarness(t)
	h.ov("pool", "init")
	for i, c := range drivertest.HostileArchives() {
		t.Run(c.Name, func(t *testing.T) {
			outside := filepath.Join(t.TempDir(), "sentinel")
			if err := os.Mkdir(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := drivertest.MakeSentinel(outside); err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprintf("h%d", i)
			err := drivertest.CheckHostile(t, c, outside, func(stream []byte) (string, error) {
				r := h.runWithStdin(bytes.NewReader(stream), "import", id)
				if r.code != 0 {
					// The refusal's line; a hint may follow it.
					lines := strings.SplitN(strings.TrimSpace(r.stderr), "\n", 2)
					if len(lines) == 2 && strings.Contains(lines[1], "grow") {
						t.Errorf("the hint sends the user to grow something, which cannot help an import: %s", lines[1])
					}
					return "", errors.New(lines[0])
				}
				return filepath.Join(h.root, "overlay2", id, "diff"), nil
			})
			if err != nil {
				if !strings.Contains(err.Error(), "layer "+id+" removed") {
					t.Errorf("the refusal does not say the layer was removed: %v", err)
				}
				if _, serr := os.Stat(filepath.Join(h.root, "overlay2", id)); !os.IsNotExist(serr) {
					t.Errorf("the refused layer's directory is still there (%v)", serr)
				}
				return
			}
			h.ov("remove", id)
		})
	}
}

// TestImportTakesWhatGitArchiveAndGNUTarSparseWrite pipes real tools'
// archives through the command: git archive's PAX global header and GNU
// tar's two sparse forms pass the archive check untouched (the old check
// re-encoded entries and lost the sparse map) and read back byte for byte,
// the sparse file still sparse.
func TestImportTakesWhatGitArchiveAndGNUTarSparseWrite(t *testing.T) {
	requireRootForLayers(t)
	for _, name := range []string{"git", "tar"} {
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("%s is not installed", name)
		}
	}
	src := t.TempDir()
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = src
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	data := map[string]string{"a.txt": "alpha\n", "lib/b.txt": strings.Repeat("b", 5000)}
	for p, body := range data {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run("git", "init", "-q")
	run("git", "add", ".")
	run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
	gitTar := run("git", "archive", "--format=tar", "HEAD")

	sparse := filepath.Join(src, "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("in the middle"), 32<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want, err := os.ReadFile(sparse)
	if err != nil {
		t.Fatal(err)
	}

	h := newHarness(t)
	h.ov("pool", "init")
	if r := h.runWithStdin(bytes.NewReader(gitTar), "import", "git"); r.code != 0 {
		t.Fatalf("import of git archive output: exit %d\n%s", r.code, r.stderr)
	}
	for p, body := range data {
		got, err := os.ReadFile(filepath.Join(h.root, "overlay2", "git", "diff", p))
		if err != nil || string(got) != body {
			t.Errorf("%s after importing git archive output: %q, %v; want %q", p, got, err, body)
		}
	}
	for _, format := range []string{"gnu", "posix"} {
		id := "sparse-" + format
		stream := run("tar", "--sparse", "--format="+format, "-cf", "-", "sparse")
		if r := h.runWithStdin(bytes.NewReader(stream), "import", id); r.code != 0 {
			t.Fatalf("import of tar --sparse --format=%s output: exit %d\n%s", format, r.code, r.stderr)
		}
		p := filepath.Join(h.root, "overlay2", id, "diff", "sparse")
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("the imported sparse file (--format=%s) differs from the original (%v)", format, err)
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Blocks*512 > 1<<20 {
			t.Errorf("the imported sparse file (--format=%s) has %d bytes allocated; want its holes kept", format, st.Blocks*512)
		}
	}
}

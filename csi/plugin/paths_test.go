package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pathPlugin is a Plugin with only a path root, for the path helpers.
func pathPlugin(t *testing.T) (*Plugin, string, string) {
	t.Helper()
	base := t.TempDir()
	root, outside := filepath.Join(base, "kubelet"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &Plugin{cfg: Config{PathRoot: root}}, root, outside
}

// entries lists dir, for the read-back that nothing outside was touched.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestPathsNotStrictlyBeneathTheRootAreRefused(t *testing.T) {
	p, root, _ := pathPlugin(t)
	for _, path := range []string{"", "relative/dir", root, root + "/", root + "/../outside", root + "/a/../b", root + "//a",
		root + "/a/.", root + "x/a", "/etc", "/", root + "/a\x00b", root + "/" + strings.Repeat("a", maxPathLen)} {
		if _, err := p.checkPath("target path", path); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%q: %v", path, err)
		}
	}
	rel, err := p.checkPath("target path", root+"/pods/x/mount")
	if err != nil || rel != "pods/x/mount" {
		t.Fatalf("%q %v", rel, err)
	}
}

func TestASymlinkedDirectoryInATargetPathIsRefusedAndNothingOutsideIsMade(t *testing.T) {
	p, root, outside := pathPlugin(t)
	if err := os.Symlink(outside, filepath.Join(root, "pods")); err != nil {
		t.Fatal(err)
	}
	for _, file := range []bool{false, true} {
		_, err := p.makeTarget("target path", "pods/target", file)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("file %v: %v", file, err)
		}
	}
	if err := p.unmountAll("target path", "pods/target"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unmount through the link: %v", err)
	}
	if err := p.removeTarget("target path", "pods/target"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("remove through the link: %v", err)
	}
	if got := entries(t, outside); len(got) != 0 {
		t.Fatalf("made outside the root: %v", got)
	}
}

func TestASymlinkAsTheTargetItselfIsNeitherFollowedNorItsTargetRemoved(t *testing.T) {
	p, root, outside := pathPlugin(t)
	victim := filepath.Join(outside, "victim")
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(root, "target")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.makeTarget("target path", "target", false); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("make: %v", err)
	}
	if _, err := p.openBeneath("staging target path", "target", unix.O_PATH|unix.O_DIRECTORY, 0); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("open: %v", err)
	}
	// Unpublishing removes the link it was given, never what it names.
	if err := p.removeTarget("target path", "target"); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(victim); err != nil || !st.IsDir() {
		t.Fatalf("the link's target is gone: %v", err)
	}
}

func TestATargetIsMadeOnceAndRemovedAgain(t *testing.T) {
	p, root, _ := pathPlugin(t)
	if err := os.Mkdir(filepath.Join(root, "pods"), 0o750); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second finds the first's
		f, err := p.makeTarget("target path", "pods/dir", false)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		f, err = p.makeTarget("target path", "pods/file", true)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if st, err := os.Lstat(filepath.Join(root, "pods/file")); err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Fatalf("block target: %v %v", st, err)
	}
	if st, err := os.Lstat(filepath.Join(root, "pods/dir")); err != nil || !st.IsDir() {
		t.Fatalf("mount target: %v %v", st, err)
	}
	// A missing parent is the CO's to make.
	if _, err := p.makeTarget("target path", "nopods/dir", false); status.Code(err) != codes.NotFound {
		t.Fatalf("missing parent: %v", err)
	}
	for _, rel := range []string{"pods/dir", "pods/file", "pods/dir"} {
		if err := p.removeTarget("target path", rel); err != nil {
			t.Fatal(err)
		}
	}
	if got := entries(t, filepath.Join(root, "pods")); len(got) != 0 {
		t.Fatalf("left: %v", got)
	}
}

func TestADirectoryWithFilesIsNotRemovedAsATarget(t *testing.T) {
	p, root, _ := pathPlugin(t)
	dir := filepath.Join(root, "full")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := p.removeTarget("target path", "full"); status.Code(err) != codes.Internal {
		t.Fatalf("%v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Fatalf("the directory's contents are gone: %v", err)
	}
}

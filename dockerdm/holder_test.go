package dockerdm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/errors"
)

func TestCheckNotHeldNamesTheProcessThatHoldsAFileOfTheStore(t *testing.T) {
	root, _ := testStore(t)
	if err := CheckNotHeld(root); err != nil {
		t.Fatalf("nothing holds the store, but: %v", err)
	}
	db := filepath.Join(root, "volumes", "metadata.db")
	writeFiles(t, root, map[string]string{"volumes/metadata.db": "bolt"})
	// A process that keeps the file open, as dockerd keeps its databases.
	cmd := exec.Command("sh", "-c", "exec 3<\"$0\"; exec sleep 60", db)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	want := fmt.Sprintf("pid %d (sleep) holds %s", cmd.Process.Pid, db)
	var err error
	for i := 0; i < 100; i++ {
		if err = CheckNotHeld(root); err != nil && strings.Contains(err.Error(), want) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), want) {
		t.Fatalf("CheckNotHeld: %v, want ErrHeld saying %q", err, want)
	}
	if _, ierr := Inspect(t.Context(), root, InspectOptions{}); !errors.Is(ierr, ErrHeld) {
		t.Errorf("Inspect while held: %v", ierr)
	}
}

func TestFindHoldersSeesWorkingDirectoriesAndIgnoresOtherPaths(t *testing.T) {
	root, _ := testStore(t)
	other := t.TempDir()
	in := exec.Command("sleep", "60")
	in.Dir = filepath.Join(root, "containers")
	out := exec.Command("sleep", "60")
	out.Dir = other
	for _, c := range []*exec.Cmd{in, out} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer func(c *exec.Cmd) { c.Process.Kill(); c.Wait() }(c)
	}
	// A sibling directory whose name starts like the root's is not under it.
	sib := exec.Command("sleep", "60")
	os.MkdirAll(root+"-sibling", 0o755)
	defer os.RemoveAll(root + "-sibling")
	sib.Dir = root + "-sibling"
	if err := sib.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sib.Process.Kill(); sib.Wait() }()
	hs, err := FindHolders("", root)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].PID != in.Process.Pid || hs[0].Path != in.Dir {
		t.Errorf("holders %v, want only pid %d in %s", hs, in.Process.Pid, in.Dir)
	}
}

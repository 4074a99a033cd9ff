package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// plantedSymlink makes dir/out.tar a symlink to a victim file holding
// "precious" and returns both paths.
func plantedSymlink(t *testing.T) (link, victim string) {
	t.Helper()
	dir := t.TempDir()
	victim = filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	link = filepath.Join(dir, "out.tar")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	return link, victim
}

// checkUntouched fails unless link still points at victim and victim
// still holds "precious" with mode 0644.
func checkUntouched(t *testing.T, link, victim string) {
	t.Helper()
	if target, err := os.Readlink(link); err != nil || target != victim {
		t.Errorf("the planted symlink now reads %q (%v); want it left pointing at %s", target, err, victim)
	}
	fi, err := os.Stat(victim)
	b, _ := os.ReadFile(victim)
	if err != nil || string(b) != "precious" || fi.Mode().Perm() != 0o644 {
		t.Errorf("the victim file holds %q, mode %v (%v)", b, fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(link)); len(ents) != 1 {
		t.Errorf("the output directory holds %v; want only the symlink", ents)
	}
}

func TestExportWritesAnOwnerOnlyFileAndNeverWritesThroughASymlinkAtItsPath(t *testing.T) {
	requireRootForLayers(t)
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	h := newHarness(t)
	h.ov("pool", "init")
	h.ov("create", "base")
	mp := strings.TrimSpace(h.ov("mount", "base").stdout)
	if err := os.WriteFile(filepath.Join(mp, "secret"), []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.ov("unmount", "base")

	out := filepath.Join(t.TempDir(), "base.tar")
	h.ov("export", "base", "--file", out)
	var st unix.Stat_t
	if err := unix.Lstat(out, &st); err != nil || st.Mode&0o7777 != 0o600 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("the archive has mode %#o (%v); want a 0600 regular file", st.Mode, err)
	}

	link, victim := plantedSymlink(t)
	r := h.ovFails(1, []string{"export", "base", "--file", link}, "--file "+link+" is a symlink to \""+victim+"\"", "hint: give another --file")
	if lines := strings.Count(r.stderr, "\n"); lines != 2 {
		t.Errorf("stderr has %d lines: %q", lines, r.stderr)
	}
	checkUntouched(t, link, victim)

	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	h.ovFails(1, []string{"export", "base", "--file", fifo}, "--file "+fifo+" is a FIFO")
}

func TestDockerExportRefusesASymlinkAtItsFileBeforeReadingTheStore(t *testing.T) {
	link, victim := plantedSymlink(t)
	h := newHarness(t)
	r := h.run("docker", "export", "--docker-root", fakeDockerStore(t), "--image", "nope:1", "--file", link)
	if r.code != 1 || !strings.Contains(r.stderr, "--file "+link+" is a symlink") || strings.Count(r.stderr, "\n") != 2 {
		t.Fatalf("exit %d, stderr %q; want one line refusing the symlink and a hint", r.code, r.stderr)
	}
	checkUntouched(t, link, victim)
}

func TestWriteFileAtomicallyReplacesASymlinkPlantedAfterTheCheckWithoutFollowingIt(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	link, victim := plantedSymlink(t)
	// The symlink appears between checkOutputFile and the rename: the
	// reader runs between them.
	r := &plantingReader{data: []byte("archive"), plant: func() {
		os.Remove(link)
		os.Symlink(victim, link)
	}}
	os.Remove(link)
	if err := writeFileAtomically(link, r); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(link, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != 0o600 {
		t.Errorf("%s is mode %#o (%v); want the archive as a 0600 regular file in the symlink's place", link, st.Mode, err)
	}
	if b, _ := os.ReadFile(link); string(b) != "archive" {
		t.Errorf("the archive holds %q", b)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("the victim now holds %q", b)
	}
}

type plantingReader struct {
	data  []byte
	plant func()
}

func (p *plantingReader) Read(b []byte) (int, error) {
	if p.plant != nil {
		p.plant()
		p.plant = nil
	}
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.data)
	p.data = p.data[n:]
	return n, nil
}

package unixsock

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// inotifyEvents returns the events of an inotify descriptor for name, in
// order, until none are pending.
func inotifyEvents(t *testing.T, fd int, name string) []uint32 {
	t.Helper()
	var out []uint32
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			if strings.TrimRight(string(nameBytes), "\x00") == name {
				out = append(out, ev.Mask)
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// TestTheSocketAppearsAtItsPathOwnerOnly watches the path's directory
// while Listen runs with a umask that would make a new socket connectable
// by anyone: the socket must appear at its path by a rename
// of an already 0600 socket (IN_MOVED_TO), never be created there
// (IN_CREATE) nor have its mode changed there afterwards (IN_ATTRIB).
func TestTheSocketAppearsAtItsPathOwnerOnly(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, c := range []struct{ name, dir string }{
		{"a short path", t.TempDir()},
		// A directory so deep that the private directory's socket path
		// is too long to bind: it is bound through /proc/self/fd.
		{"a path near the socket limit", filepath.Join(t.TempDir(), strings.Repeat("d", 107-len(t.TempDir())-len("/s.sock")-2))},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.MkdirAll(c.dir, 0o755); err != nil {
				t.Fatal(err)
			}
			sock := filepath.Join(c.dir, "s.sock")
			if len(sock) > maxPath {
				t.Fatalf("test path %d bytes long", len(sock))
			}
			fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if _, err := unix.InotifyAddWatch(fd, c.dir, unix.IN_CREATE|unix.IN_ATTRIB|unix.IN_MOVED_TO); err != nil {
				t.Fatal(err)
			}
			l, err := Listen(sock)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			events := inotifyEvents(t, fd, "s.sock")
			if len(events) != 1 || events[0]&unix.IN_MOVED_TO == 0 {
				t.Errorf("events at the address: %#x; want one IN_MOVED_TO (%#x), no IN_CREATE (%#x) or IN_ATTRIB (%#x)",
					events, unix.IN_MOVED_TO, unix.IN_CREATE, unix.IN_ATTRIB)
			}
			fi, err := os.Lstat(sock)
			if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v, %v; want a 0600 socket", sock, fi.Mode(), err)
			}
			if ents, _ := os.ReadDir(c.dir); len(ents) != 1 {
				t.Errorf("the directory holds %v; want the socket alone (no private directory left)", ents)
			}
			if now := syscall.Umask(0); now != 0 {
				t.Errorf("Listen changed the umask to %#o", now)
			}
			conn, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatalf("the owner cannot connect: %v", err)
			}
			conn.Close()
		})
	}
}

// TestListenRefusesAFileAndALiveSocketAndReplacesAStaleOne: a file at the
// path is left as it was, a served socket is left serving, a stale one is
// replaced; a directory Listen makes is its owner's alone.
func TestListenRefusesAFileAndALiveSocketAndReplacesAStaleOne(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); !errors.Is(err, ErrNotSocket) {
		t.Fatalf("Listen on a file = %v; want ErrNotSocket", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("the file was touched")
	}
	sock := filepath.Join(dir, "sub", "s.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Dir(sock)); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("the directory Listen made: %v, %v; want 0700", st.Mode(), err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := Listen(sock); !errors.Is(err, ErrInUse) {
		t.Fatalf("Listen on a served socket = %v; want ErrInUse", err)
	}
	if c, err := net.Dial("unix", sock); err != nil {
		t.Fatalf("the first server no longer answers: %v", err)
	} else {
		c.Close()
	}
	l.Close()
	l, err = Listen(sock) // stale now: the socket stayed when l closed
	if err != nil {
		t.Fatalf("Listen on a stale socket: %v", err)
	}
	l.Close()
}

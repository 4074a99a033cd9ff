package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// pauseELF returns a static x86-64 Linux program of 129 bytes that calls
// pause(2) for ever: the pod sandbox's process, as the pause image's only
// file. (SIGKILL, which the CRI plugin sends on StopPodSandbox, ends it.)
func pauseELF() []byte {
	const base = 0x400000
	code := []byte{
		0xb8, 34, 0, 0, 0, // mov eax, 34 (SYS_pause)
		0x0f, 0x05, // syscall
		0xeb, 0xf7, // jmp back to the mov
	}
	const ehsize, phsize = 64, 56
	total := uint64(ehsize + phsize + len(code))
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, uint16(2))                  // ET_EXEC
	binary.Write(&b, le, uint16(0x3e))               // EM_X86_64
	binary.Write(&b, le, uint32(1))                  // EV_CURRENT
	binary.Write(&b, le, uint64(base+ehsize+phsize)) // entry
	binary.Write(&b, le, uint64(ehsize))             // program headers
	binary.Write(&b, le, uint64(0))                  // no section headers
	binary.Write(&b, le, uint32(0))                  // flags
	binary.Write(&b, le, []uint16{ehsize, phsize, 1, 0, 0, 0})
	binary.Write(&b, le, []uint32{1, 5}) // PT_LOAD, R+X
	binary.Write(&b, le, []uint64{0, base, base, total, total, 0x1000})
	b.Write(code)
	return b.Bytes()
}

func TestThePauseProgramWaitsUntilKilled(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(p, pauseELF(), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p)
	if err := cmd.Start(); err != nil {
		t.Fatalf("the kernel refuses the pause program: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("the pause program ended by itself: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	cmd.Process.Signal(syscall.SIGKILL)
	err := <-done
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the pause program ended with %v, want killed by SIGKILL", err)
	}
	if n := len(pauseELF()); n > 200 {
		t.Errorf("the pause program is %d bytes; it was meant to be tiny", n)
	}
}

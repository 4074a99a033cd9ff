package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether w is a terminal (TCGETS succeeds on it).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// kernelRelease returns the running kernel's release ("6.1.0-26-amd64").
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

var debugMu sync.Mutex

// writeDebug prints one --debug line to w, time-stamped.
func writeDebug(w io.Writer, format string, args ...any) {
	debugMu.Lock()
	defer debugMu.Unlock()
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	fmt.Fprintf(w, "debug: %s %s\n", time.Now().Format("15:04:05.000000"), msg)
}

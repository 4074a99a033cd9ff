package overlay2

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// A process cannot safely chdir one goroutine's thread in Go, yet a mount
// whose options hold paths relative to <home> must be made from inside
// <home>. So such mounts are done by a copy of this very program
// (/proc/self/exe) started with helperEnv set: this package's init sees the
// variable, changes directory, calls mount(2) and exits before main (or a
// test binary's TestMain) runs. Any program importing this package,
// including `go test` binaries, therefore carries the helper.
const helperEnv = "_THINCTL_OVERLAY2_MOUNT_HELPER"

func init() {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	if err := helperMain(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// helperMain is the helper process: args are dir, target and data.
func helperMain(args []string) error {
	if len(args) != 3 {
		return errors.Errorf("overlay2 mount helper: want 3 arguments (dir target data), got %d", len(args))
	}
	if err := unix.Chdir(args[0]); err != nil {
		return errors.Wrapf(err, "overlay2 mount helper: chdir %s", args[0])
	}
	if err := unix.Mount("overlay", args[1], "overlay", 0, args[2]); err != nil {
		return errors.Wrapf(err, "overlay2 mount helper: mount overlay on %s/%s", args[0], args[1])
	}
	return nil
}

// mountOverlay performs m, directly when absolute, through the helper
// process when relative.
func mountOverlay(m mountSpec) error {
	if m.dir == "" {
		if err := unix.Mount("overlay", m.target, "overlay", 0, m.data); err != nil {
			return errors.Wrapf(err, "mount overlay on %s (options %d bytes)", m.target, len(m.data))
		}
		return nil
	}
	cmd := exec.Command("/proc/self/exe", m.dir, m.target, m.data)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return errors.Errorf("mount overlay on %s/%s with relative paths: %s", m.dir, m.target, msg)
	}
	return nil
}

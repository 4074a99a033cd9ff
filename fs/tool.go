package fs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/pkg/errors"
)

// toolPackages names the distribution package that ships each program we run.
var toolPackages = map[string]string{
	"mkfs.ext4":  "e2fsprogs",
	"resize2fs":  "e2fsprogs",
	"e2fsck":     "e2fsprogs",
	"mkfs.xfs":   "xfsprogs",
	"xfs_growfs": "xfsprogs",
	"xfs_repair": "xfsprogs",
}

// sbinDirs are searched after PATH: filesystem tools live there and a
// non-login PATH often lacks them.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// lookTool finds name on PATH or in the sbin directories. A missing tool is
// ErrToolMissing with a hint naming the package to install.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	pkg := toolPackages[name]
	if pkg == "" {
		pkg = "the package that provides it"
	}
	return "", errors.Wrapf(ErrToolMissing, "%s not found in PATH: install %s", name, pkg)
}

// runTool runs name with args. On failure the error carries the tool's
// message (stderr, or stdout when stderr is empty) condensed to one line.
// When ctx ends the tool is killed and the error wraps ctx's error.
func runTool(ctx context.Context, name string, args ...string) error {
	_, err := runToolOutput(ctx, name, args...)
	return err
}

// runToolOutput is runTool returning stdout on success.
func runToolOutput(ctx context.Context, name string, args ...string) ([]byte, error) {
	p, err := lookTool(name)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, p, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return stdout.Bytes(), errors.Wrapf(cerr, "%s %s: stopped", name, strings.Join(args, " "))
		}
		msg := condense(stderr.String())
		if msg == "" {
			msg = condense(stdout.String())
		}
		if msg == "" {
			msg = "no message"
		}
		return stdout.Bytes(), errors.Wrapf(err, "%s %s: %s", name, strings.Join(args, " "), msg)
	}
	return stdout.Bytes(), nil
}

// banner matches the version line e2fsprogs tools print first, e.g.
// "mke2fs 1.47.0 (5-Feb-2023)". It is compiled on first use: compiling it when the package loads cost
// every thinctl process 10 ms at start under qemu's emulation.
var banner = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9_.]+ [0-9]+\.[0-9]+(\.[0-9]+)? \([^)]*\)$`)
})

// maxMessage caps a condensed tool message.
const maxMessage = 400

// condense turns a tool's multi-line output into one line: blank lines and
// version banners dropped, the rest joined with "; ", capped in length.
func condense(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || banner().MatchString(l) {
			continue
		}
		parts = append(parts, l)
	}
	out := strings.Join(parts, "; ")
	if len(out) > maxMessage {
		out = out[:maxMessage] + "..."
	}
	return out
}

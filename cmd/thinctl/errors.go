package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/thinpool"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError is a bad command line: exit status 2.
type usageError struct {
	what string // overrides the command's own name when set
	why  string
	hint string
}

func (e *usageError) Error() string { return e.why }

// usagef makes a usageError whose hint points at the command's --help.
func usagef(format string, args ...interface{}) error {
	return &usageError{why: fmt.Sprintf(format, args...)}
}

// errNotRoot is returned before anything is opened when thinctl runs
// without root.
var errNotRoot = errors.New("permission denied: thinctl needs root (CAP_SYS_ADMIN) to manage device-mapper devices, loop devices and mounts")

// hintedError is a failure (exit 1) that carries its own hint.
type hintedError struct{ msg, hint string }

func (e *hintedError) Error() string { return e.msg }

// dmOnlyError says a devicemapper-only command was run under another driver.
type dmOnlyError struct{ what, driver string }

func (e *dmOnlyError) Error() string {
	return fmt.Sprintf("%s is only available with the devicemapper driver (current driver: %s)", e.what, e.driver)
}

// deferredHint follows the note "remove" prints (exit 0) when a removal is
// deferred.
const deferredHint = "hint: the deletion finishes by itself once nothing holds the device; 'thinctl gc' finishes it now"

// problemsError makes "check" exit 1 when problems remain.
type problemsError struct {
	found, left int
	repaired    bool
	hint        string // the fixes of health problems, when there are any
}

func (e *problemsError) Error() string {
	if e.repaired {
		return fmt.Sprintf("%d of %d problems remain after repair", e.left, e.found)
	}
	if e.found == 1 {
		return "1 problem found"
	}
	return fmt.Sprintf("%d problems found", e.found)
}

// fail prints err as "thinctl: <what failed>: <why>" plus an optional hint
// and returns the exit status it maps to.
func (a *app) fail(c *call, err error) int {
	code, hint := diagnose(c, err)
	what := ""
	if c != nil {
		what = c.what()
	}
	var ue *usageError
	if errors.As(err, &ue) && ue.what != "" {
		what = ue.what
	}
	msg := oneLine(err.Error())
	if what != "" {
		msg = what + ": " + msg
	}
	fmt.Fprintf(a.stderr, "thinctl: %s\n", escapeControls(msg))
	if hint != "" {
		fmt.Fprintf(a.stderr, "hint: %s\n", escapeControls(hint))
	}
	return code
}

// oneLine folds a multi-line error message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// escapeControls writes control characters (an ID like "a\x1b[2J" given
// on the command line) as Go escapes, so an error never carries raw
// terminal control sequences or extra lines.
func escapeControls(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// diagnose maps an error to its exit status and a hint. It is the one
// place that knows which failures are usage errors and what helps; it
// tests the driver package's classes, which every backend's errors match.
func diagnose(c *call, err error) (int, string) {
	cmdName, root := "", ""
	if c != nil {
		root = c.rootFlag()
		if c.cmd != nil {
			cmdName = c.cmd.name
		}
	}
	var ue *usageError
	var dmo *dmOnlyError
	var pe *problemsError
	var he *hintedError
	var health *thinpool.HealthError
	switch {
	case errors.As(err, &he):
		return exitFailure, he.hint
	case errors.As(err, &ue):
		if ue.hint != "" {
			return exitUsage, ue.hint
		}
		if cmdName != "" {
			return exitUsage, fmt.Sprintf("run 'thinctl %s --help' for its usage", cmdName)
		}
		return exitUsage, "run 'thinctl --help' for usage"
	case (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && cmdName == "pool init":
		return exitFailure, "thinctl was interrupted before the pool was ready: what pool init had made is undone; run it again"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return exitFailure, fmt.Sprintf("thinctl was interrupted: what finished before the signal stays done and the step it was in was left as it was before; 'thinctl%s check' shows the state", root)
	case errors.Is(err, errNotRoot), errors.Is(err, dm.ErrPermission):
		return exitFailure, "run it as root, e.g. sudo thinctl " + cmdName
	case errors.As(err, &dmo):
		return exitFailure, "select the devicemapper driver with --driver devicemapper on a kernel with dm-thin-pool"
	case errors.Is(err, thinpool.ErrInvalidID):
		return exitUsage, idRules
	case errors.As(err, &pe) && pe.hint != "":
		return exitFailure, pe.hint
	case errors.Is(err, thinpool.ErrMetadataDamaged) && cmdName == "pool repair":
		return exitFailure, fmt.Sprintf("give thin_repair a spare block device at least as large as the metadata device: thinctl%s pool repair --spare-metadata-dev DEV (the old metadata stays untouched)", root)
	case errors.Is(err, thinpool.ErrToolMissing):
		return exitFailure, "install thin-provisioning-tools (thin_check, thin_repair), then run it again"
	case errors.As(err, &health) && healthHint(health, root) != "":
		return exitFailure, healthHint(health, root)
	case errors.As(err, &pe):
		if pe.repaired {
			return exitFailure, "the rest needs a person: see the DETAIL column"
		}
		return exitFailure, fmt.Sprintf("thinctl%s check --repair fixes what can be fixed without losing data", root)
	case errors.Is(err, driver.ErrHasChildren) && cmdName == "pool destroy":
		return exitFailure, fmt.Sprintf("remove them first, or remove them with the pool: thinctl%s pool destroy --force", root)
	case errors.Is(err, driver.ErrNotInitialized):
		return exitFailure, fmt.Sprintf("create it first: thinctl%s pool init", root)
	case errors.Is(err, driver.ErrAlreadyInitialized):
		return exitFailure, fmt.Sprintf("use the existing pool, or remove it first with: thinctl%s pool destroy", root)
	case errors.Is(err, driver.ErrNoSpace) && cmdName == "import":
		// The layer's own filesystem is what is short (a thin device's
		// size, or the host's under overlay2): growing the pool adds
		// nothing to it.
		return exitFailure, "the archive's content does not fit in the new layer's filesystem (the error says how much was free): free space there, or check that the archive is what you meant to import"
	case errors.Is(err, driver.ErrNoSpace):
		return exitFailure, fmt.Sprintf("grow the pool: thinctl%s pool grow --data-size SIZE (and/or --metadata-size SIZE), or remove devices you no longer need", root)
	case errors.Is(err, thinpool.ErrPoolReadOnly):
		return exitFailure, fmt.Sprintf("the pool stopped accepting writes: thinctl%s check says why and what fixes it", root)
	case errors.Is(err, driver.ErrBusy):
		return exitFailure, busyHint(cmdName)
	case errors.Is(err, driver.ErrHasChildren):
		return exitFailure, fmt.Sprintf("remove its snapshots first ('thinctl%s list' shows each device's parent)", root)
	case errors.Is(err, driver.ErrNotFound):
		return exitFailure, fmt.Sprintf("'thinctl%s list' shows the devices there are", root)
	case errors.Is(err, driver.ErrExists):
		return exitFailure, "choose another ID, or remove the existing device first"
	case errors.Is(err, driver.ErrCorrupt):
		// check --repair opens the same registry and stops at the same
		// file, so the only way out is the file itself; thinctl never
		// rewrites it.
		return exitFailure, "thinctl left the file as it is: restore it from a backup (docs/registry.md describes the format), then run thinctl" + root + " check"
	case errors.Is(err, thinpool.ErrInvalidSize):
		return exitFailure, "a device is at least as large as its parent; the pool only grows"
	case errors.Is(err, driver.ErrNotSupported):
		return exitFailure, unsupportedHint(c)
	}
	return exitFailure, ""
}

// busyHint tells what to do about a busy device; the error itself names
// the processes holding it.
func busyHint(cmdName string) string {
	switch cmdName {
	case "pool down", "pool destroy":
		return "unmount the devices first ('thinctl list' shows which are mounted) and stop the processes named above"
	case "deactivate":
		return "unmount it first (thinctl unmount ID) and stop the processes named above"
	}
	return "stop the processes named above (or leave their mount namespace), then retry"
}

// unsupportedHint explains a driver the kernel cannot run and names the
// driver auto would pick instead.
func unsupportedHint(c *call) string {
	if c == nil {
		return ""
	}
	name := c.ch.Name
	if name == "" {
		name = c.g.driver
	}
	alt := ""
	if c.app != nil && c.app.choose != nil {
		if ch, err := c.app.choose(c.g.root, "auto"); err == nil && ch.Name != name {
			alt = ch.Name
		}
	}
	var s string
	switch name {
	case "devicemapper":
		s = "this kernel lacks dm-thin-pool (try: modprobe dm-thin-pool)"
	case "aufs":
		s = "this kernel has no aufs"
	default:
		s = "this host cannot run the " + name + " driver"
	}
	if alt != "" {
		s += "; --driver auto would pick " + alt
	}
	return s
}

// rootFlag renders " --root DIR" for hints when the root is not the
// default, so a copied hint acts on the same pool.
func (c *call) rootFlag() string {
	if c.g.root == "" || c.g.root == defaultRoot || (c.app != nil && c.app.getenv("THINCTL_ROOT") == c.g.root) {
		return ""
	}
	return " --root " + c.g.root
}

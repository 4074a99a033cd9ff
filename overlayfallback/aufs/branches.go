package aufs

import (
	"strings"

	"github.com/pkg/errors"
)

// aufs takes its branches in the mount data, a string the kernel copies in
// one page (PAGE_SIZE bytes including the terminating NUL). A deep chain of
// layers does not fit, so the first mount carries as many branches as fit
// and the rest are appended, bottom-most last, by remounts whose data is
// "append:<dir>=ro+wh[,append:<dir>=ro+wh...]" (mount(8) spells the same
// request "-o remount,append:<dir>=ro+wh"; at the syscall the "remount"
// word is the MS_REMOUNT flag, not part of the data, and aufs rejects it as
// an unknown option). aufs applies remount options left to right, so order
// is preserved.

const (
	// permRW is the permission of the layer's own branch.
	permRW = "=rw"
	// permRO marks ancestor branches: read-only, but their whiteouts count.
	permRO = "=ro+wh"
	// xinoPath is the external inode number table aufs keeps in tmpfs.
	xinoPath = "/dev/shm/aufs.xino"
)

// mountPlan is the mount(2) data for one aufs mount: the data of the first
// mount and the data of each remount that appends the branches left over.
type mountPlan struct {
	First   string
	Appends []string
}

// branchOpts returns the non-branch options of a mount: dirperm1 when the
// module has it, the xino file, and the SELinux context when a label is set.
func branchOpts(dirperm1 bool, mountLabel string) string {
	opts := []string{}
	if dirperm1 {
		opts = append(opts, "dirperm1")
	}
	opts = append(opts, "xino="+xinoPath)
	if mountLabel != "" {
		opts = append(opts, `context="`+mountLabel+`"`)
	}
	return strings.Join(opts, ",")
}

// branchString returns the complete "br:" option for rw on top of ro
// (nearest ancestor first), as it would read if it fitted one page.
func branchString(rw string, ro []string) string {
	var b strings.Builder
	b.WriteString("br:" + rw + permRW)
	for _, dir := range ro {
		b.WriteString(":" + dir + permRO)
	}
	return b.String()
}

// planMount splits the branches of one mount over the first mount's data
// and as few remount batches as possible, every data string at most
// pageSize-1 bytes long (the kernel needs room for the NUL). rw is the
// layer's own branch, ro its ancestors' branches nearest first, opts the
// other options (see branchOpts).
func planMount(rw string, ro []string, opts string, pageSize int) (mountPlan, error) {
	limit := pageSize - 1
	for _, dir := range append([]string{rw}, ro...) {
		if strings.ContainsAny(dir, ":,=") {
			return mountPlan{}, errors.Errorf("aufs: branch %q contains : , or =, which the br: option cannot carry; use a driver home without those characters", dir)
		}
	}
	var plan mountPlan
	first := "br:" + rw + permRW
	tail := ""
	if opts != "" {
		tail = "," + opts
	}
	if len(first)+len(tail) > limit {
		return mountPlan{}, errors.Errorf("aufs: mount data for branch %s is %d bytes, more than one page (%d) can carry; use a shorter driver home", rw, len(first)+len(tail), limit)
	}
	i := 0
	for ; i < len(ro); i++ {
		next := ":" + ro[i] + permRO
		if len(first)+len(next)+len(tail) > limit {
			break
		}
		first += next
	}
	plan.First = first + tail
	batch := ""
	for ; i < len(ro); i++ {
		opt := "append:" + ro[i] + permRO
		if len(opt) > limit {
			return mountPlan{}, errors.Errorf("aufs: remount data for branch %s is %d bytes, more than one page (%d) can carry; use a shorter driver home", ro[i], len(opt), limit)
		}
		switch {
		case batch == "":
			batch = opt
		case len(batch)+1+len(opt) <= limit:
			batch += "," + opt
		default:
			plan.Appends = append(plan.Appends, batch)
			batch = opt
		}
	}
	if batch != "" {
		plan.Appends = append(plan.Appends, batch)
	}
	return plan, nil
}

// planBranches lists the branches a plan mounts, top first, with their
// permissions: the inverse of planMount, used by tests and diagnostics.
func planBranches(p mountPlan) []string {
	var out []string
	first := p.First
	if i := strings.Index(first, ","); i >= 0 {
		first = first[:i]
	}
	first = strings.TrimPrefix(first, "br:")
	if first != "" {
		out = append(out, strings.Split(first, ":")...)
	}
	for _, batch := range p.Appends {
		for _, opt := range strings.Split(batch, ",") {
			out = append(out, strings.TrimPrefix(opt, "append:"))
		}
	}
	return out
}

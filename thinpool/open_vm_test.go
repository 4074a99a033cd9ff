//go:build vm

package thinpool

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// dmLog is a dm.Client logger that keeps the operations it was given.
type dmLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *dmLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, fmt.Sprintf(format, args...))
}

func (l *dmLog) count(op string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.ops {
		if strings.Contains(s, op) {
			n++
		}
	}
	return n
}

// openLogged opens root with a dm client whose operations the returned
// log keeps.
func openLogged(t *testing.T, root string) (*Pool, *dmLog) {
	t.Helper()
	l := &dmLog{}
	c, err := dm.Open(dm.Options{Logger: l.logf})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	p, err := Open(context.Background(), root, OpenOptions{DM: c})
	must(t, err)
	return p, l
}

// suspendMarked reads p's suspend mark under the lock.
func suspendMarked(t *testing.T, p *Pool) bool {
	t.Helper()
	must(t, p.lk.Lock())
	defer p.lk.Unlock()
	return p.lk.SuspendMarked()
}

// Open looks for thin devices to resume (one DM_LIST_DEVICES and a status
// per device) only when the lock file's suspend mark says a process
// suspended one and did not resume it; a device someone else suspended is
// left as it is, and a marked one is resumed and the mark cleared.
func TestOpenResumesSuspendedDevicesOnlyWhenAProcessLeftOneSuspended(t *testing.T) {
	p, root := newVMPool(t, smallOptions())
	ctx := context.Background()
	_, origin := createActive(t, p, "parent")
	must(t, p.Close())

	// A snapshot of the active parent suspends and resumes it: the mark is
	// set and cleared again.
	q, l := openLogged(t, root)
	if n := l.count("list devices"); n != 0 {
		t.Errorf("Open of an unmarked root listed the dm devices %d times, want 0", n)
	}
	must(t, q.Create(ctx, "child", "parent", CreateOptions{}))
	if suspendMarked(t, q) {
		t.Errorf("the suspend mark is still set after a snapshot resumed its parent")
	}
	must(t, q.Close())

	mustDmsetup(t, "suspend", origin)
	q, l = openLogged(t, root)
	must(t, q.Close())
	if s := dmState(t, origin); s != "SUSPENDED" {
		t.Errorf("Open of an unmarked root left the parent someone else suspended %s, want SUSPENDED", s)
	}
	if n := l.count("list devices"); n != 0 {
		t.Errorf("Open of an unmarked root listed the dm devices %d times, want 0", n)
	}

	// What a process killed between suspend and resume leaves.
	lk, err := store.OpenLock(stateDir(root) + "/" + store.LockFileName)
	must(t, err)
	must(t, lk.Lock())
	must(t, lk.SetSuspendMark(true))
	lk.Unlock()
	must(t, lk.Close())
	q, l = openLogged(t, root)
	defer q.Close()
	if s := dmState(t, origin); s != "ACTIVE" {
		t.Errorf("Open of a marked root left the parent %s, want ACTIVE", s)
	}
	if n := l.count("list devices"); n != 1 {
		t.Errorf("Open of a marked root listed the dm devices %d times, want 1", n)
	}
	if suspendMarked(t, q) {
		t.Errorf("Open resumed every device but left the suspend mark set")
	}
}

// A journal of churn (devices created and removed again) is compacted by
// the next Open, which still reads back every record; a short journal is
// left as it is.
func TestOpenCompactsAJournalOfChurnAndLosesNothing(t *testing.T) {
	o := smallOptions()
	o.NoDiscard = true // no record of space still being returned
	p, root := newVMPool(t, o)
	ctx := context.Background()
	must(t, p.Create(ctx, "keep", "", CreateOptions{Labels: map[string]string{"k": "v"}}))
	for i := 0; i < store.ReplayCompactFrames/2; i++ {
		id := fmt.Sprintf("tmp-%d", i)
		must(t, p.Create(ctx, id, "keep", CreateOptions{}))
		must(t, p.Remove(ctx, id))
	}
	frames := p.store.JournalFrames()
	if frames < store.ReplayCompactFrames {
		t.Fatalf("%d create+remove cycles appended %d frames, want at least %d", store.ReplayCompactFrames/2, frames, store.ReplayCompactFrames)
	}
	must(t, p.Close())

	q, err := Open(ctx, root, OpenOptions{})
	must(t, err)
	if q.store.JournalFrames() != 0 {
		t.Errorf("after Open of a journal of %d frames and 1 record it holds %d frames, want 0 (compacted)", frames, q.store.JournalFrames())
	}
	must(t, q.Create(ctx, "second", "keep", CreateOptions{}))
	must(t, q.Close())

	r, err := Open(ctx, root, OpenOptions{})
	must(t, err)
	defer r.Close()
	if r.store.JournalFrames() == 0 {
		t.Errorf("Open compacted a journal of one create")
	}
	recs, err := r.store.List()
	must(t, err)
	var ids []string
	for _, d := range recs {
		ids = append(ids, d.ID)
	}
	if strings.Join(ids, ",") != "keep,second" {
		t.Errorf("after the compaction the registry holds %v, want [keep second]", ids)
	}
	if d, err := r.Device("keep"); err != nil || d.Labels["k"] != "v" {
		t.Errorf("keep after the compaction = %+v, %v; want its label k=v", d, err)
	}
}

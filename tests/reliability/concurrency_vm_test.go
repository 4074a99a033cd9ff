//go:build vm

package reliability

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/thinpool"
)

// operator is what a concurrent worker drives: thinctl processes or the
// thinpool API.
type operator interface {
	create(id, parent string) error
	mount(id string) (string, error)
	unmount(id string) error
	remove(id string) error
}

// cliOperator runs every operation as its own thinctl process.
type cliOperator struct{ r *rig }

func (o cliOperator) do(args ...string) (string, error) {
	res := o.r.runEnv(nil, args...)
	if res.code != 0 {
		return "", errors.New(res.String())
	}
	return strings.TrimSpace(res.stdout), nil
}

func (o cliOperator) create(id, parent string) error {
	args := []string{"create", id}
	if parent != "" {
		args = append(args, "--parent", parent)
	}
	_, err := o.do(args...)
	return err
}
func (o cliOperator) mount(id string) (string, error) { return o.do("mount", id) }
func (o cliOperator) unmount(id string) error         { _, err := o.do("unmount", id); return err }
func (o cliOperator) remove(id string) error          { _, err := o.do("remove", id); return err }

// apiOperator calls a thinpool.Pool.
type apiOperator struct{ p *thinpool.Pool }

func (o apiOperator) create(id, parent string) error {
	return o.p.Create(context.Background(), id, parent, thinpool.CreateOptions{})
}
func (o apiOperator) mount(id string) (string, error) {
	return o.p.Mount(context.Background(), id, thinpool.MountOptions{})
}
func (o apiOperator) unmount(id string) error { return o.p.Unmount(context.Background(), id) }
func (o apiOperator) remove(id string) error  { return o.p.Remove(context.Background(), id) }

// model is what one worker believes exists: its devices, their parents,
// what their file "data" holds and whether they are mounted.
type model struct {
	parent  map[string]string
	content map[string]string
	mounted map[string]string
}

func (m *model) children(id string) int {
	n := 0
	for _, p := range m.parent {
		if p == id {
			n++
		}
	}
	return n
}

func (m *model) ids() []string {
	var out []string
	for id := range m.parent {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// work runs n random operations on the worker's own devices (prefix) and
// returns its model; every operation must succeed.
func work(t *testing.T, op operator, prefix string, n int, seed int64, errs chan<- error) *model {
	rnd := rand.New(rand.NewSource(seed))
	m := &model{parent: map[string]string{}, content: map[string]string{}, mounted: map[string]string{}}
	next := 0
	fail := func(what string, err error) { errs <- fmt.Errorf("%s: %s: %v", prefix, what, err) }
	for i := 0; i < n; i++ {
		ids := m.ids()
		pick := func() string { return ids[rnd.Intn(len(ids))] }
		switch k := rnd.Intn(10); {
		case len(ids) == 0 || k < 3: // create from the base device
			id := prefix + strconv.Itoa(next)
			next++
			if err := op.create(id, ""); err != nil {
				fail("create "+id, err)
				continue
			}
			m.parent[id], m.content[id] = "", ""
		case k < 5: // snapshot one of ours (mounted or not)
			parent := pick()
			id := prefix + strconv.Itoa(next)
			next++
			if err := op.create(id, parent); err != nil {
				fail("snapshot "+parent+" as "+id, err)
				continue
			}
			m.parent[id], m.content[id] = parent, m.content[parent]
		case k < 7: // mount, check, write
			id := pick()
			mp, ok := m.mounted[id]
			if !ok { // a second Mount would only take another reference
				var err error
				if mp, err = op.mount(id); err != nil {
					fail("mount "+id, err)
					continue
				}
			}
			b, err := os.ReadFile(filepath.Join(mp, "data"))
			if err != nil && !os.IsNotExist(err) {
				fail("read "+id, err)
			}
			if string(b) != m.content[id] {
				fail("read "+id, fmt.Errorf("holds %q, want %q", b, m.content[id]))
			}
			if err := writeSynced(filepath.Join(mp, "data"), id); err != nil {
				fail("write "+id, err)
				continue
			}
			m.content[id], m.mounted[id] = id, mp
		case k < 8: // unmount
			id := pick()
			if err := op.unmount(id); err != nil {
				fail("unmount "+id, err)
				continue
			}
			delete(m.mounted, id)
		default: // remove a leaf
			id := pick()
			if m.children(id) > 0 {
				continue
			}
			if err := op.remove(id); err != nil {
				fail("remove "+id, err)
				continue
			}
			delete(m.parent, id)
			delete(m.content, id)
			delete(m.mounted, id)
		}
	}
	return m
}

// opsPerWorker is the 100 with THINCTL_RELIABILITY_FULL=1, and a
// smaller count for `make test` under emulation.
func opsPerWorker() int {
	s := os.Getenv("THINCTL_RELIABILITY_OPS")
	if b, err := os.ReadFile("testdata/ops"); err == nil { // the VM rig's way in
		s = strings.TrimSpace(string(b))
	}
	if s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	switch {
	case full:
		return 100
	case udevMode:
		return 3
	}
	return 5
}

// runWorkers runs eight workers, checks every model against the pool and
// returns the total number of operations.
func runWorkers(t *testing.T, r *rig, ops func(i int) operator) {
	const workers = 8
	n := opsPerWorker()
	errs := make(chan error, workers*n)
	models := make([]*model, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			models[i] = work(t, ops(i), fmt.Sprintf("w%d-", i), n, int64(i+1), errs)
		}(i)
	}
	wg.Wait()
	close(errs)
	took := time.Since(start)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d workers × %d operations in %v (%.0f ms per operation, wall clock)", workers, n, took.Round(time.Millisecond),
		float64(took.Milliseconds())/float64(workers*n))
	fmt.Printf("CONCURRENCY %s: %d workers x %d operations in %v\n", t.Name(), workers, n, took.Round(time.Millisecond))
	r.t = t
	want := map[string]*model{}
	for _, m := range models {
		for id := range m.parent {
			want[id] = m
		}
	}
	got := map[string]device{}
	devIDs := map[uint32]string{}
	for _, d := range r.list() {
		if _, dup := got[d.ID]; dup {
			t.Errorf("device %s listed twice", d.ID)
		}
		got[d.ID] = d
		if other, dup := devIDs[d.DeviceID]; dup {
			t.Errorf("thin id %d used by %s and %s", d.DeviceID, other, d.ID)
		}
		devIDs[d.DeviceID] = d.ID
		if want[d.ID] == nil {
			t.Errorf("device %s exists but no worker created it (or it was removed)", d.ID)
		}
	}
	for id, m := range want {
		d, ok := got[id]
		if !ok || d.Deleted {
			t.Errorf("device %s was lost (%+v)", id, d)
			continue
		}
		if d.Parent != m.parent[id] {
			t.Errorf("device %s has parent %q, want %q", id, d.Parent, m.parent[id])
		}
		_, mounted := m.mounted[id]
		if d.Mounted != mounted {
			t.Errorf("device %s mounted=%v, want %v", id, d.Mounted, mounted)
		}
	}
	r.assertConsistent(t)
	// The workers read every device back on each mount; here a sample of
	// eight is read once more (each read costs two thinctl processes).
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	step := max(1, len(ids)/8)
	for i, id := range ids {
		m := want[id]
		_, mounted := m.mounted[id]
		if i%step == 0 {
			if got := r.readData(t, id, true); got != m.content[id] {
				t.Errorf("device %s holds %q, want %q", id, got, m.content[id])
			}
			mounted = true
		}
		if mounted {
			r.must("unmount", id)
		}
	}
	r.assertPoolMatchesRegistry(t)
}

// TestReliabilityConcurrentProcesses runs eight workers, each a stream of
// thinctl processes doing mixed operations on one root.
func TestReliabilityConcurrentProcesses(t *testing.T) {
	r := newPoolRig(t, "")
	runWorkers(t, r, func(int) operator { return cliOperator{r: &rig{t: t, tc: r.tc, root: r.root}} })
}

// TestReliabilityConcurrentGoroutines does the same with goroutines of
// this process calling thinpool: four share one Pool, four open their own.
func TestReliabilityConcurrentGoroutines(t *testing.T) {
	r := newPoolRig(t, "")
	shared, err := thinpool.Open(context.Background(), r.root, thinpool.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pools := []*thinpool.Pool{shared}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	var mu sync.Mutex
	runWorkers(t, r, func(i int) operator {
		if i < 4 {
			return apiOperator{p: shared}
		}
		p, err := thinpool.Open(context.Background(), r.root, thinpool.OpenOptions{})
		if err != nil {
			t.Error(err)
			return apiOperator{p: shared}
		}
		mu.Lock()
		pools = append(pools, p)
		mu.Unlock()
		return apiOperator{p: p}
	})
}

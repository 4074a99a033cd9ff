package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/thinpool"
)

// concurrency is measurement 7: k goroutines share one Pool and create +
// activate total devices between them (snapshots of the origin), then
// deactivate + remove them, for each k in creators. Throughput is total /
// wall time; the kernel serialises pool messages, so what can overlap is
// the library's own work, its fsyncs and the activations.
func (r *rig) concurrency(creators []int, total int) (*Concurrency, error) {
	c := &Concurrency{Total: total, Creators: creators}
	for _, k := range creators {
		lib := &libPath{label: PathLibrary, pool: r.pool, parent: originID, prefix: "conc" + strconv.Itoa(k) + "-"}
		create, err := inParallel(k, total, lib.create)
		if err != nil {
			return c, errors.Wrapf(err, "%d concurrent creators", k)
		}
		remove, err := inParallel(k, total, lib.remove)
		if err != nil {
			return c, errors.Wrapf(err, "%d concurrent removers", k)
		}
		c.CreateMs = append(c.CreateMs, create)
		c.RemoveMs = append(c.RemoveMs, remove)
		r.logf("concurrency: %d creators: %d create+activate in %.0f ms (%.2f/s), deactivate+remove in %.0f ms",
			k, total, create, float64(total)/(create/1000), remove)
	}
	return c, nil
}

// inParallel runs op(0..n-1) on k goroutines (each takes the next index)
// and returns the wall time in milliseconds.
func inParallel(k, n int, op func(i int) error) (float64, error) {
	var (
		mu   sync.Mutex
		next int
		errs []error
		wg   sync.WaitGroup
	)
	t0 := time.Now()
	for g := 0; g < k; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				failed := len(errs) > 0
				mu.Unlock()
				if i >= n || failed {
					return
				}
				if err := op(i); err != nil {
					mu.Lock()
					errs = append(errs, errors.Wrapf(err, "device %d", i))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	d := ms(time.Since(t0))
	if len(errs) > 0 {
		return d, errs[0]
	}
	return d, nil
}

// probeLine starts the line a probe child prints with its figures.
const probeLine = "PROBE "

// probeMain is `thinctl-bench probe -root DIR`: open the root, list its
// devices, print the times as one JSON line and exit. The parent reads the
// child's peak RSS from its rusage, so the harness's own memory (and the
// fill it did) does not count.
func probeMain(args []string) error {
	fl := flag.NewFlagSet("probe", flag.ContinueOnError)
	root := fl.String("root", "", "the thinpool root to open")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *root == "" {
		return errors.New("probe: give the root with -root DIR")
	}
	phases := []Phase{{Step: "until the first report (pool.json, the root lock)"}}
	t0 := time.Now()
	// Open reports its steps through Progress: their times are the profile
	// of what opening a root costs.
	progress := func(step string, _ float64) { phases = append(phases, Phase{Step: step, AtMs: ms(time.Since(t0))}) }
	p, err := thinpool.Open(context.Background(), *root, thinpool.OpenOptions{Progress: progress})
	if err != nil {
		return err
	}
	open := ms(time.Since(t0))
	t1 := time.Now()
	devs, err := p.Devices()
	if err != nil {
		p.Close()
		return err
	}
	list := ms(time.Since(t1))
	if err := p.Close(); err != nil {
		return err
	}
	b, err := json.Marshal(Probe{Devices: len(devs), OpenMs: open, ListMs: list, Phases: phases})
	if err != nil {
		return err
	}
	fmt.Println(probeLine + string(b))
	return nil
}

// probe runs one probe child on the library's root and returns its figures
// with the process's wall time and peak RSS. The library's own Pool stays
// open: a Pool is safe to share a root with other processes.
func (r *rig) probe() (Probe, error) {
	exe, err := os.Executable()
	if err != nil {
		return Probe{}, err
	}
	root := filepath.Join(r.work, poolDir)
	t0 := time.Now()
	cmd := exec.Command(exe, "probe", "-root", root)
	out, err := cmd.Output()
	wall := ms(time.Since(t0))
	if err != nil {
		return Probe{}, errors.Wrapf(err, "thinctl-bench probe -root %s: %s", root, out)
	}
	var p Probe
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, probeLine); ok {
			if err := json.Unmarshal([]byte(rest), &p); err != nil {
				return Probe{}, errors.Wrapf(err, "probe output %q", line)
			}
		}
	}
	if p.OpenMs == 0 {
		return Probe{}, errors.Errorf("probe printed no %q line: %s", probeLine, out)
	}
	p.ProcessMs = wall
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		p.MaxRSSKiB = ru.Maxrss // KiB on Linux
	}
	return p, nil
}

package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progressDelay is how long work runs before a bar appears: quick
// commands (opening an up pool) stay quiet.
const progressDelay = time.Second

// progressBar draws thinpool's progress reports on one terminal line,
// redrawing it in place, and erases it when the work is done.
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	shown bool
	last  string
	now   func() time.Time
}

// update redraws the line for step at fraction (0..1).
func (p *progressBar) update(step string, fraction float64) {
	if fraction < 0 {
		fraction = 0
	}
	if fraction > 1 {
		fraction = 1
	}
	line := fmt.Sprintf("%s %s %3.0f%%", bar(fraction*100, 20), step, fraction*100)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.start.IsZero() {
		p.start = now
	}
	if line == p.last || now.Sub(p.start) < progressDelay {
		return
	}
	p.last = line
	p.shown = true
	fmt.Fprintf(p.w, "\r\x1b[K%s", line)
}

// done erases the progress line, if one was drawn.
func (p *progressBar) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
	p.last = ""
	p.start = time.Time{}
}

// progress returns the Progress callback for thinpool: a bar on stderr
// when stderr is a terminal, nil (no output) otherwise. The bar is erased
// before the command prints its result or error.
func (c *call) progress() func(string, float64) {
	if c.bar != nil {
		return c.bar.update
	}
	if !c.app.isTerminal(c.app.stderr) {
		return nil
	}
	c.bar = &progressBar{w: c.app.stderr, now: time.Now}
	return c.bar.update
}

// stdout is where commands print results: the progress line is erased
// before anything is written, so results never share a line with it.
func (c *call) stdout() io.Writer { return eraseFirst{c} }

type eraseFirst struct{ c *call }

func (e eraseFirst) Write(b []byte) (int, error) {
	e.c.endProgress()
	return e.c.app.stdout.Write(b)
}

// endProgress erases the progress line.
func (c *call) endProgress() {
	if c.bar != nil {
		c.bar.done()
	}
}

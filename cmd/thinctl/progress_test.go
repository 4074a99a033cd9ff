package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestTheProgressBarStaysQuietForQuickWork(t *testing.T) {
	var w bytes.Buffer
	now := time.Unix(0, 0)
	p := &progressBar{w: &w, now: func() time.Time { return now }}
	p.update("bringing up the thin pool", 0.1)
	now = now.Add(progressDelay / 2)
	p.update("done", 1)
	p.done()
	if w.Len() != 0 {
		t.Fatalf("quick work drew %q", w.String())
	}
}

func TestTheProgressBarDrawsSlowWorkInPlaceAndErasesIt(t *testing.T) {
	var w bytes.Buffer
	now := time.Unix(0, 0)
	p := &progressBar{w: &w, now: func() time.Time { return now }}
	p.update("formatting the base device (ext4)", 0.3)
	now = now.Add(progressDelay)
	p.update("formatting the base device (ext4)", 0.3)
	p.update("formatting the base device (ext4)", 0.3) // unchanged: not redrawn
	p.update("saving the registry", 1.5)               // clamped to 100%
	p.done()
	want := "\r\x1b[K[######..............] formatting the base device (ext4)  30%" +
		"\r\x1b[K[####################] saving the registry 100%" +
		"\r\x1b[K"
	if w.String() != want {
		t.Fatalf("drew %q\nwant %q", w.String(), want)
	}
}

func TestProgressIsOffWhenStderrIsNotATerminal(t *testing.T) {
	h := newHarness(t)
	var out, errb bytes.Buffer
	c := &call{app: h.app(&out, &errb)}
	if f := c.progress(); f != nil {
		t.Fatal("a progress callback was returned for a non-terminal")
	}
	c.endProgress() // harmless without a bar
	if errb.Len() != 0 {
		t.Fatalf("wrote %q to a non-terminal", errb.String())
	}
}

func TestResultsAreNeverPrintedOnTheProgressLine(t *testing.T) {
	h := newHarness(t)
	var out, errb bytes.Buffer
	a := h.app(&out, &errb)
	a.isTerminal = func(io.Writer) bool { return true }
	c := &call{app: a}
	f := c.progress()
	c.bar.now = func() time.Time { return time.Unix(100, 0) }
	c.bar.start = time.Unix(0, 0)
	f("growing the data file", 0.5)
	if !strings.Contains(errb.String(), "growing the data file") {
		t.Fatalf("no bar drawn: %q", errb.String())
	}
	c.stdout().Write([]byte("Grew pool\n"))
	if !strings.HasSuffix(errb.String(), "\r\x1b[K") || out.String() != "Grew pool\n" {
		t.Fatalf("the bar was not erased before the result: stderr %q stdout %q", errb.String(), out.String())
	}
}

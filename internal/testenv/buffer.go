package testenv

import (
	"bytes"
	"sync"
)

// LockedBuffer is a bytes.Buffer that goroutines under test (a logger, a
// server) and the test itself can share: each Write and String holds its
// mutex.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what has been written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

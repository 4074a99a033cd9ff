//go:build vm

package thinpool

import (
	"context"
	"fmt"
	"testing"

	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// The registry's own flushes (fdatasync of the journal, counted in
// process): at most one per create and per remove with discards off, on
// the success path; the pool's metadata commit is the kernel's.
func TestTheRegistryFlushesOncePerCreateAndRemove(t *testing.T) {
	p, _ := newVMPool(t, Options{DataSize: GiB, MetadataSize: 64 * MiB, BaseSize: 256 * MiB, NoDiscard: true})
	defer p.Close()
	ctx := context.Background()
	const n = 10
	f0 := store.Flushes()
	for i := range n {
		must(t, p.Create(ctx, fmt.Sprintf("d%d", i), "", CreateOptions{}))
	}
	f1 := store.Flushes()
	for i := range n {
		must(t, p.Remove(ctx, fmt.Sprintf("d%d", i)))
	}
	f2 := store.Flushes()
	if c, r := f1-f0, f2-f1; c != n || r != n {
		t.Fatalf("the registry flushed %d times for %d creates and %d times for %d removes; want one each", c, n, r, n)
	}
	fmt.Printf("FLUSHES registry: %d fdatasync for %d creates, %d for %d removes\n", f1-f0, n, f2-f1, n)
}

//go:build vm

package thinpool

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

func debugLogger(buf *testenv.LockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// The Logger of Options and OpenOptions is told, at debug level, how a
// removed device's space was reclaimed and what recovery did with a
// transaction a crash left open.
func TestTheLoggerIsToldTheBackgroundDecisions(t *testing.T) {
	var buf testenv.LockedBuffer
	o := smallOptions()
	o.Logger = debugLogger(&buf)
	p, root := newVMPool(t, o)
	ctx := context.Background()
	must(t, p.Create(ctx, "gone", "", CreateOptions{}))
	must(t, p.Remove(ctx, "gone"))
	must(t, p.ReturnSpace(ctx))
	if s := buf.String(); !strings.Contains(s, `msg="space reclaim"`) || !strings.Contains(s, "way=skip") {
		t.Errorf("after the reclaim of an unwritten snapshot the log says:\n%s", s)
	}

	// A create whose begin entry is durable and whose message was never
	// sent: the next Open undoes it.
	d := store.Device{Version: store.RecordVersion, ID: "never", DeviceID: 77, Size: p.cfg.BaseSize, Initialized: true}
	must(t, p.store.Begin(store.Tx{Op: store.OpCreateSnap, DeviceID: 77, OriginDeviceID: p.cfg.BaseDeviceID, ID: "never", Device: &d}))
	must(t, p.Close())
	var reopened testenv.LockedBuffer
	q, err := Open(ctx, root, OpenOptions{Logger: debugLogger(&reopened)})
	must(t, err)
	defer q.Close()
	s := reopened.String()
	if !strings.Contains(s, `msg="recover transaction"`) || !strings.Contains(s, "thin_id=77") || !strings.Contains(s, "action=undo") {
		t.Errorf("after Open recovered the create of thin id 77 the log says:\n%s", s)
	}
	if _, err := q.Device("never"); err == nil {
		t.Error("the create that never reached the pool was kept")
	}
}

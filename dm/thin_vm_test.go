//go:build vm

package dm

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// thinPool activates a thin pool over fresh loop devices (4 MiB metadata,
// dataSize bytes of data, 64 KiB blocks) and returns its name and table.
func thinPool(t *testing.T, c *Client, dataSize int64, lowWater uint64) (string, Target) {
	t.Helper()
	meta := loopDevice(t, 4<<20) // sparse, so its first 4 KiB are already zero
	data := loopDevice(t, dataSize)
	pool := devName(t)
	table := Target{Start: 0, Length: uint64(dataSize / 512), Type: "thin-pool",
		Params: fmt.Sprintf("%s %s 128 %d 1 skip_block_zeroing", majMin(meta.Dev), majMin(data.Dev), lowWater)}
	activate(t, c, pool, []Target{table}, LoadOptions{})
	return pool, table
}

// thinDevice creates thin id in pool and activates it with size sectors.
func thinDevice(t *testing.T, c *Client, pool string, id int, sectors uint64) (string, Target) {
	t.Helper()
	if _, err := c.Message(pool, 0, fmt.Sprintf("create_thin %d", id)); err != nil {
		t.Fatalf("create_thin %d: %v", id, err)
	}
	name := devName(t)
	tg := Target{Start: 0, Length: sectors, Type: "thin", Params: fmt.Sprintf("%s %d", majMin(mustInfo(t, c, pool).Dev), id)}
	activate(t, c, name, []Target{tg}, LoadOptions{})
	return name, tg
}

func TestAThinPoolAndAThinDeviceReadBackAsDmsetupShowsThem(t *testing.T) {
	c := vmClient(t)
	pool, poolTable := thinPool(t, c, 64<<20, 16)
	got, err := c.Table(pool, TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Type != "thin-pool" || strings.TrimSpace(got[0].Params) != poolTable.Params {
		t.Errorf("pool Table = %+v, want %+v", got, poolTable)
	}
	if oracle := dmsetupTable(t, "table", pool); oracle != formatTable(got) {
		t.Errorf("dmsetup table = %q, Table = %q", oracle, formatTable(got))
	}
	status, err := c.Status(pool, StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if oracle := dmsetupTable(t, "status", pool); oracle != formatTable(status) {
		t.Errorf("dmsetup status = %q, Status = %q", oracle, formatTable(status))
	}
	if !strings.HasPrefix(status[0].Params, "0 ") {
		t.Errorf("fresh pool status %q does not start with transaction id 0", status[0].Params)
	}

	thin, thinTable := thinDevice(t, c, pool, 1, 32768)
	wantTable(t, c, thin, []Target{thinTable})
	wantInfoMatchesDmsetup(t, c, thin)
	ts, err := c.Status(thin, StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if oracle := dmsetupTable(t, "status", thin); oracle != formatTable(ts) || ts[0].Params != "0 -" {
		t.Errorf("thin Status = %q, dmsetup status = %q, want params \"0 -\"", formatTable(ts), oracle)
	}
	deps, err := c.Deps(thin)
	if err != nil || len(deps) != 1 || deps[0] != mustInfo(t, c, pool).Dev {
		t.Errorf("thin Deps = %v, %v; want the pool", deps, err)
	}

	if _, err := c.Message(pool, 0, "set_transaction_id 0 1"); err != nil {
		t.Fatal(err)
	}
	status, err = c.Status(pool, StatusOptions{})
	if err != nil || !strings.HasPrefix(status[0].Params, "1 ") {
		t.Errorf("pool status after set_transaction_id = %v, %v", status, err)
	}
}

func TestThinPoolMessageErrorsMapToSentinels(t *testing.T) {
	c := vmClient(t)
	pool, _ := thinPool(t, c, 32<<20, 16)
	thinDevice(t, c, pool, 1, 2048) // active, so deleting id 1 is busy
	cases := []struct {
		msg  string
		want error
	}{
		{"create_thin 1", ErrExists},
		{"delete 77", ErrNoData},
		{"delete 1", ErrBusy},
		{"set_transaction_id 5 6", ErrInvalidArgument},
	}
	for _, tc := range cases {
		_, err := c.Message(pool, 0, tc.msg)
		if !errors.Is(err, tc.want) {
			t.Errorf("message %q = %v, want %v", tc.msg, err, tc.want)
			continue
		}
		t.Logf("message %q: %v", tc.msg, err)
	}
}

// A thin-pool commits its metadata before every status report unless
// DM_NOFLUSH_FLAG is set; a commit flushes the metadata device, whose
// block-layer flush count (field 16 of its stat file) shows it.
func TestStatusWithNoFlushLeavesAThinPoolUncommitted(t *testing.T) {
	c := vmClient(t)
	pool, table := thinPool(t, c, 32<<20, 16)
	statPath := "/sys/dev/block/" + strings.Fields(table.Params)[0] + "/stat"
	flushes := func() int64 {
		t.Helper()
		b, err := os.ReadFile(statPath)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b))
		if len(f) < 17 {
			t.Skipf("%s has no flush fields (%d fields)", statPath, len(f))
		}
		n, err := strconv.ParseInt(f[15], 10, 64)
		if err != nil {
			t.Fatalf("%s: flush field %q", statPath, f[15])
		}
		return n
	}
	const reads = 5
	status := func(opts StatusOptions) int64 {
		t.Helper()
		before := flushes()
		for range reads {
			if _, err := c.Status(pool, opts); err != nil {
				t.Fatal(err)
			}
		}
		return flushes() - before
	}
	if n := status(StatusOptions{NoFlush: true}); n != 0 {
		t.Errorf("%d status reads with NoFlush flushed the metadata device %d times, want 0", reads, n)
	}
	if n := status(StatusOptions{}); n < reads {
		t.Errorf("%d status reads without NoFlush flushed the metadata device %d times, want a commit (a flush) each", reads, n)
	}
}

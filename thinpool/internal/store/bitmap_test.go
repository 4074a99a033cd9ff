package store

import "testing"

func TestBitmapAllocation(t *testing.T) {
	t.Run("a fresh bitmap hands out 1, 2, 3", func(t *testing.T) {
		b := newIDBitmap()
		for want := uint32(1); want <= 3; want++ {
			if got, err := b.alloc(); err != nil || got != want {
				t.Fatalf("alloc = %d, %v; want %d", got, err, want)
			}
		}
	})
	t.Run("used ids are skipped", func(t *testing.T) {
		b := newIDBitmap()
		b.set(1)
		b.set(2)
		b.set(4)
		got := []uint32{}
		for i := 0; i < 2; i++ {
			id, _ := b.alloc()
			got = append(got, id)
		}
		if got[0] != 3 || got[1] != 5 {
			t.Fatalf("allocated %v, want [3 5]", got)
		}
	})
	t.Run("the hint keeps freed ids from being reused at once", func(t *testing.T) {
		b := newIDBitmap()
		a, _ := b.alloc()
		b.clear(a)
		if id, _ := b.alloc(); id == a {
			t.Fatalf("freed id %d came straight back", a)
		}
	})
	t.Run("allocation wraps from the 24-bit maximum to 1", func(t *testing.T) {
		b := newIDBitmap()
		b.setHint(MaxDeviceID)
		if id, _ := b.alloc(); id != MaxDeviceID {
			t.Fatalf("alloc at the top = %d, want %d", id, MaxDeviceID)
		}
		if id, _ := b.alloc(); id != 1 {
			t.Fatalf("alloc after the top = %d, want 1", id)
		}
	})
	t.Run("id 0 and ids beyond 24 bits are never handed out", func(t *testing.T) {
		b := newIDBitmap()
		b.setHint(0)
		if id, _ := b.alloc(); id != 1 {
			t.Fatalf("alloc with hint 0 = %d, want 1", id)
		}
		b.setHint(MaxDeviceID + 5)
		if id, _ := b.alloc(); id != 2 {
			t.Fatalf("alloc with hint past the range = %d, want 2", id)
		}
		b.set(MaxDeviceID + 1) // ignored
		if b.isSet(MaxDeviceID + 1) {
			t.Fatal("an id beyond 24 bits was recorded")
		}
	})
	t.Run("whole full words are skipped", func(t *testing.T) {
		b := newIDBitmap()
		for id := uint32(1); id < 64*3+7; id++ {
			b.set(id)
		}
		if id, _ := b.alloc(); id != 64*3+7 {
			t.Fatalf("alloc = %d, want %d", id, 64*3+7)
		}
	})
	t.Run("a full bitmap reports that no id is free", func(t *testing.T) {
		b := newIDBitmap()
		for id := uint32(0); id <= MaxDeviceID; id += 64 {
			b.set(id)
			b.pages[id/bitmapPageIDs][id%bitmapPageIDs/64] = ^uint64(0)
		}
		b.clear(0)
		if id, err := b.alloc(); err == nil {
			t.Fatalf("alloc on a full bitmap = %d, want an error", id)
		}
	})
}

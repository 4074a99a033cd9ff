package thinpool

import "github.com/pkg/errors"

// maxDeviceID is the largest thin device id the kernel accepts (24 bits).
const maxDeviceID = 1<<24 - 1

// errNoFreeID is returned by idBitmap.alloc when every id is taken.
var errNoFreeID = errors.New("every 24-bit thin device id is in use")

// idBitmap tracks which thin device ids are taken. Id 0 is never handed out
// so that a zero DeviceID always means "unset". The whole 24-bit space is
// 2 MiB of memory; it is built once at Open from the registry.
type idBitmap struct {
	bits []uint64
	next uint32 // where the next search starts (the allocation hint)
}

func newIDBitmap() *idBitmap {
	return &idBitmap{bits: make([]uint64, (maxDeviceID+1)/64), next: 1}
}

func (b *idBitmap) isSet(id uint32) bool {
	if id > maxDeviceID {
		return false
	}
	return b.bits[id/64]&(1<<(id%64)) != 0
}

// set marks id as used.
func (b *idBitmap) set(id uint32) {
	if id > maxDeviceID {
		return
	}
	b.bits[id/64] |= 1 << (id % 64)
}

// clear marks id as free.
func (b *idBitmap) clear(id uint32) {
	if id > maxDeviceID {
		return
	}
	b.bits[id/64] &^= 1 << (id % 64)
}

// setHint makes the next search start at id (ids out of range restart at 1).
func (b *idBitmap) setHint(id uint32) {
	if id == 0 || id > maxDeviceID {
		id = 1
	}
	b.next = id
}

// alloc returns the first free id at or after the hint, wrapping from
// maxDeviceID back to 1, marks it used and moves the hint past it.
func (b *idBitmap) alloc() (uint32, error) {
	id := b.next
	if id == 0 || id > maxDeviceID {
		id = 1
	}
	for n := 0; n < maxDeviceID; n++ {
		// Skip whole words that are full.
		if id%64 == 0 && b.bits[id/64] == ^uint64(0) {
			n += 63
			id += 64
			if id > maxDeviceID {
				id = 1
			}
			continue
		}
		if !b.isSet(id) {
			b.set(id)
			b.setHint(id + 1)
			return id, nil
		}
		id++
		if id > maxDeviceID {
			id = 1
		}
	}
	return 0, errNoFreeID
}

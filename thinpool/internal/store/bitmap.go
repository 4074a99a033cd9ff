package store

import "github.com/pkg/errors"

// errNoFreeID is returned by idBitmap.alloc when every id is taken.
var errNoFreeID = errors.New("every 24-bit thin device id is in use")

// idBitmap tracks which thin device ids are taken. Id 0 is never handed out
// so that a zero DeviceID always means "unset". The 24-bit space is kept in
// pages of 65,536 ids (8 KiB) made when an id in them is first set, so a
// root with ids from 1 to a few thousand costs 8 KiB, not 2 MiB.
type idBitmap struct {
	pages [bitmapPages][]uint64
	next  uint32 // where the next search starts (the allocation hint)
}

const (
	bitmapPageWords = 1024
	bitmapPageIDs   = bitmapPageWords * 64
	bitmapPages     = (MaxDeviceID + 1) / bitmapPageIDs
)

func newIDBitmap() *idBitmap {
	return &idBitmap{next: 1}
}

// word returns the word holding id's bit (0 when its page is not made).
func (b *idBitmap) word(id uint32) uint64 {
	pg := b.pages[id/bitmapPageIDs]
	if pg == nil {
		return 0
	}
	return pg[id%bitmapPageIDs/64]
}

func (b *idBitmap) isSet(id uint32) bool {
	if id > MaxDeviceID {
		return false
	}
	return b.word(id)&(1<<(id%64)) != 0
}

// set marks id as used.
func (b *idBitmap) set(id uint32) {
	if id > MaxDeviceID {
		return
	}
	pg := &b.pages[id/bitmapPageIDs]
	if *pg == nil {
		*pg = make([]uint64, bitmapPageWords)
	}
	(*pg)[id%bitmapPageIDs/64] |= 1 << (id % 64)
}

// clear marks id as free.
func (b *idBitmap) clear(id uint32) {
	if id > MaxDeviceID {
		return
	}
	if pg := b.pages[id/bitmapPageIDs]; pg != nil {
		pg[id%bitmapPageIDs/64] &^= 1 << (id % 64)
	}
}

// setHint makes the next search start at id (ids out of range restart at 1).
func (b *idBitmap) setHint(id uint32) {
	if id == 0 || id > MaxDeviceID {
		id = 1
	}
	b.next = id
}

// alloc returns the first free id at or after the hint, wrapping from
// MaxDeviceID back to 1, marks it used and moves the hint past it.
func (b *idBitmap) alloc() (uint32, error) {
	id := b.next
	if id == 0 || id > MaxDeviceID {
		id = 1
	}
	for n := 0; n < MaxDeviceID; n++ {
		// Skip whole words that are full.
		if id%64 == 0 && b.word(id) == ^uint64(0) {
			n += 63
			id += 64
			if id > MaxDeviceID {
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
		if id > MaxDeviceID {
			id = 1
		}
	}
	return 0, errNoFreeID
}

package store

import (
	"reflect"
	"strings"
	"testing"
)

func TestLabelsAreKeptInTheDeviceRecord(t *testing.T) {
	r := newTestRegistry(t)
	d := sampleDevice("snap-1", 7)
	d.Labels = map[string]string{"containerd.io/snapshot/name": "default/3/sha256:abc", "kind": "committed", "empty": ""}
	if err := r.Put(d); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get("snap-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Labels, d.Labels) {
		t.Fatalf("read back labels %v, want %v", got.Labels, d.Labels)
	}
	t.Run("a record without labels has no labels key", func(t *testing.T) {
		if err := r.Put(sampleDevice("plain", 8)); err != nil {
			t.Fatal(err)
		}
		if s := readRecordText(t, r, "plain"); strings.Contains(s, `"labels"`) {
			t.Fatalf("record without labels mentions them:\n%s", s)
		}
	})
}

func readRecordText(t *testing.T, r *Store, id string) string {
	t.Helper()
	if _, err := r.Get(id); err != nil {
		t.Fatal(err)
	}
	return string(r.idx.encoded(id))
}

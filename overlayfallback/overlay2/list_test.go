package overlay2

import (
	"reflect"
	"testing"
)

func TestListNamesEveryLayerWithItsParentAndMountState(t *testing.T) {
	d := newTestDriver(t)
	for _, l := range []struct{ id, parent string }{{"base", ""}, {"mid", "base"}, {"top", "mid"}, {"other", "base"}} {
		if err := d.Create(t.Context(), l.id, l.parent, nil); err != nil {
			t.Fatal(err)
		}
	}
	merged, err := d.Get(t.Context(), "top", "")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Put(t.Context(), "top")

	layers, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		id, parent string
		mounted    bool
		path       string
	}
	var got []row
	for _, l := range layers {
		got = append(got, row{l.ID, l.Parent, l.Mounted, l.MountPath})
	}
	want := []row{{"base", "", false, ""}, {"mid", "base", false, ""}, {"other", "base", false, ""}, {"top", "mid", true, merged}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %+v\nwant %+v", got, want)
	}
}

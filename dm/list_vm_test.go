//go:build vm

package dm

import (
	"strings"
	"testing"
)

func TestListDevicesReturnsThreeHundredDevicesWithTheirUUIDs(t *testing.T) {
	c := vmClient(t)
	want := map[string]Device{}
	for i := 0; i < 300; i++ {
		name := devName(t)
		uuid := "DMTEST-LIST-" + strings.Repeat("x", 60) + "-" + name
		info, err := c.Create(name, CreateOptions{UUID: uuid})
		if err != nil {
			t.Fatal(err)
		}
		removeOnCleanup(t, c, name)
		want[name] = Device{Name: name, UUID: uuid, Dev: info.Dev}
	}
	devs, err := c.ListDevices()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, d := range devs {
		w, ok := want[d.Name]
		if !ok {
			continue
		}
		found++
		if c.KernelVersion().atLeast(45) && d != w {
			t.Errorf("ListDevices entry %+v, want %+v", d, w)
		}
		if d.Dev != w.Dev {
			t.Errorf("ListDevices entry %+v, want dev %s", d, majMin(w.Dev))
		}
	}
	if found != 300 {
		t.Fatalf("ListDevices found %d of the 300 devices (%d entries in all)", found, len(devs))
	}
	oracle := dmsetup(t, "info", "-c", "--noheadings", "--separator", "|", "-o", "name,uuid")
	n := 0
	for _, line := range strings.Split(oracle, "\n") {
		name, uuid, _ := strings.Cut(line, "|")
		if w, ok := want[name]; ok {
			n++
			if uuid != w.UUID {
				t.Errorf("dmsetup shows %s with uuid %q, want %q", name, uuid, w.UUID)
			}
		}
	}
	if n != 300 {
		t.Errorf("dmsetup lists %d of the 300 devices", n)
	}
}

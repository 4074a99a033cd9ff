package fs

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseMountInfoLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want MountEntry
	}{
		{"the proc(5) example with one optional field",
			"36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
			MountEntry{36, 35, 98, 0, "/mnt1", "/mnt/parent", "rw,noatime", []string{"master:1"}, "ext3", "/dev/root", "rw,errors=continue"}},
		{"no optional fields",
			"22 1 7:3 / /var/lib/thinctl/mnt/a rw,relatime - ext4 /dev/loop3 rw",
			MountEntry{22, 1, 7, 3, "/", "/var/lib/thinctl/mnt/a", "rw,relatime", nil, "ext4", "/dev/loop3", "rw"}},
		{"several optional fields",
			"40 22 0:35 / /run/x rw shared:5 master:2 propagate_from:1 unbindable - tmpfs tmpfs rw,size=10k",
			MountEntry{40, 22, 0, 35, "/", "/run/x", "rw", []string{"shared:5", "master:2", "propagate_from:1", "unbindable"}, "tmpfs", "tmpfs", "rw,size=10k"}},
		{"escaped space, tab, newline and backslash are decoded",
			`50 22 253:4 /a\134b /mnt/my\040dir\011x\012y rw - xfs /dev/mapper/pool\040thin rw,nouuid`,
			MountEntry{50, 22, 253, 4, `/a\b`, "/mnt/my dir\tx\ny", "rw", nil, "xfs", "/dev/mapper/pool thin", "rw,nouuid"}},
		{"an escape that is not three octal digits is kept",
			`51 22 8:1 / /m\08x\4 rw - ext4 /dev/sda1 rw`,
			MountEntry{51, 22, 8, 1, "/", `/m\08x\4`, "rw", nil, "ext4", "/dev/sda1", "rw"}},
		{"an empty source is kept empty",
			"52 22 0:50 / /e rw - tmpfs  rw",
			MountEntry{52, 22, 0, 50, "/", "/e", "rw", nil, "tmpfs", "", "rw"}},
		{"large device numbers",
			"53 22 259:1048575 / /big rw - ext4 /dev/nvme0n1p1 rw",
			MountEntry{53, 22, 259, 1048575, "/", "/big", "rw", nil, "ext4", "/dev/nvme0n1p1", "rw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMountInfoLine(tt.line)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseMountInfoLine =\n %+v, %v\nwant\n %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseMountInfoLineRefusesMalformedLines(t *testing.T) {
	tests := []struct{ name, line string }{
		{"a line without the separator", "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 ext3 /dev/root rw"},
		{"a line with too few fields after the separator", "36 35 98:0 /mnt1 /mnt/parent rw - ext3 /dev/root"},
		{"a non-numeric mount id", "x 35 98:0 / /m rw - ext3 /dev/root rw"},
		{"a non-numeric parent id", "36 y 98:0 / /m rw - ext3 /dev/root rw"},
		{"a device number without a colon", "36 35 980 / /m rw - ext3 /dev/root rw"},
		{"a device number with a negative minor", "36 35 98:-1 / /m rw - ext3 /dev/root rw"},
		{"a separator in place of the options", "36 35 98:0 / /m - ext3 /dev/root rw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := ParseMountInfoLine(tt.line); err == nil {
				t.Fatalf("ParseMountInfoLine(%q) = %+v, want an error", tt.line, e)
			}
		})
	}
}

func TestParseMountInfoNamesTheBadLine(t *testing.T) {
	in := "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\n2 1 0:5 / /proc rw - proc proc rw\nbroken\n"
	_, err := ParseMountInfo(strings.NewReader(in))
	if err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Fatalf("ParseMountInfo error = %v, want one naming line 4", err)
	}
	good := strings.Join(strings.Split(in, "\n")[:3], "\n")
	got, err := ParseMountInfo(strings.NewReader(good))
	if err != nil || len(got) != 2 || got[1].MountPoint != "/proc" {
		t.Fatalf("ParseMountInfo = %+v, %v; want two entries ending with /proc", got, err)
	}
}

func TestParseMountInfoReadsOurOwnMountTable(t *testing.T) {
	got, err := readMountInfo("self")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if e.MountPoint == "/" {
			return
		}
	}
	t.Fatalf("no mount at / among %d entries", len(got))
}

// escapeMount writes s the way the kernel's mangle() does in mountinfo.
func escapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// formatMountInfoLine is the inverse of ParseMountInfoLine.
func formatMountInfoLine(e MountEntry) string {
	f := []string{fmt.Sprint(e.ID), fmt.Sprint(e.ParentID), fmt.Sprintf("%d:%d", e.Major, e.Minor),
		escapeMount(e.Root), escapeMount(e.MountPoint), e.Options}
	f = append(f, e.Optional...)
	f = append(f, "-", escapeMount(e.FSType), escapeMount(e.Source), escapeMount(e.SuperOptions))
	return strings.Join(f, " ")
}

func FuzzParseMountInfoLine(f *testing.F) {
	f.Add("36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue")
	f.Add(`50 22 253:4 /a\134b /mnt/my\040dir rw shared:1 - xfs /dev/mapper/p\040t rw,nouuid`)
	f.Add("52 22 0:50 / /e rw - tmpfs  rw")
	f.Add("1 0 1:1 / / - - - - -")
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseMountInfoLine(line)
		if err != nil {
			return
		}
		// What parsed must survive a trip through the kernel's escaping,
		// as long as the options fields hold no space (they cannot).
		again, err := ParseMountInfoLine(formatMountInfoLine(e))
		if err != nil {
			t.Fatalf("re-parse of %+v: %v", e, err)
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("round trip changed the entry:\n %+v\n %+v", e, again)
		}
	})
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:5 / /proc rw shared:3 - proc proc rw\n")
	f.Add("\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseMountInfo(strings.NewReader(in))
		if err == nil && len(got) > strings.Count(in, "\n")+1 {
			t.Fatalf("%d entries from %d lines", len(got), strings.Count(in, "\n")+1)
		}
	})
}

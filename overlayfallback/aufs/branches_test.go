package aufs

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestBranchString(t *testing.T) {
	tests := []struct {
		name string
		rw   string
		ro   []string
		want string
	}{
		{"a base layer has only its writable branch", "/h/diff/a", nil, "br:/h/diff/a=rw"},
		{"ancestors follow nearest first as ro+wh", "/h/diff/c", []string{"/h/diff/b", "/h/diff/a"},
			"br:/h/diff/c=rw:/h/diff/b=ro+wh:/h/diff/a=ro+wh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := branchString(tt.rw, tt.ro); got != tt.want {
				t.Fatalf("branchString = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBranchOpts(t *testing.T) {
	tests := []struct {
		name     string
		dirperm1 bool
		label    string
		want     string
	}{
		{"without dirperm1 only xino is set", false, "", "xino=/dev/shm/aufs.xino"},
		{"dirperm1 comes first when the module has it", true, "", "dirperm1,xino=/dev/shm/aufs.xino"},
		{"a mount label becomes a quoted context option", true, "system_u:object_r:container_file_t:s0:c1,c2",
			`dirperm1,xino=/dev/shm/aufs.xino,context="system_u:object_r:container_file_t:s0:c1,c2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := branchOpts(tt.dirperm1, tt.label); got != tt.want {
				t.Fatalf("branchOpts = %q, want %q", got, tt.want)
			}
		})
	}
}

// chainDirs returns n branch paths shaped like a real home's diff dirs
// (64-hex-digit ids), nearest first.
func chainDirs(n int) (string, []string) {
	dir := func(i int) string { return fmt.Sprintf("/var/lib/thinctl/aufs/diff/%064x", i) }
	ro := make([]string, n)
	for i := range ro {
		ro[i] = dir(n - i)
	}
	return dir(n + 1), ro
}

func TestPlanMount(t *testing.T) {
	opts := branchOpts(true, "")
	rw, ro3 := chainDirs(3)
	_, ro127 := chainDirs(127)
	tests := []struct {
		name        string
		ro          []string
		pageSize    int
		wantAppends int
	}{
		{"a base layer needs no remount", nil, 4096, 0},
		{"a short chain fits the first mount", ro3, 4096, 0},
		{"a 128-layer chain needs remount batches on 4 KiB pages", ro127, 4096, 3},
		{"a 128-layer chain fits one 64 KiB page", ro127, 65536, 0},
		{"a tiny page puts every ancestor in its own remount", ro3, len("br:"+rw+"=rw,"+opts) + 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := planMount(rw, tt.ro, opts, tt.pageSize)
			if err != nil {
				t.Fatal(err)
			}
			checkPlan(t, plan, rw, tt.ro, opts, tt.pageSize)
			if len(plan.Appends) != tt.wantAppends {
				t.Fatalf("got %d remount batches, want %d: %q", len(plan.Appends), tt.wantAppends, plan.Appends)
			}
		})
	}
}

// checkPlan asserts that every data string fits the page, that the first
// carries rw and the options, and that all branches appear once, in order.
func checkPlan(t *testing.T, plan mountPlan, rw string, ro []string, opts string, pageSize int) {
	t.Helper()
	for i, data := range append([]string{plan.First}, plan.Appends...) {
		if len(data)+1 > pageSize {
			t.Fatalf("data string %d is %d bytes + NUL, over the %d-byte page", i, len(data), pageSize)
		}
		if i > 0 && (strings.Contains(data, "br:") || strings.Contains(data, "remount")) {
			t.Fatalf("remount data %q must only hold append options", data)
		}
	}
	if !strings.HasPrefix(plan.First, "br:"+rw+"=rw") || !strings.HasSuffix(plan.First, ","+opts) {
		t.Fatalf("first mount data %q must start with the rw branch and end with %q", plan.First, opts)
	}
	want := []string{rw + "=rw"}
	for _, dir := range ro {
		want = append(want, dir+"=ro+wh")
	}
	if got := planBranches(plan); !reflect.DeepEqual(got, want) {
		t.Fatalf("branches in plan order:\n got %q\nwant %q", got, want)
	}
}

func TestPlanMountOf128LayerChainExceedsOnePageAndSplitsInOrder(t *testing.T) {
	rw, ro := chainDirs(127) // 127 ancestors + the layer itself = 128 branches
	opts := branchOpts(true, "")
	if full := branchString(rw, ro) + "," + opts; len(full) < 4096 {
		t.Fatalf("test chain is too short to matter: %d bytes", len(full))
	}
	plan, err := planMount(rw, ro, opts, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Appends) == 0 {
		t.Fatal("a 128-layer chain must need remounts on a 4 KiB page")
	}
	checkPlan(t, plan, rw, ro, opts, 4096)
	// Greedy packing: each data string is full, i.e. the next branch would
	// not have fitted.
	branches := planBranches(plan)
	used := len(planBranches(mountPlan{First: plan.First}))
	if next := ":" + branches[used]; len(plan.First)+len(next) <= 4095 {
		t.Fatalf("first mount stopped at %d branches although the next one fitted", used)
	}
}

func TestPlanMountRefusesWhatCannotBeMounted(t *testing.T) {
	tests := []struct {
		name   string
		rw     string
		ro     []string
		page   int
		errHas string
	}{
		{"a branch with a colon", "/h:x/diff/a", nil, 4096, "cannot carry"},
		{"an ancestor with a comma", "/h/diff/b", []string{"/h,x/diff/a"}, 4096, "cannot carry"},
		{"a top branch longer than a page", "/" + strings.Repeat("d", 5000), nil, 4096, "more than one page"},
		{"an ancestor longer than a page", "/h/diff/b", []string{"/" + strings.Repeat("d", 5000)}, 4096, "more than one page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := planMount(tt.rw, tt.ro, "xino=/dev/shm/aufs.xino", tt.page)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("planMount error = %v, want one containing %q", err, tt.errHas)
			}
		})
	}
}

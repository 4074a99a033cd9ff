package main

import (
	"strings"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/thinpool"
)

// fixCommand maps a health problem's fix class (thinpool.Fix) to the one
// thing that fixes it; "" for no fix class. id is the device a
// filesystem fix concerns, root the --root flag the command needs.
func fixCommand(fix, id, root string) string {
	switch thinpool.Fix(fix) {
	case thinpool.FixRepair:
		return "thinctl" + root + " pool repair"
	case thinpool.FixGrowData:
		return "thinctl" + root + " pool grow --data-size SIZE (or remove devices you no longer need)"
	case thinpool.FixGrowMetadata:
		return "thinctl" + root + " pool grow --metadata-size SIZE"
	case thinpool.FixFreeHostSpace:
		return "free space on the filesystem holding the pool's files (thinctl" + root + " pool status names them); growing the pool cannot help"
	case thinpool.FixStorage:
		return "fix the storage under the pool (the kernel log names the failing device), then run thinctl" + root + " check"
	case thinpool.FixFilesystem:
		if id == "" {
			id = "ID"
		}
		return "thinctl" + root + " fsck " + id
	}
	return ""
}

// healthHint joins the fixes a refusal's health problems need, in order.
func healthHint(he *thinpool.HealthError, root string) string {
	var steps []string
	for _, f := range he.Fixes() {
		if cmd := fixCommand(string(f), "", root); cmd != "" {
			steps = append(steps, cmd)
		}
	}
	if len(steps) == 0 {
		return ""
	}
	return strings.Join(steps, ", then ")
}

// checkHint is the hint of a check that found problems: the fixes of its
// health problems when it has any, in order.
func checkHint(r checkReport) string {
	var steps []string
	seen := map[string]bool{}
	for _, p := range r.Problems {
		if p.Fix != "" && !p.fixed && !seen[p.Fix] {
			seen[p.Fix] = true
			steps = append(steps, p.Fix)
		}
	}
	return strings.Join(steps, ", then ")
}

// poolHealth returns the health problems of a devicemapper pool (none for
// other backends).
func poolHealth(d driver.Driver) []thinpool.HealthProblem {
	pd, ok := d.(interface{ Pool() *thinpool.Pool })
	if !ok || pd.Pool() == nil {
		return nil
	}
	h, err := pd.Pool().Health()
	if err != nil {
		return nil
	}
	return h.Problems
}

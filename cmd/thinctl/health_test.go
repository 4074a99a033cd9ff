package main

import (
	"strings"
	"testing"

	"github.com/thinctl/thinctl/thinpool"
)

func TestEveryFixClassMapsToOneThingAndAFullHostIsNeverToldToGrow(t *testing.T) {
	for _, f := range []thinpool.Fix{thinpool.FixRepair, thinpool.FixGrowData, thinpool.FixGrowMetadata,
		thinpool.FixFreeHostSpace, thinpool.FixFilesystem, thinpool.FixStorage} {
		cmd := fixCommand(string(f), "web", "")
		if cmd == "" || strings.Contains(cmd, "thin_") || strings.Contains(cmd, "e2fsck") {
			t.Errorf("fix %s maps to %q", f, cmd)
		}
	}
	if cmd := fixCommand(string(thinpool.FixFreeHostSpace), "", ""); strings.Contains(cmd, "thinctl pool grow") {
		t.Errorf("a full host filesystem is told to grow: %q", cmd)
	}
	he := &thinpool.HealthError{Problems: []thinpool.HealthProblem{
		{Kind: thinpool.ProblemHostFilesystem, Fix: thinpool.FixFreeHostSpace},
		{Kind: thinpool.ProblemPoolNeedsCheck, Fix: thinpool.FixRepair},
	}}
	if h := healthHint(he, " --root /r"); !strings.HasPrefix(h, "free space on the filesystem") || !strings.HasSuffix(h, "then thinctl --root /r pool repair") {
		t.Errorf("hint %q", h)
	}
}

package health

import (
	"errors"
	"testing"

	"github.com/thinctl/thinctl/thinpool/internal/hostfs"
)

const (
	MiB = 1 << 20
	GiB = 1 << 30
)

func TestHealthNamesEachFaultWithItsClassAndFix(t *testing.T) {
	rw := Reading{PoolName: "p", State: "rw", DataTotal: 100 * MiB, DataUsed: 10 * MiB, MetadataTotal: 8 * MiB, MetadataUsed: MiB}
	cases := []struct {
		name  string
		s     func(Reading) Reading
		host  hostfs.Shortfall
		kinds []string
		class error
		fixes []Fix
	}{
		{"a healthy pool", func(s Reading) Reading { return s }, hostfs.Shortfall{}, nil, nil, nil},
		{"needs_check", func(s Reading) Reading { s.State, s.ReadOnly, s.NeedsCheck = "ro", true, true; return s }, hostfs.Shortfall{},
			[]string{ProblemPoolNeedsCheck}, ErrPoolReadOnly, []Fix{FixRepair}},
		{"fail", func(s Reading) Reading { s.State, s.Failed, s.ReadOnly = "fail", true, true; return s }, hostfs.Shortfall{},
			[]string{ProblemPoolFailed}, ErrPoolReadOnly, []Fix{FixRepair}},
		{"read-only with metadata used up", func(s Reading) Reading { s.State, s.ReadOnly, s.MetadataUsed = "ro", true, s.MetadataTotal; return s }, hostfs.Shortfall{},
			[]string{ProblemOutOfMetaSpace}, ErrLowSpace, []Fix{FixGrowMetadata}},
		{"read-only", func(s Reading) Reading { s.State, s.ReadOnly = "ro", true; return s }, hostfs.Shortfall{},
			[]string{ProblemPoolReadOnly}, ErrPoolReadOnly, []Fix{FixRepair}},
		{"out of data space", func(s Reading) Reading { s.State, s.OutOfDataSpace = "out_of_data_space", true; return s }, hostfs.Shortfall{},
			[]string{ProblemOutOfDataSpace}, ErrLowSpace, []Fix{FixGrowData}},
		{"a short host filesystem comes first", func(s Reading) Reading { s.State, s.ReadOnly, s.NeedsCheck = "ro", true, true; return s },
			hostfs.Shortfall{Need: int64(GiB), Free: int64(MiB), Path: "/x/data"},
			[]string{ProblemHostFilesystem, ProblemPoolNeedsCheck}, ErrHostFilesystemFull, []Fix{FixFreeHostSpace, FixRepair}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := Of(c.s(rw), c.host)
			var kinds []string
			for _, hp := range h.Problems {
				kinds = append(kinds, hp.Kind)
			}
			if len(kinds) != len(c.kinds) {
				t.Fatalf("kinds %v, want %v", kinds, c.kinds)
			}
			for i := range kinds {
				if kinds[i] != c.kinds[i] {
					t.Fatalf("kinds %v, want %v", kinds, c.kinds)
				}
			}
			if c.class == nil {
				if !h.OK() || h.Err() != nil {
					t.Fatalf("healthy pool: %+v", h)
				}
				return
			}
			if !errors.Is(h.Err(), c.class) {
				t.Fatalf("Err() = %v, want class %v", h.Err(), c.class)
			}
			he := &Error{Problems: h.Problems}
			fixes := he.Fixes()
			if len(fixes) != len(c.fixes) {
				t.Fatalf("fixes %v, want %v", fixes, c.fixes)
			}
			for i := range fixes {
				if fixes[i] != c.fixes[i] {
					t.Fatalf("fixes %v, want %v", fixes, c.fixes)
				}
			}
		})
	}
}

func TestAShortHostFilesystemAloneDoesNotRefuseWrites(t *testing.T) {
	h := Of(Reading{PoolName: "p", State: "rw", DataTotal: GiB, MetadataTotal: 8 * MiB}, hostfs.Shortfall{Need: int64(GiB), Free: int64(MiB), Path: "/x"})
	if h.OK() {
		t.Fatal("a short host filesystem is healthy")
	}
	if err := h.Refusal(); err != nil {
		t.Fatalf("refusal: %v", err)
	}
}

func TestAMessageThePoolDidNotKeepMatchesBothClasses(t *testing.T) {
	err := error(&Error{Problems: []Problem{{Kind: ProblemPoolNeedsCheck, Class: ErrPoolReadOnly, Fix: FixRepair, Cause: "c"}}, NotKept: "create_thin 5"})
	if !errors.Is(err, ErrPoolNotKept) || !errors.Is(err, ErrPoolReadOnly) {
		t.Fatalf("%v does not match ErrPoolNotKept and ErrPoolReadOnly", err)
	}
	refused := error(&Error{Problems: []Problem{{Kind: ProblemPoolNeedsCheck, Class: ErrPoolReadOnly, Fix: FixRepair, Cause: "c"}}})
	if errors.Is(refused, ErrPoolNotKept) {
		t.Fatal("a refusal before any message matches ErrPoolNotKept")
	}
}

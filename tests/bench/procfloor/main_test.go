package main

import (
	"errors"
	"strconv"
	"testing"
)

// The floor's arguments come from thinctl-bench, but a wrong one must stop
// it before it asks the kernel for anything: a thin id beyond 24 bits or a
// size that is not a number would otherwise become a message or a table
// the pool refuses (or worse, another device's id).
func TestACommandLineItCannotReadIsRefusedBeforeTheKernelIsAsked(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		numeric bool // refused by the number parser, not the usage check
	}{
		{"no command", nil, false},
		{"an unknown command", []string{"destroy", "pool"}, false},
		{"create with an argument missing", []string{"create", "pool", "253:0", "1", "2", "name"}, false},
		{"remove with an argument too many", []string{"remove", "pool", "name", "2", "3"}, false},
		{"an origin id that is not a number", []string{"create", "pool", "253:0", "origin", "2", "name", "2097152"}, true},
		{"a new id beyond the pool's 24 bits", []string{"create", "pool", "253:0", "1", "16777216", "name", "2097152"}, true},
		{"a negative size", []string{"create", "pool", "253:0", "1", "2", "name", "-1"}, true},
		{"a removed id beyond 24 bits", []string{"remove", "pool", "name", "99999999"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args)
			var num *strconv.NumError
			switch {
			case err == nil:
				t.Fatalf("run(%q) succeeded", tt.args)
			case tt.numeric && !errors.As(err, &num):
				t.Fatalf("run(%q) = %v, want the number refused before any ioctl", tt.args, err)
			case !tt.numeric && !errors.Is(err, usage):
				t.Fatalf("run(%q) = %v, want the usage line", tt.args, err)
			}
		})
	}
}

package failpoint

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that what it accepts names
// only known points with well-formed actions.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", TxAfterMessage + "=kill", TxAfterSave + "=sleep:1s;" + TxAfterCommit + "=stop@2",
		"x=y", "=", ";;,", TxAfterSave + "=kill@", TxAfterSave + "=sleep:-1h", "a=b=c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		m, err := Parse(spec)
		if err != nil {
			return
		}
		for name, a := range m {
			if !Known(name) {
				t.Fatalf("Parse(%q) accepted unknown point %q", spec, name)
			}
			switch a.Kind {
			case Kill, Panic, Error, Stop, Sleep:
			default:
				t.Fatalf("Parse(%q) accepted action %q", spec, a.Kind)
			}
			if a.Delay < 0 || a.Nth < 0 || (a.Kind != Sleep && a.Delay != 0) {
				t.Fatalf("Parse(%q) = %+v", spec, a)
			}
			if !strings.Contains(spec, name) {
				t.Fatalf("Parse(%q) invented %q", spec, name)
			}
		}
	})
}

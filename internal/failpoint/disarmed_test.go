//go:build !failpoints

package failpoint

import (
	"strings"
	"testing"

	"github.com/pkg/errors"
)

func TestWithoutTheTagEnableArmsNothing(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		wantIs  error  // nil: no error wanted unless wantErr
		wantErr string // a substring of the error
	}{
		{name: "a spec that arms a point is refused as not compiled in",
			spec: TxAfterMessage + "=kill;" + MountAfterMount + "=error", wantIs: ErrNotCompiled, wantErr: "-tags failpoints"},
		{name: "a bad spec is refused for what is wrong with it", spec: "thinpool/nowhere=kill", wantErr: "unknown point"},
		{name: "an empty spec is accepted: it arms nothing", spec: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Enable(tt.spec)
			switch {
			case tt.wantErr == "":
				if err != nil {
					t.Fatalf("Enable(%q) = %v, want nil", tt.spec, err)
				}
			case err == nil || !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Enable(%q) = %v, want an error containing %q", tt.spec, err, tt.wantErr)
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Fatalf("Enable(%q) = %v, want one wrapping %v", tt.spec, err, tt.wantIs)
			}
			if Compiled || Enabled() {
				t.Fatalf("Compiled = %v, Enabled() = %v after Enable(%q); want false, false", Compiled, Enabled(), tt.spec)
			}
			if err := InjectErr(MountAfterMount); err != nil {
				t.Fatalf("InjectErr = %v, want nil", err)
			}
			Inject(TxAfterMessage) // the kill asked for above must not happen
		})
	}
}

func TestWithoutTheTagTheEnvironmentArmsNothingInANewProcess(t *testing.T) {
	runEnvCases(t, []envCase{
		{name: "kill at the point reached lets the process run on", point: TxAfterMessage, spec: TxAfterMessage + "=kill", stdout: "survived\n"},
		{name: "panic at the point reached lets the process run on", point: TxAfterCommit, spec: TxAfterCommit + "=panic", stdout: "survived\n"},
		{name: "a bad spec is not even read", point: TxAfterSave, spec: "x=y", stdout: "survived\n"},
	})
}

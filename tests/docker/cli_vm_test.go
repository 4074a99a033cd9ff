//go:build vm

package docker

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/dockerdm"
)

// thinctl runs the thinctl binary run.sh put on the guest's PATH
// (--extra-bin bin/thinctl); ok is false when there is none.
func thinctl(t *testing.T, args ...string) (stdout, stderr string, code int, ok bool) {
	t.Helper()
	bin, err := exec.LookPath("thinctl")
	if err != nil {
		return "", "", 0, false
	}
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ee, isExit := err.(*exec.ExitError); isExit {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("thinctl %v: %v", args, err)
	}
	return o.String(), e.String(), code, true
}

// checkCLIRefusesWhileHeld runs thinctl docker inspect while dockerd runs.
func checkCLIRefusesWhileHeld(t *testing.T, root string, pid int) {
	t.Helper()
	out, errOut, code, ok := thinctl(t, "docker", "inspect", "--docker-root", root)
	if !ok {
		t.Log("no thinctl on the guest's PATH (run.sh --extra-bin bin/thinctl): the CLI was not run")
		return
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code != 1 || out != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], "thinctl: docker inspect: pid ") || !strings.HasPrefix(lines[1], "hint: stop Docker") {
		t.Errorf("thinctl docker inspect while dockerd (pid %d) runs: exit %d\nstdout: %s\nstderr: %s", pid, code, out, errOut)
	}
	t.Logf("$ thinctl docker inspect --docker-root %s   # while dockerd runs\n%s(exit %d)", root, errOut, code)
	troot := filepath.Join(os.TempDir(), "thinctl-adopt-held")
	_, errOut, code, _ = thinctl(t, "docker", "adopt", "--docker-root", root, "--root", troot)
	if _, err := os.Stat(troot); code != 1 || !strings.Contains(errOut, ") holds ") || strings.Count(errOut, "\n") != 2 || !os.IsNotExist(err) {
		t.Errorf("thinctl docker adopt while dockerd runs: exit %d, root %v\n%s", code, err, errOut)
	}
	t.Logf("$ thinctl docker adopt --docker-root %s --root %s   # while dockerd runs\n%s(exit %d)", root, troot, errOut, code)
}

// checkCLIReport runs thinctl docker inspect (text and JSON) on the
// stopped store and compares it with the library's report.
func checkCLIReport(t *testing.T, root string, rep *dockerdm.Report) {
	t.Helper()
	out, errOut, code, ok := thinctl(t, "docker", "inspect", "--docker-root", root)
	if !ok {
		t.Log("no thinctl on the guest's PATH (run.sh --extra-bin bin/thinctl): the CLI was not run")
		return
	}
	if code != 0 || errOut != "" {
		t.Fatalf("thinctl docker inspect: exit %d\n%s", code, errOut)
	}
	t.Logf("$ thinctl docker inspect --docker-root %s\n%s", root, out)
	for _, img := range rep.Images {
		if !strings.Contains(out, img.Tags[0]) || !strings.Contains(out, img.ID[7:19]) {
			t.Errorf("text output lacks image %s %s", img.Tags[0], img.ID)
		}
	}
	for _, c := range rep.Containers {
		if !strings.Contains(out, c.Name) {
			t.Errorf("text output lacks container %s", c.Name)
		}
	}
	if !strings.Contains(out, "Docker's records and the pool agree.") {
		t.Errorf("text output does not say the store agrees with its pool")
	}
	js, errOut, code, _ := thinctl(t, "-o", "json", "docker", "inspect", "--docker-root", root)
	var got dockerdm.Report
	if code != 0 || json.Unmarshal([]byte(js), &got) != nil {
		t.Fatalf("thinctl -o json docker inspect: exit %d, %s\n%s", code, errOut, js)
	}
	t.Logf("$ thinctl -o json docker inspect --docker-root %s\n%s", root, js)
	if len(got.Images) != len(rep.Images) || len(got.Containers) != len(rep.Containers) || got.Pool.TransactionID != rep.Pool.TransactionID {
		t.Errorf("JSON report differs from the library's: %+v", got)
	}
	for i := range got.Images {
		if got.Images[i].ID != rep.Images[i].ID || len(got.Images[i].LayerReports) != len(rep.Images[i].LayerReports) {
			t.Errorf("JSON image %d: %+v", i, got.Images[i])
		}
	}
	_, errOut, code, _ = thinctl(t, "docker", "inspect", "--docker-root", root+"-missing")
	if code != 1 || strings.Count(errOut, "\n") != 2 || !strings.Contains(errOut, "does not exist") {
		t.Errorf("a missing store: exit %d\n%s", code, errOut)
	}
	t.Logf("$ thinctl docker inspect --docker-root %s-missing\n%s(exit %d)", root, errOut, code)
}

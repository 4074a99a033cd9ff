package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCreateActivateUnderOverlay2RefusesAndCreatesNothing: --activate is a
// devicemapper flag; under overlay2 it is refused before the layer is made,
// and the layers the user had are still listed.
func TestCreateActivateUnderOverlay2RefusesAndCreatesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("overlay2 roots need root")
	}
	root := filepath.Join(t.TempDir(), "root")
	thinctl := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"--root", root, "--driver", "overlay2"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, args := range [][]string{{"pool", "init"}, {"create", "web"}} {
		if code, out, errs := thinctl(args...); code != 0 {
			t.Skipf("overlay2 root: thinctl %s: exit %d: %s%s", strings.Join(args, " "), code, out, errs)
		}
	}
	code, out, errs := thinctl("create", "app", "--activate")
	if code != 1 || !strings.Contains(errs, "create --activate is only available with the devicemapper driver (current driver: overlay2)") || out != "" {
		t.Fatalf("create --activate under overlay2: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	_, list, _ := thinctl("list")
	if !strings.Contains(list, "web") || strings.Contains(list, "app") {
		t.Fatalf("list after the refused create --activate:\n%s\nwant web and no app", list)
	}
}

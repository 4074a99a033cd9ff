package driver_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTheEmbeddingGuidesProgramBuilds compiles the complete program in
// docs/embedding.md against this checkout (go build with an overlay, so
// nothing is written into the tree), keeping the guide in step with the
// API, and as root runs it on a fresh root.
func TestTheEmbeddingGuidesProgramBuilds(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool here (the VM); the host run builds the guide")
	}
	doc, err := os.ReadFile("../docs/embedding.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```go\n")
	if !ok {
		t.Fatal("docs/embedding.md has no ```go block")
	}
	program, _, ok := strings.Cut(rest, "```\n")
	if !ok || !strings.Contains(program, "package main") {
		t.Fatal("the first ```go block of docs/embedding.md is not a whole program")
	}
	moduleRoot, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	virtual := filepath.Join(moduleRoot, "internal", "embeddingguide", "main.go")
	overlay, _ := json.Marshal(map[string]map[string]string{"Replace": {virtual: src}})
	overlayFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goTool, "build", "-overlay", overlayFile, "-o", filepath.Join(dir, "layers"), "./internal/embeddingguide")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the guide's program does not build: %v\n%s", err, out)
	}
	if os.Geteuid() != 0 {
		return
	}
	// And it does what the guide says, on the backend this host runs.
	root := t.TempDir()
	out, err := exec.Command(filepath.Join(dir, "layers"), root).CombinedOutput()
	if err != nil {
		t.Fatalf("the guide's program: %v\n%s", err, out)
	}
	for _, want := range []string{"backend ", `layer app (parent "base")`, `layer base (parent "")`, "app changes [A /hello.txt]"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the guide's program did not print %q:\n%s", want, out)
		}
	}
}

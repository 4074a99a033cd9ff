package fserrors

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestTheListKeepsValidIDsSortedAndGoesWhenEmpty(t *testing.T) {
	l := List(filepath.Join(t.TempDir(), "filesystem-errors"))
	if ids := l.IDs(); ids != nil {
		t.Fatalf("a missing file lists %v", ids)
	}
	for _, id := range []string{"b", "a", "b"} {
		if err := l.Set(id, true); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(string(l)); string(b) != "a\nb\n" {
		t.Fatalf("file %q, want a and b sorted, once each", b)
	}
	if err := l.Set("a", false); err != nil {
		t.Fatal(err)
	}
	if ids := l.IDs(); !reflect.DeepEqual(ids, []string{"b"}) {
		t.Fatalf("ids %v after removing a", ids)
	}
	if err := l.Set("b", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(string(l)); !os.IsNotExist(err) {
		t.Fatalf("an empty list left its file: %v", err)
	}
}

func TestLinesThatAreNoIDAreLeftOut(t *testing.T) {
	l := List(filepath.Join(t.TempDir(), "filesystem-errors"))
	if err := os.WriteFile(string(l), []byte("ok\n../../etc/passwd\n\n  spaced  \n-dash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ids := l.IDs(); !reflect.DeepEqual(ids, []string{"ok", "spaced"}) {
		t.Fatalf("ids %v: want only the valid ones", ids)
	}
}

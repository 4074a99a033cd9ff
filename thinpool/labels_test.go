package thinpool

import (
	"strings"
	"testing"

	"github.com/pkg/errors"
)

func TestValidateLabels(t *testing.T) {
	for _, c := range []struct {
		name   string
		labels map[string]string
		bad    string // part of the error; "" = accepted
	}{
		{"no labels are fine", nil, ""},
		{"ordinary labels are fine", map[string]string{"a": "b", "containerd.io/gc.root": "2026"}, ""},
		{"an empty value is fine", map[string]string{"a": ""}, ""},
		{"an empty key is refused", map[string]string{"": "x"}, "empty key"},
		{"a huge key is refused", map[string]string{strings.Repeat("k", maxLabelKey+1): "x"}, "the limit is 4160"},
		{"a huge value is refused", map[string]string{"k": strings.Repeat("v", maxLabelValue+1)}, "the limit is 4096"},
		{"invalid UTF-8 is refused", map[string]string{"k": "\xff"}, "not valid UTF-8"},
		{"too many bytes in all are refused", manyLabels(20, 4000), "per device"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := validateLabels(c.labels)
			switch {
			case c.bad == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.bad != "" && err == nil:
				t.Fatal("accepted")
			case c.bad != "" && (!errors.Is(err, ErrInvalidLabel) || !strings.Contains(err.Error(), c.bad)):
				t.Fatalf("error %q is not ErrInvalidLabel naming %q", err, c.bad)
			}
		})
	}
}

func manyLabels(n, size int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[strings.Repeat("k", i+1)] = strings.Repeat("v", size)
	}
	return m
}

func TestCopyLabelsIsIndependentOfItsSource(t *testing.T) {
	src := map[string]string{"a": "1"}
	c := copyLabels(src)
	src["a"] = "2"
	if c["a"] != "1" {
		t.Fatalf("the copy changed with its source: %v", c)
	}
	if copyLabels(map[string]string{}) != nil {
		t.Fatal("an empty map copies to a non-nil map (the record would carry an empty labels key)")
	}
}

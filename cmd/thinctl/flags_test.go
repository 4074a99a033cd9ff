package main

import (
	"strings"
	"testing"
)

// TestGlobalFlagsWorkBeforeAndAfterTheCommand parses command lines and
// checks where every value ended up.
func TestGlobalFlagsWorkBeforeAndAfterTheCommand(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    string // THINCTL_ROOT
		cmd    string
		root   string
		driver string
		output string
		debug  bool
		pos    []string
		parent string
		size   uint64
	}{
		{name: "defaults apply when nothing is given", args: []string{"list"},
			cmd: "list", root: "/var/lib/thinctl", driver: "auto", output: "text"},
		{name: "THINCTL_ROOT replaces the default root", args: []string{"list"}, env: "/srv/t",
			cmd: "list", root: "/srv/t", driver: "auto", output: "text"},
		{name: "--root beats THINCTL_ROOT", args: []string{"--root", "/a", "list"}, env: "/srv/t",
			cmd: "list", root: "/a", driver: "auto", output: "text"},
		{name: "global flags before the command are kept", args: []string{"--debug", "--driver", "overlay2", "-o", "json", "--root=/r", "list"},
			cmd: "list", root: "/r", driver: "overlay2", output: "json", debug: true},
		{name: "global flags after the command are accepted", args: []string{"list", "--debug", "--output=json", "--root", "/r"},
			cmd: "list", root: "/r", driver: "auto", output: "json", debug: true},
		{name: "global flags between pool and its subcommand are accepted", args: []string{"pool", "--root", "/r", "status"},
			cmd: "pool status", root: "/r", driver: "auto", output: "text"},
		{name: "flags and arguments mix in any order", args: []string{"create", "--size", "1G", "web", "--parent=base", "-debug"},
			cmd: "create", root: "/var/lib/thinctl", driver: "auto", output: "text", debug: true,
			pos: []string{"web"}, parent: "base", size: 1 << 30},
		{name: "a relative root is made absolute", args: []string{"--root", "/x/../y", "list"},
			cmd: "list", root: "/y", driver: "auto", output: "text"},
		{name: "after -- everything is an argument", args: []string{"info", "--", "web"},
			cmd: "info", root: "/var/lib/thinctl", driver: "auto", output: "text", pos: []string{"web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.env["THINCTL_ROOT"] = tt.env
			c, err := h.app(nil, nil).parse(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if c.cmd == nil || c.cmd.name != tt.cmd {
				t.Fatalf("command %v, want %q", c.cmd, tt.cmd)
			}
			g := c.g
			if g.root != tt.root || g.driver != tt.driver || g.output != tt.output || g.debug != tt.debug {
				t.Errorf("globals %+v, want root %q driver %q output %q debug %v", g, tt.root, tt.driver, tt.output, tt.debug)
			}
			if strings.Join(c.args, ",") != strings.Join(tt.pos, ",") {
				t.Errorf("arguments %q, want %q", c.args, tt.pos)
			}
			if c.opts.parent != tt.parent || c.opts.size != tt.size {
				t.Errorf("parent %q size %d, want %q %d", c.opts.parent, c.opts.size, tt.parent, tt.size)
			}
		})
	}
}

func TestRepeatableFlagsCollectEveryValue(t *testing.T) {
	h := newHarness(t)
	c, err := h.app(nil, nil).parse([]string{"pool", "init", "--mkfs-arg", "-E", "--mkfs-arg=nodiscard", "--mount-opt", "noatime", "--mount-opt", "discard"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.opts.mkfsArgs, " ") != "-E nodiscard" || strings.Join(c.opts.mountOpts, " ") != "noatime discard" {
		t.Fatalf("mkfs args %q, mount options %q", c.opts.mkfsArgs, c.opts.mountOpts)
	}
	if !c.set["mkfs-arg"] || !c.set["mount-opt"] || c.set["data-size"] {
		t.Fatalf("set flags recorded wrongly: %v", c.set)
	}
}

// FuzzParse feeds arbitrary command lines to the parser: it must never
// panic, and it either finds a command or reports a usage error.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"list", "create\x00web\x00--parent\x00base", "pool\x00init\x00--data-size=1G",
		"--root\x00/x\x00-o\x00json\x00info\x00a", "pool", "--", "-o", "create\x00--size\x00-1",
		"pool\x00grow\x00--data-size\x008P", "--help\x00pool", "info\x00--\x00-x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, "\x00")
		h := newHarness(t)
		c, err := h.app(nil, nil).parse(args)
		if err != nil {
			code, _ := diagnose(c, err)
			if code != exitUsage && code != exitFailure {
				t.Fatalf("parse(%q): error %v maps to exit %d", args, err, code)
			}
			return
		}
		if c.cmd != nil && !c.g.help && len(c.args) != len(c.cmd.args) {
			t.Fatalf("parse(%q) accepted %d arguments for %s", args, len(c.args), c.cmd.name)
		}
	})
}

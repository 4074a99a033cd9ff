// Package systemd holds thinctl's systemd units, so that tests read the
// exact files the packages install (packaging/rpm/thinctl.spec and
// packaging/deb/build.sh copy them from this directory): the VM test in
// cmd/thinctl runs their ExecStart= and ExecStop= command lines, and
// packaging/test.sh verifies them with systemd-analyze once installed.
//
// It also knows the little of systemd's naming a test needs to run a
// template's command line without systemd: path escaping (as
// systemd-escape --path does) and the %i, %I and %f specifiers.
package systemd

import (
	"bufio"
	"embed"
	"fmt"
	"strings"
)

// Files holds the unit files by name.
//
//go:embed thinctl-pool@.service thinctl-gc@.service thinctl-gc@.timer thinctl-watch@.service
var Files embed.FS

// Unit names.
const (
	PoolService = "thinctl-pool@.service" // pool up at boot, pool down at shutdown
	GCService   = "thinctl-gc@.service"   // thinctl gc, started by the timer
	GCTimer     = "thinctl-gc@.timer"     // hourly gc
	// WatchService runs pool watch (warnings, autoextend, metrics).
	WatchService = "thinctl-watch@.service"
)

// Directives returns the values of key in section of a unit file, in
// order ("Service", "ExecStart"). It supports what the units use: comments,
// sections, key=value lines; no line continuations.
func Directives(unit, section, key string) ([]string, error) {
	b, err := Files.ReadFile(unit)
	if err != nil {
		return nil, fmt.Errorf("unit %s: %w", unit, err)
	}
	var out []string
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasSuffix(line, `\`):
			return nil, fmt.Errorf("unit %s: line continuations are not supported: %q", unit, line)
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = line[1 : len(line)-1]
		case cur == section:
			k, v, ok := strings.Cut(line, "=")
			if ok && strings.TrimSpace(k) == key {
				out = append(out, strings.TrimSpace(v))
			}
		}
	}
	return out, sc.Err()
}

// EscapePath returns the instance name systemd-escape --path gives path:
// slashes trimmed and collapsed, "/" as "-", and every byte but ASCII
// letters, digits, ':', '_' and a non-leading '.' as \xNN; "/" itself is "-".
func EscapePath(path string) string {
	parts := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	if len(parts) == 0 {
		return "-"
	}
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('-')
		}
		for j := 0; j < len(p); j++ {
			c := p[j]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ':', c == '_',
				c == '.' && (i > 0 || j > 0):
				b.WriteByte(c)
			default:
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		}
	}
	return b.String()
}

// UnescapePath reverses EscapePath: "-" becomes "/", \xNN the byte; the
// result starts with "/".
func UnescapePath(name string) (string, error) {
	if name == "-" {
		return "/", nil
	}
	var b strings.Builder
	b.WriteByte('/')
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '-':
			b.WriteByte('/')
		case c == '\\':
			var v byte
			if i+3 >= len(name) || name[i+1] != 'x' {
				return "", fmt.Errorf("instance %q: bad escape at byte %d", name, i)
			}
			if _, err := fmt.Sscanf(name[i+2:i+4], "%02x", &v); err != nil {
				return "", fmt.Errorf("instance %q: bad escape at byte %d: %v", name, i, err)
			}
			b.WriteByte(v)
			i += 3
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// Expand replaces the specifiers of a template unit's line for instance
// (an escaped name): %i the instance, %f its unescaped path ("/srv/a"),
// %I the same without the leading "/" ("srv/a"), %% a percent sign.
// Any other specifier is an error: the units use no others, and a test
// that ran a line with one left in would not run what systemd runs.
func Expand(line, instance string) (string, error) {
	path, err := UnescapePath(instance)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i := 0; i < len(line); i++ {
		if line[i] != '%' {
			b.WriteByte(line[i])
			continue
		}
		if i+1 >= len(line) {
			return "", fmt.Errorf("line %q ends with a lone %%", line)
		}
		i++
		switch line[i] {
		case 'i':
			b.WriteString(instance)
		case 'f':
			b.WriteString(path)
		case 'I':
			b.WriteString(strings.TrimPrefix(path, "/"))
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("line %q: specifier %%%c is not supported here", line, line[i])
		}
	}
	return b.String(), nil
}

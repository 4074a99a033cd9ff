package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/pkg/errors"
)

// The manual pages are rendered from the command table, the flag sets and
// the help texts that --help prints, when a package is built ("thinctl
// __man --dir DIR"): the pages describe exactly the binary they ship with
// and cannot drift from --help (man_test.go compares them).

// manSection is the manual section of every page: system administration.
const manSection = "8"

// manPageName is a command's page name: "pool init" → "thinctl-pool-init".
func manPageName(c *command) string {
	return "thinctl-" + strings.ReplaceAll(c.name, " ", "-")
}

// manDateRE is the accepted --date form, compiled on first use (not at
// every thinctl start).
var manDateRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`) })

// init completes the "__man" entry of the command table; the table cannot
// name runMan itself, which reads the table (an initialization cycle).
func init() { lookupCommand([]string{"__man"}).run = runMan }

func validateMan(c *call) error {
	if c.opts.manDir == "" {
		return usagef("give --dir DIR")
	}
	if c.opts.manDate != "" && !manDateRE().MatchString(c.opts.manDate) {
		return usagef("invalid --date %q: use YYYY-MM-DD", c.opts.manDate)
	}
	return nil
}

// runMan writes thinctl.8 and one page per visible command into --dir.
func runMan(c *call) error {
	dir := c.opts.manDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return errors.Wrapf(err, "create %s", dir)
	}
	pages := manPages(c.opts.manDate, thinctlVersion())
	for _, p := range pages {
		path := filepath.Join(dir, p.name+"."+manSection)
		if err := os.WriteFile(path, []byte(p.text), 0o644); err != nil {
			return errors.Wrapf(err, "write %s", path)
		}
	}
	fmt.Fprintf(c.stdout(), "Wrote %d manual pages to %s\n", len(pages), dir)
	return nil
}

// manPage is one rendered page.
type manPage struct {
	name string // "thinctl", "thinctl-pool-init"
	text string // roff
}

// manPages renders thinctl(8) and one page per visible command.
func manPages(date, version string) []manPage {
	pages := []manPage{{name: "thinctl", text: mainManPage(date, version)}}
	for _, c := range visibleCommands() {
		pages = append(pages, manPage{name: manPageName(c), text: commandManPage(c, date, version)})
	}
	return pages
}

// roffWriter builds a page, escaping text for roff.
type roffWriter struct{ b strings.Builder }

// escapeRoff makes s safe as roff text: backslashes and hyphen-minus signs
// escaped, and a line that would start with a control character guarded.
func escapeRoff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}

// macro writes a request line: ".SH NAME".
func (r *roffWriter) macro(name string, args ...string) {
	r.b.WriteString("." + name)
	for _, a := range args {
		r.b.WriteString(" " + a)
	}
	r.b.WriteString("\n")
}

// text writes escaped running text, one sentence-ish line per input line.
func (r *roffWriter) text(s string) {
	r.b.WriteString(escapeRoff(s) + "\n")
}

// paragraph writes a help paragraph: its lines joined (roff refills them).
func (r *roffWriter) paragraph(s string) {
	r.text(strings.Join(strings.Fields(s), " "))
}

// header writes .TH and NAME. The date is YYYY-MM-DD (validateMan) and
// goes in unescaped: mandoc reads it as a date only that way.
func (r *roffWriter) header(name, summary, date, version string) {
	r.macro("TH", strings.ToUpper(escapeRoff(name)), manSection, `"`+date+`"`, quoteArg("thinctl "+version), quoteArg("System Administration"))
	r.macro("SH", "NAME")
	r.b.WriteString(escapeRoff(name) + ` \- ` + escapeRoff(summary) + "\n")
}

// quoteArg quotes a macro argument.
func quoteArg(s string) string {
	return `"` + strings.ReplaceAll(escapeRoff(s), `"`, `\(dq`) + `"`
}

// synopsis writes a SYNOPSIS section for "thinctl <synopsis>", keeping the
// help's line breaks.
func (r *roffWriter) synopsis(syn string) {
	r.macro("SH", "SYNOPSIS")
	r.macro("nf")
	for i, l := range strings.Split(syn, "\n") {
		if i == 0 {
			r.b.WriteString(`\fBthinctl\fR ` + escapeRoff(l) + "\n")
			continue
		}
		r.text("        " + strings.TrimSpace(l))
	}
	r.macro("fi")
}

// flags writes one .TP item per flag of fs, as --help lists them.
func (r *roffWriter) flags(fs *flag.FlagSet) {
	short := map[string]string{}
	for s, long := range shortAliases {
		short[long] = s
	}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "help" {
			return
		}
		placeholder, usage := flag.UnquoteUsage(f)
		item := `\fB\-\-` + escapeRoff(f.Name) + `\fR`
		if s, ok := short[f.Name]; ok {
			item = `\fB\-` + s + `\fR, ` + item
		}
		if placeholder != "" {
			item += ` \fI` + escapeRoff(placeholder) + `\fR`
		}
		r.macro("TP")
		r.b.WriteString(item + "\n")
		r.text(usage)
	})
}

// seeAlso writes SEE ALSO with the given pages (name, section).
func (r *roffWriter) seeAlso(refs ...string) {
	r.macro("SH", "SEE ALSO")
	for i, ref := range refs {
		name, sec, _ := strings.Cut(ref, "(")
		sep := ","
		if i == len(refs)-1 {
			sep = ""
		}
		r.macro("BR", escapeRoff(name), "("+sec+sep)
	}
}

// mainManPage renders thinctl(8).
func mainManPage(date, version string) string {
	var r roffWriter
	r.header("thinctl", "manage a device-mapper thin pool and its snapshot devices", date, version)
	r.macro("SH", "SYNOPSIS")
	r.b.WriteString(`\fBthinctl\fR [\fIglobal flags\fR] \fIcommand\fR [\fIflags\fR] [\fIargs\fR]` + "\n")
	r.macro("SH", "DESCRIPTION")
	r.paragraph(intro)
	r.macro("PP")
	r.paragraph("Each command has its own page, named after it: thinctl-pool-init(8) for \"thinctl pool init\". " +
		"\"thinctl --help\" and \"thinctl COMMAND --help\" print the same text as these pages.")
	r.macro("SH", "COMMANDS")
	for _, c := range visibleCommands() {
		r.macro("TP")
		r.b.WriteString(`\fB` + escapeRoff(c.name) + `\fR` + "\n")
		r.text(c.summary + ".")
		r.b.WriteString("See\n")
		r.macro("BR", escapeRoff(manPageName(c)), "("+manSection+").")
	}
	r.macro("SH", "GLOBAL FLAGS")
	r.paragraph("Accepted before or after the command name.")
	r.flags(globalFlagSet())
	r.macro("SH", "EXIT STATUS")
	r.paragraph("0 success, 1 failure, 2 usage error (unknown command or flag, bad size, bad ID, missing argument).")
	r.macro("SH", "ENVIRONMENT")
	r.macro("TP")
	r.macro("B", "THINCTL_ROOT")
	r.paragraph("The state directory when --root is not given (default " + defaultRoot + ").")
	r.macro("SH", "FILES")
	r.macro("TP")
	r.macro("I", escapeRoff(defaultRoot))
	r.paragraph("The default state directory: the pool's data and metadata files, the device registry, mount points.")
	r.macro("TP")
	r.macro("I", escapeRoff("thinctl-pool@.service"))
	r.paragraph("Brings one root's pool up at boot (thinctl pool up) and down at shutdown (thinctl pool down); " +
		"the instance is the root, escaped: thinctl-pool@var-lib-thinctl.service.")
	r.macro("TP")
	r.macro("I", escapeRoff("thinctl-gc@.timer"))
	r.paragraph("Runs thinctl gc for one root every hour (thinctl-gc@.service).")
	refs := []string{}
	for _, c := range visibleCommands() {
		refs = append(refs, manPageName(c)+"("+manSection+")")
	}
	refs = append(refs, "systemd-escape(1)", "dmsetup(8)")
	r.seeAlso(refs...)
	return r.b.String()
}

// commandManPage renders one command's page from what "thinctl <command>
// --help" prints.
func commandManPage(c *command, date, version string) string {
	var r roffWriter
	r.header(manPageName(c), c.summary, date, version)
	r.synopsis(c.synopsis)
	r.macro("SH", "DESCRIPTION")
	r.paragraph(c.detail)
	if c.json {
		r.macro("PP")
		r.paragraph("-o json prints one JSON document.")
	}
	if c.dmOnly {
		r.macro("PP")
		r.paragraph("Only available with the devicemapper driver.")
	}
	if fs := commandFlagSet(c); fs != nil {
		r.macro("SH", "FLAGS")
		r.flags(fs)
	}
	r.macro("SH", "GLOBAL FLAGS")
	r.paragraph("--root DIR, --driver NAME, -o/--output FORMAT and --debug; see thinctl(8).")
	r.macro("SH", "EXIT STATUS")
	r.paragraph("0 success, 1 failure, 2 usage error.")
	r.seeAlso("thinctl(" + manSection + ")")
	return r.b.String()
}

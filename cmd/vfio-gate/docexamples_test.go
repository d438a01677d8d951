package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
)

// docExample is one vfio-gate command line shown in the documentation.
type docExample struct {
	where string // "docs/guide.md:95", or "cobra: vfio-gate tdisp cycle"
	file  string // session key: examples of one file share an emulator
	text  string // the command as written: prompt, trailing comment and continuations removed
	// echoed is the exit status the document prints after "; echo $?"
	// (the last number in the output shown), or -1.
	echoed int
}

// docExamplesFromMarkdown extracts the command lines of README.md and
// docs/*.md (docs/cli/*.md is generated from the cobra Examples, which
// loadCLITree reads from the command tree itself). In ```sh, ```bash and
// ```shell blocks every line that runs vfio-gate is a command; in ```console
// and unlabelled blocks only lines after a "$ " prompt are (the rest is
// output, or a synopsis such as "vfio-gate scan [BDF...]").
func docExamplesFromMarkdown(t *testing.T) []docExample {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join("..", "..", "README.md")}, files...)
	var out []docExample
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(filepath.ToSlash(f), "../../")
		out = append(out, markdownCommands(name, string(b))...)
	}
	return out
}

// markdownCommands is docExamplesFromMarkdown for one file's text.
func markdownCommands(name, text string) []docExample {
	var out []docExample
	lines := strings.Split(text, "\n")
	inBlock, shell := false, false
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "```") {
			if inBlock {
				inBlock = false
				continue
			}
			inBlock = true
			lang := strings.TrimPrefix(l, "```")
			shell = lang == "sh" || lang == "bash" || lang == "shell"
			if !shell && lang != "" && lang != "console" {
				// yaml, json, go, xml: skip to the end of the block
				for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				}
				inBlock = false
			}
			continue
		}
		if !inBlock {
			continue
		}
		start := i
		cmd := l
		for strings.HasSuffix(cmd, `\`) && i+1 < len(lines) {
			i++
			cmd = strings.TrimSpace(strings.TrimSuffix(cmd, `\`)) + " " + strings.TrimSpace(lines[i])
		}
		prompted := strings.HasPrefix(cmd, "$ ")
		if !shell && !prompted {
			continue
		}
		cmd = strings.TrimSpace(stripComment(strings.TrimPrefix(cmd, "$ ")))
		if runsVfioGate(cmd) {
			out = append(out, docExample{where: fmt.Sprintf("%s:%d", name, start+1), file: name, text: cmd, echoed: echoedStatus(lines[i+1:], cmd)})
		}
	}
	return out
}

// echoedStatus returns the exit status a document prints after cmd: when
// cmd ends in "; echo $?", the last line of its output (up to the next
// prompt or the end of the block) that is a number; else -1.
func echoedStatus(after []string, cmd string) int {
	if !strings.HasSuffix(cmd, "; echo $?") {
		return -1
	}
	n := -1
	for _, l := range after {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "$ ") || strings.HasPrefix(l, "```") {
			break
		}
		if v, err := strconv.Atoi(l); err == nil {
			n = v
		}
	}
	return n
}

// runsVfioGate reports whether a shell command line runs vfio-gate.
func runsVfioGate(cmd string) bool {
	cmd = strings.TrimPrefix(cmd, "sudo ")
	return strings.HasPrefix(cmd, "vfio-gate ") || cmd == "vfio-gate" || strings.HasPrefix(cmd, "go run ./cmd/vfio-gate")
}

// stripComment removes a shell comment (" #" outside quotes) from a line.
func stripComment(s string) string {
	var q byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '\'' || c == '"':
			q = c
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return s[:i]
		}
	}
	return s
}

// helpSection returns the lines of a cobra help section (after the line
// title, up to the next blank line), continuation lines ("\") joined.
func helpSection(help, title string) []string {
	_, rest, ok := strings.Cut(help, "\n"+title+"\n")
	if !ok {
		return nil
	}
	rest, _, _ = strings.Cut(rest, "\n\n")
	var out []string
	for _, l := range strings.Split(rest, "\n") {
		if n := len(out); n > 0 && strings.HasSuffix(out[n-1], `\`) {
			out[n-1] = strings.TrimSpace(strings.TrimSuffix(out[n-1], `\`)) + " " + strings.TrimSpace(l)
			continue
		}
		out = append(out, l)
	}
	return out
}

// shellLine is a documented command line split as a shell would: the
// vfio-gate arguments and what surrounds them.
type shellLine struct {
	args       []string // after "vfio-gate" (or "go run ./cmd/vfio-gate"), sudo dropped
	stdin      string   // < FILE
	stdout     string   // > FILE
	pipe       []string // | CMD ARGS...
	echoStatus bool     // ; echo $?
	background bool     // trailing &
}

// shellWords splits s into words: quotes group, and | < > ; & are words of
// their own; $(...) stays one word.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	in := false
	flush := func() {
		if in {
			words = append(words, w.String())
			w.Reset()
			in = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unterminated quote in %q", s)
			}
			w.WriteString(s[i+1 : i+1+j])
			in = true
			i += j + 1
		case c == '$' && i+1 < len(s) && s[i+1] == '(':
			j := strings.IndexByte(s[i:], ')')
			if j < 0 {
				return nil, fmt.Errorf("unterminated $( in %q", s)
			}
			w.WriteString(s[i : i+j+1])
			in = true
			i += j
		case c == ' ' || c == '\t':
			flush()
		case strings.IndexByte("|<>;&", c) >= 0:
			flush()
			words = append(words, string(c))
		default:
			w.WriteByte(c)
			in = true
		}
	}
	flush()
	return words, nil
}

// parseShellLine parses a documented command line.
func parseShellLine(text string) (shellLine, error) {
	var l shellLine
	w, err := shellWords(text)
	if err != nil {
		return l, err
	}
	if len(w) > 0 && w[0] == "sudo" {
		w = w[1:]
	}
	switch {
	case len(w) >= 3 && w[0] == "go" && w[1] == "run" && w[2] == "./cmd/vfio-gate":
		w = w[3:]
	case len(w) >= 1 && w[0] == "vfio-gate":
		w = w[1:]
	default:
		return l, fmt.Errorf("%q does not run vfio-gate", text)
	}
	for i := 0; i < len(w); i++ {
		switch w[i] {
		case "<", ">":
			if i+1 >= len(w) {
				return l, fmt.Errorf("%q: %s without a file", text, w[i])
			}
			if w[i] == "<" {
				l.stdin = w[i+1]
			} else {
				l.stdout = w[i+1]
			}
			i++
		case "|":
			l.pipe = w[i+1:]
			if len(l.pipe) == 0 || l.pipe[0] != "jq" || slices.ContainsFunc(l.pipe, func(x string) bool { return strings.Contains("|<>;&", x) }) {
				return l, fmt.Errorf("%q: only a pipe into jq may follow the command (the harness runs it)", text)
			}
			i = len(w)
		case ";":
			if strings.Join(w[i+1:], " ") != "echo $?" {
				return l, fmt.Errorf("%q: only \"; echo $?\" may follow the command", text)
			}
			l.echoStatus = true
			i = len(w)
		case "&":
			if i != len(w)-1 {
				return l, fmt.Errorf("%q: & before the end", text)
			}
			l.background = true
		default:
			if l.stdin != "" || l.stdout != "" {
				return l, fmt.Errorf("%q: arguments after a redirection", text)
			}
			l.args = append(l.args, w[i])
		}
	}
	return l, nil
}

// cliTree is the command tree as the help shows it: each command's
// subcommands and flags (name → takes a value; the global flags are in
// every command's set).
type cliTree struct {
	subs  map[string][]string           // command path ("" = root, "tdisp cycle") → subcommands
	flags map[string]map[string]cliFlag // command path → flag name ("--json", "-h") → flag
	// examples are the commands' Examples (the text docs/cli is generated
	// from; TestCLIDocsCurrent keeps docs/cli equal to it).
	examples []docExample
}

// cliFlag is one flag as the help shows it.
type cliFlag struct {
	value bool   // takes a value
	def   string // default, as the help quotes it
}

// loadCLITree reads the command tree, every command's flags and its
// Examples from the help of "vfio-gate [PATH] --help".
func loadCLITree(t *testing.T) *cliTree {
	t.Helper()
	ct := &cliTree{subs: map[string][]string{}, flags: map[string]map[string]cliFlag{}}
	var global map[string]cliFlag
	var walk func(path []string)
	walk = func(path []string) {
		code, help, errs := runCLI(t, append(append([]string{}, path...), "--help")...)
		if code != 0 {
			t.Fatalf("vfio-gate %s --help: exit %d: %s", strings.Join(path, " "), code, errs)
		}
		key := strings.Join(path, " ")
		for _, l := range helpSection(help, "Examples:") {
			l = strings.TrimSpace(stripComment(l))
			if runsVfioGate(l) {
				ct.examples = append(ct.examples, docExample{where: "cobra: " + strings.TrimSpace("vfio-gate "+key), file: "cobra", text: l, echoed: -1})
			}
		}
		fl := map[string]cliFlag{}
		for n, v := range global {
			fl[n] = v
		}
		for _, l := range append(helpSection(help, "Flags:"), helpSection(help, "Flags of the parent command:")...) {
			f := strings.Fields(l)
			short := ""
			if len(f) > 0 && strings.HasPrefix(f[0], "-") && !strings.HasPrefix(f[0], "--") {
				short, f = strings.TrimSuffix(f[0], ","), f[1:]
			}
			if len(f) == 0 || !strings.HasPrefix(f[0], "--") {
				continue
			}
			cf := cliFlag{value: len(f) > 1 && isValueType(f[1])}
			if _, d, ok := strings.Cut(l, `(default "`); ok {
				cf.def, _, _ = strings.Cut(d, `"`)
			}
			fl[f[0]] = cf
			if short != "" {
				fl[short] = cf
			}
		}
		if path == nil {
			global = fl
		}
		ct.flags[key] = fl
		for _, l := range helpSection(help, "Available Commands:") {
			sub := strings.Fields(l)[0]
			ct.subs[key] = append(ct.subs[key], sub)
			if sub != "help" && sub != "completion" {
				walk(append(append([]string{}, path...), sub))
			}
		}
	}
	walk(nil)
	return ct
}

// isValueType reports whether the word after a flag in cobra's help is the
// value's type (pflag prints one for every non-boolean flag).
func isValueType(w string) bool {
	switch w {
	case "string", "strings", "stringArray", "stringSlice", "int", "int64", "intSlice", "uint", "uint8", "uint16", "uint32", "uint64",
		"duration", "float64", "bytesHex":
		return true
	}
	return false
}

// resolve finds the command an argument list runs and checks every flag
// against that command's help: an unknown subcommand or flag is an error.
func (ct *cliTree) resolve(args []string) (path string, err error) {
	var cur []string
	var positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		fl := ct.flags[strings.Join(cur, " ")]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			name, _, hasVal := strings.Cut(a, "=")
			f, ok := fl[name]
			if !ok {
				return "", fmt.Errorf("vfio-gate %s has no flag %s", strings.Join(cur, " "), name)
			}
			if f.value && !hasVal {
				if i++; i == len(args) {
					return "", fmt.Errorf("vfio-gate %s: flag %s needs a value", strings.Join(cur, " "), name)
				}
			}
			continue
		}
		if len(positional) == 0 && slices.Contains(ct.subs[strings.Join(cur, " ")], a) {
			cur = append(cur, a)
			continue
		}
		if len(positional) == 0 && len(ct.subs[strings.Join(cur, " ")]) > 0 {
			return "", fmt.Errorf("vfio-gate %s has no subcommand %q", strings.Join(cur, " "), a)
		}
		positional = append(positional, a)
	}
	return strings.Join(cur, " "), nil
}

// docExpect is what one documented command line does in the sandbox.
type docExpect struct {
	code int    // exit code
	why  string // when set: why it cannot run here; only its command line is checked
	// before, if set, runs before the example (a step the document shows
	// between commands, such as editing a file).
	before func(s *docSession)
}

// docExamples are every documented command line: README.md, docs/*.md and
// the cobra Examples.
func allDocExamples(t *testing.T, ct *cliTree) []docExample {
	t.Helper()
	return append(docExamplesFromMarkdown(t), ct.examples...)
}

// TestDocExamplesParse: every documented vfio-gate command line names a
// real command with real flags (cobra accepts them: "ARGS --help" exits 0),
// has an entry in docExampleTable, and where the document prints the exit
// status (; echo $?) it is the table's. No table entry is unused.
func TestDocExamplesParse(t *testing.T) {
	ct := loadCLITree(t)
	used := map[string]bool{}
	for _, ex := range allDocExamples(t, ct) {
		want, ok := docExampleTable[ex.text]
		if !ok {
			t.Errorf("%s: %q has no entry in docExampleTable (cmd/vfio-gate/docsandbox_test.go): add its exit code in the sandbox, or why it cannot run there", ex.where, ex.text)
		}
		used[ex.text] = true
		if err := checkCommandLine(t, ct, ex.text); err != nil {
			t.Errorf("%s: %v", ex.where, err)
		}
		if ex.echoed >= 0 && ok && want.why == "" && ex.echoed != want.code {
			t.Errorf("%s: the document shows exit status %d, the table %d", ex.where, ex.echoed, want.code)
		}
	}
	for text := range docExampleTable {
		if !used[text] {
			t.Errorf("docExampleTable has %q, which no document shows any more: remove it", text)
		}
	}
}

// checkCommandLine checks, without running it, that a command line names
// a real command and only its flags, and that cobra parses it.
func checkCommandLine(t *testing.T, ct *cliTree, text string) error {
	t.Helper()
	l, err := parseShellLine(text)
	if err != nil {
		return err
	}
	path, err := ct.resolve(l.args)
	if err != nil {
		return fmt.Errorf("%q: %v", text, err)
	}
	if path == "libvirt-hook" {
		return nil // its arguments are libvirt's: --help would be one of them
	}
	var args []string
	for _, a := range l.args {
		for _, n := range []int{16, 20} {
			a = strings.ReplaceAll(a, fmt.Sprintf("$(openssl rand -hex %d)", n), strings.Repeat("5e", n))
		}
		args = append(args, a)
	}
	// run, not runCLI: with --json and --help the output is help, not JSON
	var out, errs strings.Builder
	code := run(context.Background(), append(append([]string{"vfio-gate"}, args...), "--help"), strings.NewReader(""), &out, &errs,
		func(string) string { return "" })
	if code != 0 {
		return fmt.Errorf("%q: cobra refuses it: exit %d: %s", text, code, errs.String())
	}
	if want := "vfio-gate " + path; path != "" && !strings.Contains(out.String(), "\n  "+want) {
		return fmt.Errorf("%q: the help printed is not that of %q:\n%s", text, want, out.String())
	}
	return nil
}

// TestDocExamplesCatchBrokenLines: the harness finds command lines that
// do not parse, and extracts what a shell would run.
func TestDocExamplesCatchBrokenLines(t *testing.T) {
	ct := loadCLITree(t)
	for _, bad := range []string{
		"vfio-gate scan --no-doe --no-such-flag",              // unknown flag
		"sudo vfio-gate tdisp cycel --socket 127.0.0.1:2323",  // unknown subcommand
		"vfio-gate policy chek /etc/vfio-gate/policy.yaml",    // unknown subcommand of a group
		"vfio-gate scan --timeout soon",                       // a value cobra refuses
		"vfio-gate --json log verify --tpm",                   // a flag without its value
		"vfio-gate attest | jq . ; echo $?",                   // ; after a pipe: not a form the harness knows
		"virsh start vm1",                                     // not vfio-gate
		"vfio-gate status --json | sudo tee /etc/status.json", // a pipe into something other than jq
	} {
		if err := checkCommandLine(t, ct, bad); err == nil {
			t.Errorf("%q passes the command-line check", bad)
		}
	}
	for _, good := range []string{"vfio-gate --json version", "sudo vfio-gate check --confidential 0000:3b:00.0 --lock-dir=/tmp/l",
		"vfio-gate status --json | jq '.domains'"} {
		if err := checkCommandLine(t, ct, good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}

	md := "text\n```sh\nvfio-gate demo   # a comment\nsudo vfio-gate scan \\\n  --no-doe\nls /tmp\n```\n" +
		"```\n$ vfio-gate scan 3b:00.0; echo $?\nvfio-gate: scan: malformed\n1\nvfio-gate scan [BDF...]   (a synopsis)\n```\n" +
		"```yaml\n$ vfio-gate not-a-command\n```\n"
	got := markdownCommands("x.md", md)
	want := []docExample{{where: "x.md:3", file: "x.md", text: "vfio-gate demo", echoed: -1},
		{where: "x.md:4", file: "x.md", text: "sudo vfio-gate scan --no-doe", echoed: -1},
		{where: "x.md:9", file: "x.md", text: "vfio-gate scan 3b:00.0; echo $?", echoed: 1}}
	if !slices.Equal(got, want) {
		t.Errorf("markdownCommands:\n got %+v\nwant %+v", got, want)
	}
}

// docSynopses returns the synopses of README.md and docs/*.md: lines of
// ```console and unlabelled blocks, without a prompt, that start with
// "vfio-gate COMMAND" ("vfio-gate scan [BDF...] [--json]").
func docSynopses(t *testing.T, ct *cliTree) []docExample {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	gatetest.Must(t, err)
	var out []docExample
	for _, f := range append(files, filepath.Join("..", "..", "README.md")) {
		inBlock, plain := false, false
		for i, l := range strings.Split(string(mustRead(t, f)), "\n") {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "```") {
				inBlock = !inBlock
				plain = l == "```" || l == "```console"
				continue
			}
			if !inBlock || !plain {
				continue
			}
			w := strings.Fields(strings.TrimPrefix(strings.TrimPrefix(l, "sudo "), "go run ./cmd/"))
			if len(w) > 1 && w[0] == "vfio-gate" && slices.Contains(ct.subs[""], w[1]) {
				out = append(out, docExample{where: fmt.Sprintf("%s:%d", strings.TrimPrefix(filepath.ToSlash(f), "../../"), i+1), text: l, echoed: -1})
			}
		}
	}
	return out
}

// TestDocSynopsesNameRealFlags: every flag a synopsis in the documents
// names is a flag of its command.
func TestDocSynopsesNameRealFlags(t *testing.T) {
	ct := loadCLITree(t)
	syn := docSynopses(t, ct)
	if len(syn) < 20 {
		t.Fatalf("found only %d synopses", len(syn))
	}
	for _, s := range syn {
		w := strings.Fields(strings.TrimPrefix(strings.TrimPrefix(s.text, "sudo "), "go run ./cmd/"))[1:]
		var path []string
		for len(w) > 0 && slices.Contains(ct.subs[strings.Join(path, " ")], w[0]) {
			path, w = append(path, w[0]), w[1:]
		}
		fl := ct.flags[strings.Join(path, " ")]
		for _, f := range docFlagRE.FindAllString(strings.Join(w, " "), -1) {
			if _, ok := fl[f]; !ok {
				t.Errorf("%s: %q names %s, which vfio-gate %s does not have", s.where, s.text, f, strings.Join(path, " "))
			}
		}
	}
}

var docFlagRE = regexp.MustCompile(`--[a-z][a-z0-9-]*`)

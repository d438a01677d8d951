package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	rpt "github.com/vfio-gate/vfio-gate/internal/report"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vfio-gate/vfio-gate/audit"
)

// schemaDir holds the JSON Schema of every document vfio-gate prints or
// stores (docs/json.md).
const schemaDir = "../../docs/schema"

var schemas struct {
	once sync.Once
	err  error
	byID map[string]*jsonschema.Schema // "vfio-gate/scan/v1" -> schema
}

var schemaNameRE = regexp.MustCompile(`^vfio-gate/([a-z][a-z0-9-]*)/v([0-9]+)$`)

// loadSchemas compiles docs/schema/<kind>.v<N>.json for every kind.
func loadSchemas() (map[string]*jsonschema.Schema, error) {
	schemas.once.Do(func() {
		files, err := filepath.Glob(filepath.Join(schemaDir, "*.v*.json"))
		if err != nil || len(files) == 0 {
			schemas.err = errors.Join(errors.New("no schema files in "+schemaDir), err)
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		schemas.byID = map[string]*jsonschema.Schema{}
		for _, f := range files {
			base := filepath.Base(f)
			if base == "common.v1.json" {
				continue
			}
			kind, ver, _ := strings.Cut(strings.TrimSuffix(base, ".json"), ".v")
			abs, err := filepath.Abs(f)
			if err != nil {
				schemas.err = err
				return
			}
			s, err := c.Compile(abs)
			if err != nil {
				schemas.err = err
				return
			}
			schemas.byID["vfio-gate/"+kind+"/v"+ver] = s
		}
	})
	return schemas.byID, schemas.err
}

var seenKinds sync.Map // kind name -> true: documents checked in this run

// validateDocs checks that out is a stream of JSON objects, each naming its
// schema, and valid against it. It returns the schema names seen.
func validateDocs(out string) ([]string, error) {
	byID, err := loadSchemas()
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var names []string
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			return names, err
		}
		var head struct {
			Schema *string `json:"schema"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return names, errors.New("document is not a JSON object: " + err.Error())
		}
		if head.Schema == nil {
			return names, errors.New(`document has no "schema"`)
		}
		if !schemaNameRE.MatchString(*head.Schema) {
			return names, errors.New("schema name " + *head.Schema + " is not vfio-gate/<kind>/v<N>")
		}
		s, ok := byID[*head.Schema]
		if !ok {
			return names, errors.New("no schema file for " + *head.Schema + " in docs/schema")
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return names, err
		}
		if err := s.Validate(inst); err != nil {
			return names, err
		}
		names = append(names, *head.Schema)
		seenKinds.Store(*head.Schema, true)
	}
	if len(names) == 0 {
		return nil, errors.New("no JSON document")
	}
	return names, nil
}

// checkJSONOut validates what a command printed with --json (every runner of
// these tests calls it, so every JSON output of every test is checked).
func checkJSONOut(t *testing.T, args []string, out string) {
	t.Helper()
	if !slices.Contains(args, "--json") || strings.TrimSpace(out) == "" {
		return
	}
	if d := os.Getenv("VFIOGATE_JSON_DUMP"); d != "" {
		var head struct{ Schema string }
		_ = json.Unmarshal([]byte(out), &head)
		f, _ := os.CreateTemp(d, strings.ReplaceAll(head.Schema, "/", "_")+"-*.json")
		_, _ = f.WriteString(strings.Join(args, " ") + "\n" + out)
		f.Close()
		return
	}
	if _, err := validateDocs(out); err != nil {
		t.Errorf("vfio-gate %s: output does not match its schema: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// With --json, a command that fails before printing its answer prints the
// error document on stdout (and the message on stderr), whatever failed:
// flag parsing, a usage error, a missing device.
func TestJSONErrorDocument(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"scan", "--json", "not-a-bdf"}, exitInternal, "not-a-bdf"},
		{[]string{"--json", "scan", "--no-such-flag"}, exitInternal, "no-such-flag"},
		{[]string{"doe", "discover", "--json", "--sysfs-root", empty, "0000:99:00.0"}, exitUnavailable, "0000:99:00.0"},
	} {
		code, out, errs := runCLI(t, tc.args...)
		var doc rpt.Error
		dec := json.NewDecoder(strings.NewReader(out))
		if err := dec.Decode(&doc); err != nil || dec.More() {
			t.Errorf("%v: stdout is not one JSON document (%v): %q", tc.args, err, out)
			continue
		}
		if code != tc.code || doc.Schema != "vfio-gate/error/v1" || doc.ExitCode != code || doc.Meaning != exitMeaning[code] ||
			!strings.Contains(doc.Error, tc.want) || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, document %+v, stderr %q; want exit %d naming %q", tc.args, code, doc, errs, tc.code, tc.want)
		}
	}
	// Without --json, stdout stays empty.
	if code, out, _ := runCLI(t, "scan", "not-a-bdf"); code != exitInternal || out != "" {
		t.Errorf("scan not-a-bdf: exit %d, stdout %q", code, out)
	}
}

func TestWriteJSONSchemaFirst(t *testing.T) {
	var b bytes.Buffer
	if err := rpt.WriteJSON(&b, "version", map[string]string{"version": "x"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "{\n  \"schema\": \"vfio-gate/version/v1\",\n") {
		t.Errorf("schema is not the first member:\n%s", b.String())
	}
	b.Reset()
	if err := rpt.WriteJSON(&b, "x", struct{}{}); err != nil || strings.TrimSpace(b.String()) != "{\n  \"schema\": \"vfio-gate/x/v1\"\n}" {
		t.Errorf("empty object: %v %q", err, b.String())
	}
	for _, v := range []any{[]int{1}, "s", struct {
		Schema string `json:"schema"`
	}{"vfio-gate/other/v1"}} {
		b.Reset()
		if err := rpt.WriteJSON(&b, "x", v); err == nil || b.Len() != 0 {
			t.Errorf("%#v: accepted: %q", v, b.String())
		}
	}
}

// Every kind the code prints has a schema file, and every schema file is
// of a kind the code prints or stores (docs/json.md lists them).
func TestSchemaFilesMatchKinds(t *testing.T) {
	byID, err := loadSchemas()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{
		"vfio-gate/error/v1": true, // reportErrorJSON
		// Stored documents (gate.BoundSchema, daemon.StateSchema, tdisp.JournalSchema, evstore.Schema), checked in their packages.
		"vfio-gate/bound/v1": true, "vfio-gate/daemon-state/v1": true, "vfio-gate/tdisp-journal/v1": true,
		"vfio-gate/evidence-bundle/v1": true,
	}
	// rpt.WriteJSON(w, "kind", ...), rpt.JSONDoc("kind", ...), jsonOrText(e, g, "kind", ...), g.write(e, "kind", ...)
	re := regexp.MustCompile(`(?:rpt\.WriteJSON\([^,()]+|jsonOrText\([^,()]+,[^,()]+|g\.write\([^,()]+|rpt\.JSONDoc\()\s*,?\s*"([a-z][a-z0-9-]*)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			used[rpt.SchemaName(m[1])] = true
		}
	}
	if len(used) < 20 {
		t.Fatalf("found only %d kinds in the source: %v", len(used), used)
	}
	for k := range used {
		if byID[k] == nil {
			t.Errorf("%s is printed but docs/schema has no file for it", k)
		}
	}
	for k := range byID {
		if !used[k] {
			t.Errorf("docs/schema describes %s, which nothing prints", k)
		}
	}
	doc, err := os.ReadFile("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	for k := range used {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/json.md does not list `%s`", k)
		}
	}
}

// audit --json needs BPF (root) to run; its lines are made by jsonDoc from
// audit.Access, checked here with a read and a write.
func TestAuditEventSchema(t *testing.T) {
	v := uint32(0x12345678)
	for _, a := range []audit.Access{
		{WallTime: time.Date(2026, 12, 4, 1, 2, 3, 4, time.UTC), PID: 42, TID: 43, Comm: "setpci", CgroupID: 7, Device: "0000:3b:00.0",
			Op: "write", Offset: 0x15c, Size: 4, Value: &v, Path: "sysfs", Region: "doe"},
		{WallTime: time.Date(2026, 12, 4, 1, 2, 3, 4, time.UTC), PID: 42, TID: 42, Comm: "lspci", Device: "0000:3b:00.0",
			Op: "read", Offset: 0, Size: 2, Path: "vfio"},
	} {
		b, err := rpt.JSONDoc("audit-event", &a)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("\n")) {
			t.Errorf("audit event is not one line: %s", b)
		}
		if names, err := validateDocs(string(b)); err != nil || len(names) != 1 || names[0] != "vfio-gate/audit-event/v1" {
			t.Errorf("%s: %v %v", b, names, err)
		}
	}
}

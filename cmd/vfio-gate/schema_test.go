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

	"github.com/santhosh-tekuri/jsonschema/v6"
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

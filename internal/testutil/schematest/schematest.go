package schematest

import (
	"bytes"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Dir is the absolute path of docs/schema.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "docs", "schema")
}

// Validate fails t unless doc is valid against docs/schema/<kind>.v1.json.
func Validate(t testing.TB, kind string, doc []byte) {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(filepath.Join(Dir(), kind+".v1.json"))
	if err != nil {
		t.Fatalf("schema %s: %v", kind, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("%s document: %v\n%s", kind, err, doc)
	}
	if err := s.Validate(inst); err != nil {
		t.Errorf("%s document does not match docs/schema/%s.v1.json: %v\n%s", kind, kind, err, doc)
	}
}

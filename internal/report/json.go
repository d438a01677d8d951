package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// schemaPrefix and schemaVersion make the "schema" of every JSON document:
// "vfio-gate/<kind>/v1" (docs/json.md; docs/schema/<kind>.v1.json).
const (
	schemaPrefix  = "vfio-gate/"
	schemaVersion = "/v1"
)

// SchemaName is the "schema" of the document of kind: "vfio-gate/<kind>/v1".
func SchemaName(kind string) string { return schemaPrefix + kind + schemaVersion }

// Error is the body of the "error" document: the `--json` form of a failed
// command.
type Error struct {
	Schema   string `json:"schema"`
	ExitCode int    `json:"exit_code"`
	Meaning  string `json:"meaning"`
	Error    string `json:"error"`
}

// WriteJSON writes v, which must encode as a JSON object, indented, as the
// document of kind: "schema": "vfio-gate/<kind>/v1" comes first.
func WriteJSON(w io.Writer, kind string, v any) error {
	b, err := JSONDoc(kind, v)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// JSONDoc is v encoded (compact) with "schema" as its first member. A v that
// names its schema itself (doctor) must name the same one.
func JSONDoc(kind string, v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	b := bytes.TrimSpace(buf.Bytes())
	if len(b) < 2 || b[0] != '{' {
		return nil, fmt.Errorf("vfio-gate: internal error: %s document is not a JSON object", kind)
	}
	head, err := json.Marshal(SchemaName(kind))
	if err != nil {
		return nil, err
	}
	field := append([]byte(`"schema":`), head...)
	switch {
	case bytes.HasPrefix(b[1:], []byte(`"schema":`)):
		if !bytes.HasPrefix(b[1:], field) {
			return nil, fmt.Errorf("vfio-gate: internal error: %s document names another schema", kind)
		}
		return b, nil
	case string(b) == "{}":
		return append(append([]byte("{"), field...), '}'), nil
	default:
		return append(append(append([]byte("{"), field...), ','), b[1:]...), nil
	}
}

// CountingWriter counts what was written through it, so that a command's
// error is added as a JSON document only when stdout holds none yet.
type CountingWriter struct {
	W io.Writer
	N int // bytes written
}

func (c *CountingWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += n
	return n, err
}

package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestWriteJSONSchemaFirst(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, "version", map[string]string{"version": "x"}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"schema\": \"vfio-gate/version/v1\",\n  \"version\": \"x\"\n}\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	b.Reset()
	if err := WriteJSON(&b, "x", struct{}{}); err != nil || b.String() != "{\n  \"schema\": \"vfio-gate/x/v1\"\n}\n" {
		t.Errorf("empty object: %v %q", err, b.String())
	}
	for _, v := range []any{[]int{1}, "s", nil, struct {
		Schema string `json:"schema"`
	}{"vfio-gate/other/v1"}} {
		b.Reset()
		if err := WriteJSON(&b, "x", v); err == nil || b.Len() != 0 {
			t.Errorf("%#v: accepted: %q", v, b.String())
		}
	}
}

// A body that names its own schema keeps it when it is the document's.
func TestJSONDocOwnSchema(t *testing.T) {
	v := struct {
		Schema string `json:"schema"`
		A      int    `json:"a"`
	}{"vfio-gate/doctor/v1", 1}
	b, err := JSONDoc("doctor", v)
	if err != nil || string(b) != `{"schema":"vfio-gate/doctor/v1","a":1}` {
		t.Errorf("JSONDoc = %s, %v", b, err)
	}
	if b, err := JSONDoc("audit-event", map[string]int{"pid": 42}); err != nil || string(b) != `{"schema":"vfio-gate/audit-event/v1","pid":42}` {
		t.Errorf("JSONDoc = %s, %v", b, err)
	}
}

func TestErrorDocument(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, "error", Error{Schema: SchemaName("error"), ExitCode: 4, Meaning: "device or transport unavailable", Error: "no such device"}); err != nil {
		t.Fatal(err)
	}
	var e Error
	if err := json.Unmarshal(b.Bytes(), &e); err != nil {
		t.Fatal(err)
	}
	if e != (Error{Schema: "vfio-gate/error/v1", ExitCode: 4, Meaning: "device or transport unavailable", Error: "no such device"}) {
		t.Errorf("got %+v", e)
	}
	if !strings.HasPrefix(b.String(), "{\n  \"schema\": \"vfio-gate/error/v1\",\n") {
		t.Errorf("schema not first:\n%s", b.String())
	}
}

func TestCountingWriter(t *testing.T) {
	var b bytes.Buffer
	c := &CountingWriter{W: &b}
	for _, s := range []string{"", "ab", "cde"} {
		if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if c.N != 5 || b.String() != "abcde" {
		t.Errorf("N = %d, wrote %q", c.N, b.String())
	}
}

package daemon

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// maxJSONDepth caps nesting in a request (ours nest two deep).
const maxJSONDepth = 16

// checkStrictJSON is a pre-pass over a request body for what encoding/json
// (v1) lets through: the body must be exactly one JSON object (no trailing
// data), no object may repeat a member name, and every member name must be
// spelled exactly as a field of v's type names it (encoding/json matches
// names case-insensitively, with Unicode folding: "DOMAIN" or "ſtate" would
// fill "domain" or "state"). A map-typed field anywhere in v lifts the
// spelling check (its keys are data). encoding/json/v2 does all of this, but
// in Go 1.26 only under GOEXPERIMENT=jsonv2, which we do not build with.
func checkStrictJSON(body []byte, v any) error {
	names, anyKey := map[string]bool{}, false
	jsonNames(reflect.TypeOf(v), names, &anyKey, map[reflect.Type]bool{})
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object  bool
		wantKey bool
		seen    map[string]bool
	}
	var stack []*frame
	first := true
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) && len(stack) == 0 && !first {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("request body: unexpected end of JSON")
			}
			return fmt.Errorf("request body: %v", err)
		}
		if len(stack) == 0 {
			if !first {
				return errors.New("request body: trailing data after the JSON object")
			}
			first = false
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return errors.New("request body: want one JSON object")
			}
			stack = append(stack, &frame{object: true, wantKey: true, seen: map[string]bool{}})
			continue
		}
		top := stack[len(stack)-1]
		if top.object && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k, _ := tok.(string)
			if top.seen[k] {
				return fmt.Errorf("request body: member %q given twice", k)
			}
			top.seen[k] = true
			if !anyKey && !names[k] {
				for n := range names {
					if strings.EqualFold(n, k) { // Unicode simple folding, as encoding/json
						return fmt.Errorf("request body: member %q: names are case-sensitive (want %q)", k, n)
					}
				}
				return fmt.Errorf("request body: unknown member %q", k)
			}
			top.wantKey = false
			continue
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return fmt.Errorf("request body: nested deeper than %d", maxJSONDepth)
				}
				stack = append(stack, &frame{object: d == '{', wantKey: true, seen: map[string]bool{}})
				continue
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
		}
		// A value (scalar, or a container just closed) ends a member.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
}

// jsonNames collects the member names of every struct reachable from t.
func jsonNames(t reflect.Type, out map[string]bool, anyKey *bool, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if seen[t] {
		return
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Map:
		*anyKey = true
	case reflect.Struct:
		if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
			return // decoded from a JSON string (pci.BDF, time.Time)
		}
		if t.Implements(reflect.TypeFor[json.Unmarshaler]()) || reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
			*anyKey = true // decodes itself: its member names are not ours to know
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			out[name] = true
			jsonNames(f.Type, out, anyKey, seen)
		}
	}
}

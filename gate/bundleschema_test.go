package gate_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/gate/evstore"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/internal/testutil/schematest"
	"github.com/vfio-gate/vfio-gate/pci"
)

// storedBundles returns every bundle file in dir, by name.
func storedBundles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	must(t, err)
	out := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		must(t, err)
		out[filepath.Base(f)] = data
	}
	return out
}

// The bundles the gate stores (allow and deny, enforce and audit, with and
// without an SPDM session, a TDISP state and report, measurements, a failure)
// match docs/schema/evidence-bundle.v1.json, and the schema refuses a bundle
// that strays from what evstore writes.
func TestEvidenceBundleSchema(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "evidence")
	store := evstore.Open(dir, evstore.Options{})
	withStore := func(o *gate.Options) { o.Evidence = store }

	// Enforce: allow, deny on tampered measurements and on a bad signature.
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good"},
		dev{bdf: "0000:02:00.0", profile: "tampered"}, dev{bdf: "0000:03:00.0", profile: "bad-signature"})
	check(t, w.gate(withStore), false, bdf(t, "0000:01:00.0"), bdf(t, "0000:02:00.0"), bdf(t, "0000:03:00.0"))
	w.tp.Close() // one TPM simulator per process
	// Audit mode.
	w = newWorld(t, policyOpts{mode: "audit"}, dev{bdf: "0000:01:00.0", profile: "tampered"})
	check(t, w.gate(withStore), false, bdf(t, "0000:01:00.0"))
	w.tp.Close()
	// A session and TDISP: unlocked (deny), then locked by a keeper with
	// its interface report (allow).
	w = newWorld(t, policyOpts{extra: requireLock}, dev{bdf: "0000:01:00.0", profile: "good"})
	g := w.gate(withStore)
	b := bdf(t, "0000:01:00.0")
	check(t, g, true, b)
	ds, err := g.Check(t.Context(), gate.Request{BDFs: []pci.BDF{b}, Confidential: true, Domain: "vm1", TDIs: newKeeper(t)})
	must(t, err)
	if !ds[0].Allowed() || !ds[0].TDILocked {
		t.Fatalf("keeper: %+v", ds[0].Verdict)
	}

	seen := map[string]bool{}
	for name, data := range storedBundles(t, dir) {
		schematest.Validate(t, "evidence-bundle", data)
		// evidence show --json prints the bundle (docs/schema/evidence-show.v1.json refers to this schema).
		b, err := evstore.Parse(data)
		must(t, err)
		show, err := rpt.JSONDoc("evidence-show", rpt.EvidenceShowOf(b))
		must(t, err)
		schematest.Validate(t, "evidence-show", show)
		var doc struct {
			Decision evstore.Decision `json:"decision"`
			Evidence struct {
				Measurements []json.RawMessage `json:"measurements"`
				Session      json.RawMessage   `json:"session"`
				TDISP        *struct {
					Report string `json:"report"`
				} `json:"tdisp"`
				Failure json.RawMessage `json:"failure"`
			} `json:"evidence"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		seen[doc.Decision.Verdict] = true
		seen["mode "+doc.Decision.Mode] = true
		seen["confidential"] = seen["confidential"] || doc.Decision.Confidential
		seen["measurements"] = seen["measurements"] || len(doc.Evidence.Measurements) > 0
		seen["session"] = seen["session"] || doc.Evidence.Session != nil
		seen["tdisp"] = seen["tdisp"] || doc.Evidence.TDISP != nil
		seen["report"] = seen["report"] || (doc.Evidence.TDISP != nil && doc.Evidence.TDISP.Report != "")
		seen["failure"] = seen["failure"] || doc.Evidence.Failure != nil
	}
	for _, want := range []string{"allow", "deny", "mode enforce", "mode audit", "confidential", "measurements", "session", "tdisp", "report", "failure"} {
		if !seen[want] {
			t.Errorf("no stored bundle has %s: %v", want, seen)
		}
	}

	// The schema is strict: a real bundle with one member changed is refused.
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(filepath.Join(schematest.Dir(), "evidence-bundle.v1.json"))
	must(t, err)
	var good []byte
	for _, data := range storedBundles(t, dir) {
		if bytes.Contains(data, []byte(`"tdisp":`)) {
			good = data
			break
		}
	}
	for _, tc := range []struct{ name, old, new string }{
		{"unknown member", `{"schema":`, `{"extra":1,"schema":`},
		{"schema", `"vfio-gate/evidence-bundle/v1"`, `"vfio-gate/evidence-bundle/v2"`},
		{"digest", `"digest":"`, `"digest":"0`},
		{"decision member", `"decision":{`, `"decision":{"x":1,`},
		{"verdict", `"verdict":"`, `"verdict":"maybe`},
		{"evidence member", `"evidence":{`, `"evidence":{"x":1,`},
		{"evidence schema", `"evidence":{`, `"evidence":{"schema":"vfio-gate/attest/v1",`},
		{"identity ID", `"vendor_id":"0x`, `"vendor_id":"0X`},
	} {
		bad := bytes.Replace(good, []byte(tc.old), []byte(tc.new), 1)
		if bytes.Equal(bad, good) {
			t.Fatalf("%s: %q not in the bundle:\n%s", tc.name, tc.old, good)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(bad))
		must(t, err)
		if s.Validate(inst) == nil {
			t.Errorf("%s: accepted:\n%s", tc.name, bad)
		}
	}

	// The evidence with a schema member is an attest --json document, and
	// attest.v1.json stays closed.
	var env struct{ Evidence json.RawMessage }
	must(t, json.Unmarshal(good, &env))
	doc := append([]byte(`{"schema":"vfio-gate/attest/v1",`), env.Evidence[1:]...)
	schematest.Validate(t, "attest", doc)
	as, err := c.Compile(filepath.Join(schematest.Dir(), "attest.v1.json"))
	must(t, err)
	for _, bad := range [][]byte{env.Evidence, append([]byte(`{"x":1,`), doc[1:]...)} {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(bad))
		must(t, err)
		if as.Validate(inst) == nil {
			t.Errorf("attest.v1.json accepted:\n%.200s", bad)
		}
	}
}

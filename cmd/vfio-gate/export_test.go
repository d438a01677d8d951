package main

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-eventlog/register"
	"github.com/google/go-eventlog/tcg"
	"github.com/vfio-gate/vfio-gate/gate/evstore"
	"github.com/vfio-gate/vfio-gate/internal/evexport"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// demoState runs the demo (real decisions by the software devices, recorded
// on swtpm, bundles stored) and returns its state dir and kept directory
// (policy, emu-root.pem).
func demoState(t *testing.T, spec string) (state, kept string) {
	t.Helper()
	state = t.TempDir()
	code, out, errs := runCLI(t, "demo", "--tpm", spec, "--state-dir", state, "--keep")
	m := regexp.MustCompile(`(?m)^kept (\S+)$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, errs)
	}
	t.Cleanup(func() { os.RemoveAll(m[1]) })
	return state, m[1]
}

func runTool(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out), 0
}

// eventlogSHA256 runs tpm2_eventlog on a file and returns the number of
// events after the Spec ID event and its final sha256 value of pcr.
func eventlogSHA256(t *testing.T, path string, pcr int) (int, string) {
	t.Helper()
	out, code := runTool(t, "tpm2_eventlog", path)
	if code != 0 {
		t.Fatalf("tpm2_eventlog %s: exit %d\n%s", path, code, out)
	}
	n := strings.Count(out, "- EventNum:") - 1
	_, pcrsPart, ok := strings.Cut(out, "\npcrs:\n")
	_, bank, ok2 := strings.Cut(pcrsPart, "  sha256:\n")
	if !ok || !ok2 {
		t.Fatalf("tpm2_eventlog printed no sha256 PCRs:\n%s", out[max(0, len(out)-2000):])
	}
	for _, l := range strings.Split(bank, "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == strconv.Itoa(pcr) && f[1] == ":" {
			return n, strings.ToLower(strings.TrimPrefix(f[2], "0x"))
		}
		if !strings.HasPrefix(l, "    ") {
			break
		}
	}
	t.Fatalf("tpm2_eventlog printed no sha256 PCR %d:\n%s", pcr, bank)
	return 0, ""
}

// The export of real decisions verifies with tools nobody here wrote:
// tpm2_checkquote accepts the quote with the AK and nonce and refuses a
// changed nonce or PCR value; tpm2_eventlog replays eventlog.bin to the
// quoted PCR value (and a changed log line to another one); go-eventlog
// parses it and replays it to the quoted PCR.
func TestEvidenceExportCheckedByTPM2Tools(t *testing.T) {
	testutil.Require(t, testutil.Swtpm, testutil.TPM2Tools)
	sw := testutil.StartSwtpm(t, false)
	state, _ := demoState(t, sw.Spec)
	out := filepath.Join(t.TempDir(), "export")
	const nonce = "5eed0f00c0ffee"
	code, stdout, errs := runCLI(t, "--json", "evidence", "export", "--tpm", sw.Spec, "--state-dir", state, "--nonce", nonce, "--out", out)
	if code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, stdout, errs)
	}
	var m evexport.Manifest
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatal(err)
	}
	recs, _, err := tpm.ExtendedRecords(filepath.Join(state, eventLogName), m.Boot)
	if err != nil {
		t.Fatal(err)
	}
	if m.Schema != "vfio-gate/evidence-export/v1" || m.Events != len(recs) || m.Events < 10 || len(m.Bundles) != 5 || len(m.MissingBundles) != 0 {
		t.Fatalf("manifest: %+v (want %d events, 5 bundles)", m, len(recs))
	}
	for name, sum := range m.Files {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil || len(sum) != 64 {
			t.Errorf("manifest file %s: %v", name, err)
		}
	}
	f := func(name string) string { return filepath.Join(out, name) }

	// tpm2_checkquote: the quote, signature, PCR file and nonce agree.
	if o, code := runTool(t, "tpm2_checkquote", "-u", f("ak.pub.pem"), "-m", f("quote.msg"), "-s", f("quote.sig"), "-f", f("quote.pcrs"), "-g", "sha256", "-q", nonce); code != 0 {
		t.Fatalf("tpm2_checkquote: exit %d\n%s", code, o)
	}
	if _, code := runTool(t, "tpm2_checkquote", "-u", f("ak.pub.pem"), "-m", f("quote.msg"), "-s", f("quote.sig"), "-f", f("quote.pcrs"), "-g", "sha256", "-q", "5eed0f00c0fff0"); code == 0 {
		t.Error("tpm2_checkquote accepted another nonce")
	}
	pcrs, _ := os.ReadFile(f("quote.pcrs"))
	bad := bytes.Clone(pcrs)
	bad[len(pcrs)-8*66+2+5] ^= 1 // one bit of the first digest
	os.WriteFile(f("bad.pcrs"), bad, 0o600)
	if _, code := runTool(t, "tpm2_checkquote", "-u", f("ak.pub.pem"), "-m", f("quote.msg"), "-s", f("quote.sig"), "-f", f("bad.pcrs"), "-g", "sha256", "-q", nonce); code == 0 {
		t.Error("tpm2_checkquote accepted a changed PCR value")
	}
	quoted := hex.EncodeToString(pcrs[len(pcrs)-8*66+2 : len(pcrs)-8*66+2+32])
	if quoted != m.PCRValues["sha256"] {
		t.Fatalf("quote.pcrs holds %s, manifest %s", quoted, m.PCRValues["sha256"])
	}

	// tpm2_eventlog: as many events as ours, replaying to the quoted value.
	n, final := eventlogSHA256(t, f("eventlog.bin"), m.PCR)
	if n != m.Events || final != quoted {
		t.Fatalf("tpm2_eventlog: %d events to %s; ours %d events, quoted %s", n, final, m.Events, quoted)
	}
	bin, _ := os.ReadFile(f("eventlog.bin"))
	// A changed log line: one bit of the last event's sha256 digest.
	last := recs[len(recs)-1]
	d256, _ := hex.DecodeString(digestOfTest(last, "sha256"))
	at := bytes.LastIndex(bin, d256)
	if at < 0 {
		t.Fatal("last sha256 digest not found in eventlog.bin")
	}
	tampered := bytes.Clone(bin)
	tampered[at] ^= 1
	os.WriteFile(f("tampered.bin"), tampered, 0o600)
	if _, final := eventlogSHA256(t, f("tampered.bin"), m.PCR); final == quoted {
		t.Error("a changed log line still replays to the quoted PCR")
	}

	// go-eventlog parses the log and replays it to the quoted PCR.
	q, _ := hex.DecodeString(quoted)
	mr := []register.MR{register.PCR{Index: m.PCR, Digest: q, DigestAlg: crypto.SHA256}}
	evs, err := tcg.ParseAndReplay(bin, mr, tcg.ParseOpts{})
	if err != nil || len(evs) != m.Events {
		t.Fatalf("go-eventlog: %d events, %v", len(evs), err)
	}
	if _, err := tcg.ParseAndReplay(tampered, mr, tcg.ParseOpts{}); err == nil {
		t.Error("go-eventlog replayed a changed log to the quoted PCR")
	}

	// A second export of the same boot reuses the persisted AK.
	out2 := filepath.Join(t.TempDir(), "export2")
	if code, _, errs := runCLI(t, "evidence", "export", "--tpm", sw.Spec, "--state-dir", state, "--nonce", "01", "--out", out2); code != 0 {
		t.Fatalf("second export: %s", errs)
	}
	a1, _ := os.ReadFile(f("ak.pub.pem"))
	a2, _ := os.ReadFile(filepath.Join(out2, "ak.pub.pem"))
	if !bytes.Equal(a1, a2) {
		t.Error("the AK changed between exports")
	}
}

func digestOfTest(r *tpm.Record, alg string) string {
	for _, d := range r.Digests {
		if d.HashAlg == alg {
			return d.Digest
		}
	}
	return ""
}

// Stored bundles re-verify offline (signatures over transcripts with the
// chain's leaf, the chain to the demo's root) and the policy is evaluated
// again; a changed transcript byte or a bundle that does not hash to its
// digest fails.
func TestEvidenceVerifyOffline(t *testing.T) {
	testutil.Require(t, testutil.Swtpm)
	sw := testutil.StartSwtpm(t, false)
	state, kept := demoState(t, sw.Spec)
	store := evstore.Open(filepath.Join(state, evidenceDirName), evstore.Options{})
	ents, _ := os.ReadDir(store.Dir())
	var good, tampered string
	for _, e := range ents {
		d := strings.TrimSuffix(e.Name(), ".json")
		b, err := store.Get(d)
		if err != nil {
			t.Fatal(err)
		}
		if b.Decision.BDF == "0000:01:00.0" && good == "" {
			good = d
		}
		if b.Decision.BDF == "0000:02:00.0" && tampered == "" {
			tampered = d
		}
	}
	if good == "" || tampered == "" {
		t.Fatalf("bundles of the demo's devices not found among %d", len(ents))
	}
	anchor := filepath.Join(kept, "emu-root.pem")
	pol := filepath.Join(kept, "policy.yaml")
	os.Chmod(pol, 0o600)
	code, out, errs := runCLI(t, "--json", "evidence", "verify", good, "--state-dir", state, "--trust-anchor", anchor)
	var r struct {
		OK     bool                  `json:"ok"`
		Checks []attestOfflineCheckT `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || !r.OK || len(r.Checks) != 5 {
		t.Fatalf("verify good: exit %d %v\n%s\n%s", code, err, out, errs)
	}
	// The firmware-tampered device's signatures verify (it signed what it
	// measured) but the policy denies it again, offline.
	code, out, _ = runCLI(t, "evidence", "verify", tampered, "--state-dir", state, "--trust-anchor", anchor, "--policy", pol)
	if code != exitDenied || !strings.Contains(out, "measurement-mismatch") {
		t.Fatalf("verify tampered device: exit %d\n%s", code, out)
	}
	// A changed transcript byte, digest fixed up: the signature check fails.
	b, _ := store.Get(good)
	var ev map[string]any
	json.Unmarshal(b.Evidence, &ev)
	bundle := ev["evidence"].(map[string]any)
	tr := bundle["measurement_transcript"].(string) // base64
	bundle["measurement_transcript"] = strings.Replace(tr, tr[10:11], flipB64(tr[10:11]), 1)
	ej, _ := json.Marshal(ev)
	nb := evstore.New(ej, b.Decision)
	data, _ := nb.Marshal()
	p := filepath.Join(t.TempDir(), "changed.json")
	os.WriteFile(p, data, 0o600)
	code, out, _ = runCLI(t, "evidence", "verify", p, "--state-dir", state)
	if code != exitAttestation || !strings.Contains(out, "FAIL measurements-signature") {
		t.Fatalf("changed transcript: exit %d\n%s", code, out)
	}
	// A bundle whose evidence does not hash to its digest is refused.
	raw, _ := os.ReadFile(filepath.Join(store.Dir(), good+".json"))
	os.WriteFile(p, bytes.ReplaceAll(raw, []byte(`"0000:01:00.0"`), []byte(`"0000:01:00.1"`)), 0o600)
	if code, _, errs := runCLI(t, "evidence", "show", p); code == 0 || !strings.Contains(errs, "does not hash to its digest") {
		t.Fatalf("altered bundle shown: exit %d %s", code, errs)
	}
	if code, out, _ := runCLI(t, "evidence", "show", good, "--state-dir", state); code != 0 || !strings.Contains(out, `"vfio-gate/evidence-bundle/v1"`) {
		t.Fatalf("show: exit %d\n%s", code, out)
	}
}

type attestOfflineCheckT struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
}

func flipB64(c string) string {
	if c == "A" {
		return "B"
	}
	return "A"
}

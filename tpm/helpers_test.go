package tpm

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// openSim returns a fresh in-process simulator (manufacture-reset by Get).
func openSimT(t *testing.T) (*simulator.Simulator, transport.TPM) {
	t.Helper()
	s, err := simulator.Get()
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, transport.FromReadWriteCloser(s)
}

// sampleSPDMEvents are the Sec2 events of four measurement blocks (ROM,
// mutable firmware, firmware config, raw device mode) of one device.
func sampleSPDMEvents() []*SPDMEvent {
	base := SPDMEvent{AuthState: AuthStateSuccess, DeviceType: 1, SubHeaderUID: 0x0011223344556677, SPDMVersion: 0x12,
		MeasurementHash: 0x04, Spec: 1, VendorID: 0x8086, DeviceID: 0x0d58, Revision: 2, Class: 0x020000,
		SubsystemVendor: 0x8086, Subsystem: 1}
	blocks := []struct {
		index, typ uint8
		raw        bool
		value      []byte
	}{
		{1, 0, false, bytesOf(0x11, 48)},
		{2, 1, false, bytesOf(0x22, 48)},
		{3, 3, false, bytesOf(0x33, 48)},
		{4, 5, true, []byte{1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	var out []*SPDMEvent
	for _, b := range blocks {
		e := base
		e.Index, e.DMTFType, e.Raw, e.Value = b.index, b.typ, b.raw, b.value
		out = append(out, &e)
	}
	return out
}

// sampleEvents are the events of one decision as gate records them: four
// SPDM measurement events, the trust anchor, the verdict.
func sampleEvents(allow bool) []Event {
	var out []Event
	for _, s := range sampleSPDMEvents() {
		e, err := EncodeSPDMEvent(s)
		if err != nil {
			panic(err)
		}
		out = append(out, e)
	}
	anchor := sha256.Sum256([]byte("test root"))
	a, err := NewAuthorityEvent(anchor[:])
	if err != nil {
		panic(err)
	}
	return append(out, a, VerdictEvent(sampleDecision(allow)))
}

func sampleDecision(allow bool) Decision {
	dsn := uint64(0x0011223344556677)
	d := Decision{BDF: "0000:3b:00.0", VendorID: 0x8086, DeviceID: 0x0d58, DSN: &dsn, Rule: "nic-fw-2.1", Allow: allow,
		Mode: "enforce", EvidenceDigest: bytesOf(0xee, 32), Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	if !allow {
		d.Reasons = []string{"measurement-mismatch"}
	}
	return d
}

func bytesOf(b byte, n int) []byte { return []byte(strings.Repeat(string([]byte{b}), n)) }

func newRec(t *testing.T, tp transport.TPM, pcr int) (*Recorder, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "events")
	r, err := NewRecorder(tp, RecorderOptions{PCR: pcr, Dir: path, AllowResettable: true,
		Now: func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return r, path
}

func recordSample(t *testing.T, r *Recorder, allow bool) []Record {
	t.Helper()
	evs := sampleEvents(allow)
	recs, err := r.Record(t.Context(), evs...)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	if len(recs) != len(evs) {
		t.Fatalf("Record returned %d records for %d events", len(recs), len(evs))
	}
	return recs
}

func mustVerify(t *testing.T, tp transport.TPM, path string, pcr int) *VerifyResult {
	t.Helper()
	res, err := Verify(t.Context(), tp, path, pcr)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}

func hasProblem(res *VerifyResult, kind string) *Problem {
	for i := range res.Problems {
		if res.Problems[i].Kind == kind {
			return &res.Problems[i]
		}
	}
	return nil
}

func hasWarning(res *VerifyResult, kind string) *Problem {
	for i := range res.Warnings {
		if res.Warnings[i].Kind == kind {
			return &res.Warnings[i]
		}
	}
	return nil
}

// rewriteLines applies f to the log's lines and writes them back.
func rewriteLines(t *testing.T, path string, f func([]string) []string) {
	t.Helper()
	b, err := os.ReadFile(lastSegment(t, path))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	lines = f(lines)
	if err := os.WriteFile(lastSegment(t, path), []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
}

// extendBehindBack extends pcr in every bank with digests of "intruder".
func extendBehindBack(t *testing.T, tp transport.TPM, pcr int) {
	t.Helper()
	banks, err := activeBanks(tp, pcr)
	if err != nil {
		t.Fatal(err)
	}
	var vals tpm2.TPMLDigestValues
	for _, b := range banks {
		vals.Digests = append(vals.Digests, tpm2.TPMTHA{HashAlg: b.alg, Digest: b.sum([]byte("intruder"))})
	}
	if _, err := (tpm2.PCRExtend{PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)}, Digests: vals}).Execute(tp); err != nil {
		t.Fatal(err)
	}
}

// lastSegment is the newest segment file of the log directory dir.
func lastSegment(t testing.TB, dir string) string {
	t.Helper()
	b, err := FindBoot(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b.Segments[len(b.Segments)-1]
}

package tpm

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/vfio-gate/vfio-gate/attest"
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

func sampleEvidence() *attest.Evidence {
	dsn := uint64(0x0011223344556677)
	anchor := sha256.Sum256([]byte("test root"))
	return &attest.Evidence{
		Identity: attest.Identity{BDF: "0000:3b:00.0", VendorID: 0x8086, DeviceID: 0x0d58, SubsystemVendorID: 0x8086,
			SubsystemID: 0x0001, Class: 0x020000, Revision: 2, DSN: &dsn},
		HasCMA:     true,
		Version:    "1.2",
		Algorithms: attest.Algorithms{BaseHash: "sha-384", MeasurementHash: "sha-384"},
		Chains: []attest.ChainState{
			{Slot: 1, Verified: false, Error: "x"},
			{Slot: 0, Verified: true, AnchorSHA256: hex.EncodeToString(anchor[:])},
		},
		Measurements: []attest.MeasurementBlock{
			{Index: 1, Type: 0, TypeName: "immutable-rom", Value: bytesOf(0x11, 48), Spec: 1},
			{Index: 2, Type: 1, TypeName: "mutable-firmware", Value: bytesOf(0x22, 48), Spec: 1},
			{Index: 3, Type: 3, TypeName: "firmware-config", Value: bytesOf(0x33, 48), Spec: 1},
			{Index: 4, Type: 5, Raw: true, TypeName: "device-mode", Value: []byte{1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Spec: 1},
		},
		MeasurementsSignatureVerified: true,
	}
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
	path := filepath.Join(t.TempDir(), "state", "events.cel.jsonl")
	r, err := NewRecorder(tp, RecorderOptions{PCR: pcr, LogPath: path, AllowResettable: true,
		Now: func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return r, path
}

func recordSample(t *testing.T, r *Recorder, allow bool) []Record {
	t.Helper()
	evs, err := EventsFor(sampleEvidence(), sampleDecision(allow))
	if err != nil {
		t.Fatal(err)
	}
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
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	lines = f(lines)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
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

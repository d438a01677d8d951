package tpm

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"
)

// replayIndependently recomputes the PCR from the log with nothing but the
// hash function: start at zero, PCR = H(PCR || H(event_data)) per extended record.
func replayIndependently(t *testing.T, path string, h crypto.Hash) []byte {
	t.Helper()
	b, err := os.ReadFile(lastSegment(t, path))
	if err != nil {
		t.Fatal(err)
	}
	pcr := make([]byte, h.Size())
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct {
			Digests []struct{ HashAlg string } `json:"digests"`
			Content struct {
				EventData string `json:"event_data"`
			} `json:"content"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Digests) == 0 {
			continue // baseline
		}
		data, _ := hex.DecodeString(r.Content.EventData)
		d := h.New()
		d.Write(data)
		e := h.New()
		e.Write(pcr)
		e.Write(d.Sum(nil))
		pcr = e.Sum(nil)
	}
	return pcr
}

func readBank(t *testing.T, tp transport.TPM, pcr int, name string) []byte {
	t.Helper()
	banks, err := activeBanks(tp, pcr)
	if err != nil {
		t.Fatal(err)
	}
	v, err := readPCR(tp, pcr, banks)
	if err != nil {
		t.Fatal(err)
	}
	return v[name]
}

// exerciseBackend is the core proof for any backend: extend, read back,
// independent replay equals the PCR in SHA-256 and SHA-384, Verify agrees.
func exerciseBackend(t *testing.T, tp transport.TPM, pcr int) {
	r, path := newRec(t, tp, pcr)
	recordSample(t, r, true)
	recordSample(t, r, false)
	if _, err := r.Record(t.Context(), ReleaseEvent(Release{BDF: "0000:3b:00.0", Domain: "vm1"}),
		TDISPStateEvent(TDISPState{BDF: "0000:3b:00.0", From: "RUN", To: "CONFIG_UNLOCKED"})); err != nil {
		t.Fatal(err)
	}
	for _, bk := range []struct {
		name string
		h    crypto.Hash
	}{{"sha256", crypto.SHA256}, {"sha384", crypto.SHA384}} {
		got := readBank(t, tp, pcr, bk.name)
		want := replayIndependently(t, path, bk.h)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: PCR %x, independent replay %x", bk.name, got, want)
		}
		if bytes.Equal(got, make([]byte, len(got))) {
			t.Errorf("%s: PCR still zero after recording", bk.name)
		}
	}
	res := mustVerify(t, tp, path, pcr)
	if !res.OK || len(res.Problems) != 0 {
		t.Fatalf("Verify: %+v", res)
	}
	// 1 baseline + 2×(4 measurements + authority + verdict) + 2.
	if res.Records != 1+12+2 || res.Checked != 14 {
		t.Errorf("records %d checked %d", res.Records, res.Checked)
	}
	for _, b := range res.Banks {
		if !b.Match || !bytes.Equal(b.PCR, b.Replay) {
			t.Errorf("bank %s: %+v", b.Alg, b)
		}
	}
}

func TestRecordVerifySimulator(t *testing.T) {
	_, tp := openSimT(t)
	exerciseBackend(t, tp, DefaultPCR)
}

func TestNewRecorderRefusesResettablePCR(t *testing.T) {
	_, tp := openSimT(t)
	for _, pcr := range []int{16, 23} {
		_, err := NewRecorder(tp, RecorderOptions{PCR: pcr, Dir: "/x"})
		if !errors.Is(err, ErrResettablePCR) {
			t.Errorf("PCR %d without test mode: %v", pcr, err)
		}
		if _, err := NewRecorder(tp, RecorderOptions{PCR: pcr, Dir: "/x", AllowResettable: true}); err != nil {
			t.Errorf("PCR %d in test mode: %v", pcr, err)
		}
	}
	for _, pcr := range []int{17, 22, 24, -1} {
		if _, err := NewRecorder(tp, RecorderOptions{PCR: pcr, Dir: "/x", AllowResettable: true}); err == nil {
			t.Errorf("PCR %d accepted", pcr)
		}
	}
	r, err := NewRecorder(tp, RecorderOptions{Dir: "/x"})
	if err != nil || r.PCR() != DefaultPCR {
		t.Errorf("default PCR: %v %v", r, err)
	}
}

// tamperCases are the attacks and accidents Verify must name, shared by the
// simulator and swtpm tests.
var tamperCases = []struct {
	name  string
	do    func(t *testing.T, tp transport.TPM, path string, pcr int)
	kind  string // expected problem ("" = OK)
	msg   string // substring of the message
	first uint64 // expected FirstDivergence (0 = none)
	warn  string
}{
	{"untouched", func(*testing.T, transport.TPM, string, int) {}, "", "", 0, ""},
	{"altered event data", func(t *testing.T, _ transport.TPM, path string, _ int) {
		rewriteLines(t, path, func(l []string) []string {
			l[3] = strings.Replace(l[3], `"event_data":"53504`, `"event_data":"53514`, 1) // "SPDM" → "SQDM"
			return l
		})
	}, ProblemAltered, "digest does not match its event data", 4, ""},
	{"altered verdict and digests together", func(t *testing.T, _ transport.TPM, path string, _ int) {
		rewriteLines(t, path, func(l []string) []string {
			rec, err := ParseRecord([]byte(l[6]))
			if err != nil || rec.Event.Kind != KindVerdict {
				t.Fatalf("line 7: %v %+v", err, rec)
			}
			rec.Event.Data = bytes.Replace(rec.Event.Data, []byte(`"verdict":"allow"`), []byte(`"verdict":"deny"`), 1)
			for i, d := range rec.Digests {
				b, _ := bankByName(d.HashAlg)
				rec.Digests[i].Digest = hex.EncodeToString(b.sum(rec.Event.Data))
			}
			nb, _ := json.Marshal(rec)
			l[6] = string(nb)
			return l
		})
	}, ProblemUnlogged, "the TPM holds extends the log does not have", 0, ""},
	{"deleted line", func(t *testing.T, _ transport.TPM, path string, _ int) {
		rewriteLines(t, path, func(l []string) []string { return append(l[:2], l[3:]...) })
	}, ProblemMissing, "records 3..3 are missing", 3, ""},
	{"deleted last line", func(t *testing.T, _ transport.TPM, path string, _ int) {
		rewriteLines(t, path, func(l []string) []string { return l[:len(l)-1] })
	}, ProblemUnlogged, "events missing from the log", 0, ""},
	{"extra extend behind the log's back", func(t *testing.T, tp transport.TPM, _ string, pcr int) {
		extendBehindBack(t, tp, pcr)
	}, ProblemUnlogged, "extended behind its back", 0, ""},
	{"torn last line", func(t *testing.T, _ transport.TPM, path string, _ int) {
		f, err := os.OpenFile(lastSegment(t, path), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(`{"recnum":8,"pcr":13,"dig`)
		f.Close()
	}, "", "", 0, WarnTornLine},
	{"appended but never extended", func(t *testing.T, _ transport.TPM, path string, pcr int) {
		rewriteLines(t, path, func(l []string) []string {
			rec, _ := ParseRecord([]byte(l[len(l)-1]))
			rec.RecNum++
			nb, _ := json.Marshal(rec)
			return append(l, string(nb))
		})
	}, ProblemUnextended, "records 8..8 are in the log but were never extended", 8, ""},
	{"malformed middle line", func(t *testing.T, _ transport.TPM, path string, _ int) {
		rewriteLines(t, path, func(l []string) []string { l[2] = `{"recnum":3,` + l[2][12:] + "}"; return l })
	}, ProblemMalformed, "line 3", 0, ""},
	{"record moved to another PCR", func(t *testing.T, _ transport.TPM, path string, pcr int) {
		rewriteLines(t, path, func(l []string) []string {
			l[4] = strings.Replace(l[4], `"pcr":13,`, `"pcr":14,`, 1)
			return l
		})
	}, ProblemPCR, "is for PCR 14", 5, ""},
}

func runTamperCases(t *testing.T, open func(t *testing.T) transport.TPM) {
	for _, tc := range tamperCases {
		t.Run(tc.name, func(t *testing.T) {
			tp := open(t)
			r, path := newRec(t, tp, DefaultPCR)
			recordSample(t, r, true) // records 1 (baseline) .. 7 (verdict)
			tc.do(t, tp, path, DefaultPCR)
			res := mustVerify(t, tp, path, DefaultPCR)
			if tc.kind == "" {
				if !res.OK {
					t.Fatalf("want OK, got %+v", res.Problems)
				}
			} else {
				p := hasProblem(res, tc.kind)
				if res.OK || p == nil {
					t.Fatalf("want problem %q, got OK=%v %+v", tc.kind, res.OK, res.Problems)
				}
				if !strings.Contains(p.Msg, tc.msg) {
					t.Errorf("message %q lacks %q", p.Msg, tc.msg)
				}
				if res.FirstDivergence != tc.first {
					t.Errorf("first divergence %d, want %d", res.FirstDivergence, tc.first)
				}
			}
			if tc.warn != "" && hasWarning(res, tc.warn) == nil {
				t.Errorf("want warning %q, got %+v", tc.warn, res.Warnings)
			}
		})
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	runTamperCases(t, func(t *testing.T) transport.TPM { _, tp := openSimT(t); return tp })
}

// A torn last line is dropped by the next Record; records appended but never
// extended are acknowledged by a resync baseline; both end in a log that
// verifies again, with the history visible as a warning.
func TestRecordRepairsTornTail(t *testing.T) {
	_, tp := openSimT(t)
	r, path := newRec(t, tp, DefaultPCR)
	recordSample(t, r, true)
	f, _ := os.OpenFile(lastSegment(t, path), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"recnum":8,"pc`)
	f.Close()
	recordSample(t, r, false)
	if res := mustVerify(t, tp, path, DefaultPCR); !res.OK || hasWarning(res, WarnTornLine) != nil {
		t.Fatalf("after torn line + record: %+v", res)
	}

	// Append a valid record without extending it (crash between append and extend).
	rewriteLines(t, path, func(l []string) []string {
		rec, _ := ParseRecord([]byte(l[len(l)-1]))
		rec.RecNum++
		nb, _ := json.Marshal(rec)
		return append(l, string(nb))
	})
	if res := mustVerify(t, tp, path, DefaultPCR); res.OK || hasProblem(res, ProblemUnextended) == nil {
		t.Fatalf("unextended tail not reported: %+v", res)
	}
	recordSample(t, r, true)
	res := mustVerify(t, tp, path, DefaultPCR)
	if !res.OK {
		t.Fatalf("after resync: %+v", res.Problems)
	}
	if w := hasWarning(res, WarnAcknowledged); w == nil || !strings.Contains(w.Msg, "records 14..14 were never extended") {
		t.Fatalf("resync not reported: %+v", res.Warnings)
	}
	// But a PCR extended behind the log's back is never resynced.
	extendBehindBack(t, tp, DefaultPCR)
	recordSample(t, r, true)
	if res := mustVerify(t, tp, path, DefaultPCR); res.OK || hasProblem(res, ProblemUnlogged) == nil {
		t.Fatalf("extend behind the back hidden by Record: %+v", res)
	}
}

// After a TPM reset (reboot) the old records cannot be checked against the
// PCR; verify says so, and the next Record starts a new boot baseline.
func TestVerifyAcrossReboot(t *testing.T) {
	sim, tp := openSimT(t)
	r, path := newRec(t, tp, DefaultPCR)
	recordSample(t, r, true)
	if err := sim.Reset(); err != nil {
		t.Fatal(err)
	}
	res := mustVerify(t, tp, path, DefaultPCR)
	if !res.OK || hasWarning(res, WarnEarlierBoots) == nil || res.Checked != 0 {
		t.Fatalf("after reboot: %+v", res)
	}
	recordSample(t, r, false)
	res = mustVerify(t, tp, path, DefaultPCR)
	if !res.OK || res.Checked != 6 || hasWarning(res, WarnEarlierBoots) == nil {
		t.Fatalf("after reboot + record: %+v", res)
	}
	if res.Boot != 2 || res.Records != 7 {
		t.Fatalf("current boot: boot %d, %d records", res.Boot, res.Records)
	}
	// An earlier boot is checked on its own: digests, record numbers, chain.
	b1, err := FindBoot(path, 1)
	if err != nil || b1.ResetCount == 0 && b1.RestartCount == 0 && len(b1.Segments) != 1 {
		t.Fatalf("boot 1: %+v %v", b1, err)
	}
	res, err = VerifyBoot(t.Context(), tp, path, 1, DefaultPCR)
	if err != nil || !res.OK || hasWarning(res, WarnNotCurrent) == nil || res.Checked != 6 {
		t.Fatalf("boot 1 on its own: %+v %v", res, err)
	}
	saved, _ := os.ReadFile(b1.Segments[0])
	lines := strings.Split(string(saved), "\n")
	lines[6] = strings.Replace(lines[6], `"event_data":"7b`, `"event_data":"7c`, 1)
	os.WriteFile(b1.Segments[0], []byte(strings.Join(lines, "\n")), 0o640)
	if res, err := VerifyBoot(t.Context(), tp, path, 1, DefaultPCR); err != nil || res.OK || hasProblem(res, ProblemAltered) == nil || res.FirstDivergence != 7 {
		t.Fatalf("altered record of an earlier boot: %+v %v", res, err)
	}
	if res := mustVerify(t, tp, path, DefaultPCR); !res.OK {
		t.Fatalf("the current boot does not depend on an earlier one: %+v", res)
	}
	os.WriteFile(b1.Segments[0], saved, 0o640)
	// Deleting the whole log is not a clean state when the PCR was extended.
	os.RemoveAll(path)
	res = mustVerify(t, tp, path, DefaultPCR)
	if res.OK || hasProblem(res, ProblemNoRecords) == nil {
		t.Fatalf("deleted log: %+v", res)
	}
}

// Someone else extended the PCR before our first record of this boot: the
// baseline absorbs it (and says so), the log still verifies.
func TestBaselineWarnsSharedPCR(t *testing.T) {
	_, tp := openSimT(t)
	extendBehindBack(t, tp, DefaultPCR)
	r, path := newRec(t, tp, DefaultPCR)
	recordSample(t, r, true)
	res := mustVerify(t, tp, path, DefaultPCR)
	if !res.OK || hasWarning(res, WarnSharedPCR) == nil {
		t.Fatalf("%+v", res)
	}
}

func TestRecordRejectsBadEvents(t *testing.T) {
	_, tp := openSimT(t)
	r, path := newRec(t, tp, 16)
	for _, e := range []Event{{ContentType: "nope"}, {ContentType: ContentVFIOGate, Kind: KindBaseline}, {ContentType: ContentPCClient, Data: make([]byte, maxEventData+1)}} {
		if _, err := r.Record(t.Context(), e); err == nil {
			t.Errorf("accepted %q/%q", e.ContentType, e.Kind)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("log written for rejected events: %v", err)
	}
}

func TestRecordHonoursContext(t *testing.T) {
	_, tp := openSimT(t)
	r, _ := newRec(t, tp, 16)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Record(ctx, VerdictEvent(sampleDecision(true))); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
}

// Two recorders on one log (as two processes would be) interleave whole
// records under the flock: the log stays numbered and replays to the PCR.
func TestConcurrentRecorders(t *testing.T) {
	_, tp := openSimT(t)
	r1, path := newRec(t, tp, DefaultPCR)
	r2, err := NewRecorder(tp, RecorderOptions{Dir: path})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for _, r := range []*Recorder{r1, r2} {
		go func() {
			for i := range 10 {
				if _, err := r.Record(t.Context(), VerdictEvent(sampleDecision(i%2 == 0)), ReleaseEvent(Release{BDF: "0000:00:01.0"})); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	res := mustVerify(t, tp, path, DefaultPCR)
	if !res.OK || res.Checked != 40 || res.Records != 41 {
		t.Fatalf("%+v", res)
	}
}

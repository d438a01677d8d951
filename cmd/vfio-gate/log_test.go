package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// recordOn records one allow decision with two measurement blocks through
// the TPM at spec into stateDir, and closes the TPM again (swtpm serves one
// connection at a time).
func recordOn(t *testing.T, spec, stateDir string) {
	t.Helper()
	tp, err := tpm.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	r, err := tpm.NewRecorder(tp, tpm.RecorderOptions{Dir: filepath.Join(stateDir, eventLogName)})
	if err != nil {
		t.Fatal(err)
	}
	ev := &attest.Evidence{
		Identity:   attest.Identity{BDF: "0000:3b:00.0", VendorID: 0x1af4, DeviceID: 0x1041},
		Version:    "1.2",
		Algorithms: attest.Algorithms{MeasurementHash: "sha-256"},
		Measurements: []attest.MeasurementBlock{
			{Index: 1, Type: 0, Spec: 1, Value: make([]byte, 32)},
			{Index: 2, Type: 3, Spec: 1, Value: make([]byte, 32)},
		},
		MeasurementsSignatureVerified: true,
	}
	evs, err := gate.EventsFor(ev, tpm.Decision{BDF: "0000:3b:00.0", VendorID: 0x1af4, DeviceID: 0x1041, Allow: true, Rule: "virtio", Mode: "enforce"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Record(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
}

func TestLogShowAndVerifySwtpm(t *testing.T) {
	testutil.Require(t, testutil.Swtpm)
	sw := testutil.StartSwtpm(t, false)
	dir := t.TempDir()
	recordOn(t, sw.Spec, dir)

	code, out, errs := runCLI(t, "log", "verify", "--tpm", sw.Spec, "--state-dir", dir)
	if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(out, "sha256 match") || !strings.Contains(out, "sha384 match") {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = runCLI(t, "log", "show", "--state-dir", dir)
	for _, want := range []string{"RECNUM", "EV_EFI_SPDM_FIRMWARE_BLOB", "EV_EFI_SPDM_FIRMWARE_CONFIG", "1af4:1041 ALLOW rule virtio", "baseline (boot)"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("show lacks %q (exit %d):\n%s", want, code, out)
		}
	}
	code, out, _ = runCLI(t, "log", "show", "--json", "--state-dir", dir)
	var js struct {
		Schema string `json:"schema"`
		Boots  []struct {
			Boot   int `json:"boot"`
			Events []struct {
				RecNum    uint64 `json:"recnum"`
				EventType string `json:"event_type"`
				Event     json.RawMessage
			} `json:"events"`
		} `json:"boots"`
	}
	if err := json.Unmarshal([]byte(out), &js); code != 0 || err != nil || js.Schema != "vfio-gate/log-show/v1" || len(js.Boots) != 1 ||
		js.Boots[0].Boot != 1 || len(js.Boots[0].Events) != 4 || js.Boots[0].Events[3].EventType != "verdict" {
		t.Fatalf("show --json: exit %d %v\n%s", code, err, out)
	}
	// --boot names a boot, --all lists every one; an unknown boot is an error.
	for _, args := range [][]string{{"--boot", "1"}, {"--all"}} {
		code, out, _ = runCLI(t, append([]string{"log", "show", "--state-dir", dir}, args...)...)
		if code != 0 || !strings.Contains(out, "boot 1 (TPM resetCount") || !strings.Contains(out, "ALLOW rule virtio") {
			t.Errorf("show %v: exit %d\n%s", args, code, out)
		}
	}
	if code, _, errs := runCLI(t, "log", "show", "--boot", "9", "--state-dir", dir); code == 0 || !strings.Contains(errs, "no boot 9") {
		t.Errorf("show --boot 9: exit %d %s", code, errs)
	}
	if code, out, errs := runCLI(t, "log", "verify", "--all", "--tpm", sw.Spec, "--state-dir", dir); code != 0 || !strings.Contains(out, "boot 1,") {
		t.Errorf("verify --all: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = runCLI(t, "log", "verify", "--json", "--tpm", sw.Spec, "--state-dir", dir)
	var vr tpm.VerifyResult
	if err := json.Unmarshal([]byte(out), &vr); code != 0 || err != nil || !vr.OK || vr.Checked != 3 {
		t.Fatalf("verify --json: exit %d %v\n%s", code, err, out)
	}
}

func TestLogVerifyDetectsTamperingSwtpm(t *testing.T) {
	testutil.Require(t, testutil.Swtpm)
	cases := []struct {
		name string
		do   func(t *testing.T, spec, path string)
		msg  string
	}{
		{"tampered line", func(t *testing.T, _, path string) {
			editLines(t, path, func(l []string) []string {
				l[1] = strings.Replace(l[1], `"event_data":"5350`, `"event_data":"5351`, 1)
				return l
			})
		}, "record 2 (line 2): sha1 digest does not match its event data: the record was altered"},
		{"deleted line", func(t *testing.T, _, path string) {
			editLines(t, path, func(l []string) []string { return append(l[:2], l[3:]...) })
		}, "records 3..3 are missing"},
		{"extra extend behind the log's back", func(t *testing.T, spec, _ string) {
			tp, err := tpm.Open(spec)
			if err != nil {
				t.Fatal(err)
			}
			defer tp.Close()
			_, err = tpm2.PCRExtend{PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(tpm.DefaultPCR), Auth: tpm2.PasswordAuth(nil)},
				Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: make([]byte, 32)}}}}.Execute(tp)
			if err != nil {
				t.Fatal(err)
			}
		}, "the TPM holds extends the log does not have"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sw := testutil.StartSwtpm(t, false)
			dir := t.TempDir()
			recordOn(t, sw.Spec, dir)
			b, err := tpm.FindBoot(filepath.Join(dir, eventLogName), 0)
			if err != nil {
				t.Fatal(err)
			}
			tc.do(t, sw.Spec, b.Segments[0])
			code, out, errs := runCLI(t, "log", "verify", "--tpm", sw.Spec, "--state-dir", dir)
			if code != exitTPM || !strings.Contains(errs, tc.msg) || !strings.Contains(out, "FAILED") {
				t.Fatalf("exit %d (want %d), want %q in stderr\nstdout:\n%s\nstderr:\n%s", code, exitTPM, tc.msg, out, errs)
			}
		})
	}
}

func editLines(t *testing.T, path string, f func([]string) []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l := f(strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"))
	if err := os.WriteFile(path, []byte(strings.Join(l, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
}

// The in-process simulator starts fresh: an empty log matches a zero PCR.
func TestLogVerifySimEmpty(t *testing.T) {
	code, out, errs := runCLI(t, "log", "verify", "--tpm", "sim", "--state-dir", t.TempDir())
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
}

func TestLogTPMErrorsExit5(t *testing.T) {
	code, _, errs := runCLI(t, "log", "verify", "--tpm", "tcp:127.0.0.1:1", "--state-dir", t.TempDir())
	if code != exitTPM || !strings.Contains(errs, "tpm:") {
		t.Fatalf("unreachable TPM: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCLI(t, "log", "verify", "--tpm", "sim", "--pcr", "17", "--state-dir", t.TempDir())
	if code == 0 {
		t.Fatalf("PCR 17 accepted: %q", errs)
	}
	if got := exitCode(&tpm.Error{Op: "extend", Err: errors.New("x")}); got != exitTPM {
		t.Fatalf("exitCode(tpm.Error) = %d", got)
	}
}

func TestLogShowMalformed(t *testing.T) {
	dir := t.TempDir()
	seg := filepath.Join(dir, eventLogName, "boot-000001", "seg-000001.cel.jsonl")
	os.MkdirAll(filepath.Dir(seg), 0o750)
	os.WriteFile(seg, []byte("{not json}\n"), 0o640)
	code, _, errs := runCLI(t, "log", "show", "--state-dir", dir)
	if code != exitInternal || !strings.Contains(errs, "line 1") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

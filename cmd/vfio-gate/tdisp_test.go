package main

import (
	"encoding/json"
	"strings"
	"testing"

	rpt "github.com/vfio-gate/vfio-gate/internal/report"

	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

func jsonObject(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return m
}

func hasKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s lacks %q: %v", what, k, m)
		}
	}
}

// TestTDISPCycleCLI runs `tdisp cycle --json` against the software device
// over the DOE mailbox (BDF) and checks the contract keys and states.
func TestTDISPCycleCLI(t *testing.T) {
	for _, kind := range []string{"bdf", "socket"} {
		t.Run(kind, func(t *testing.T) {
			fx := newDevFixture(t)
			d := fx.addEmu(t, "0000:3a:00.1", emu.Config{Session: emu.SessionConfig{AEAD: spdm.AEADAES128GCM}})
			anchor := writeAnchor(t, d, false)
			target := []string{"0000:3a:00.1"}
			if kind == "socket" {
				target = []string{"--socket", gatetest.ServeSocket(t, d), "--interface", "0000:3a:00.1"}
			}
			args := append([]string{"tdisp", "cycle", "--json", "--trust-anchor", anchor}, target...)
			code, out, errs := fx.run(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s\n%s", code, errs, out)
			}
			m := jsonObject(t, out)
			hasKeys(t, "cycle", m, "steps", "report", "final_state")
			steps := m["steps"].([]any)
			wantReq := []string{"LOCK_INTERFACE", "GET_DEVICE_INTERFACE_REPORT", "START_INTERFACE", "GET_DEVICE_INTERFACE_STATE", "STOP_INTERFACE"}
			wantState := []string{"CONFIG_LOCKED", "CONFIG_LOCKED", "RUN", "RUN", "CONFIG_UNLOCKED"}
			if len(steps) != len(wantReq) {
				t.Fatalf("steps %v", steps)
			}
			for i, s := range steps {
				sm := s.(map[string]any)
				hasKeys(t, "step", sm, "request", "ok", "state", "error")
				if sm["request"] != wantReq[i] || sm["ok"] != true || sm["state"] != wantState[i] || sm["error"] != nil {
					t.Errorf("step %d = %v", i, sm)
				}
			}
			rep := m["report"].(map[string]any)
			hasKeys(t, "report", rep, "interface_info", "mmio_ranges", "device_specific_info")
			if len(rep) != 3 {
				t.Errorf("report has extra keys: %v", rep)
			}
			ranges := rep["mmio_ranges"].([]any)
			if len(ranges) != 2 {
				t.Fatalf("ranges %v", ranges)
			}
			hasKeys(t, "range", ranges[0].(map[string]any), "first_page", "pages", "attributes", "range_id")
			if m["final_state"] != "CONFIG_UNLOCKED" || d.TDI().State() != tdisp.StateConfigUnlocked {
				t.Fatalf("final %v device %v", m["final_state"], d.TDI().State())
			}
			// Human output names every step.
			code, out, _ = fx.run(t, append([]string{"tdisp", "cycle", "--trust-anchor", anchor}, target...)...)
			if code != 0 || !strings.Contains(out, "START_INTERFACE") || !strings.Contains(out, "final state: CONFIG_UNLOCKED") {
				t.Fatalf("exit %d\n%s", code, out)
			}
		})
	}
}

// TestTDISPStateReportCLI: state is read-only; report refuses an unlocked
// TDI and prints the report of a locked one.
func TestTDISPStateReportCLI(t *testing.T) {
	fx := newDevFixture(t)
	d := fx.addEmu(t, "0000:3a:00.1", emu.Config{})
	anchor := writeAnchor(t, d, false)
	code, out, errs := fx.run(t, "tdisp", "state", "--json", "--trust-anchor", anchor, "0000:3a:00.1")
	if code != 0 {
		t.Fatalf("exit %d %s", code, errs)
	}
	m := jsonObject(t, out)
	hasKeys(t, "state", m, "bdf", "interface_id", "state", "session")
	if m["state"] != "CONFIG_UNLOCKED" {
		t.Fatalf("state %v", m)
	}
	if code, _, errs := fx.run(t, "tdisp", "report", "--trust-anchor", anchor, "0000:3a:00.1"); code != exitAttestation || !strings.Contains(errs, "CONFIG_UNLOCKED") {
		t.Fatalf("report of an unlocked TDI: exit %d %s", code, errs)
	}
	// No trust anchor: usage error; wrong anchor: chain not verified (2).
	if code, _, _ := fx.run(t, "tdisp", "state", "0000:3a:00.1"); code != exitInternal {
		t.Fatalf("no anchor: exit %d", code)
	}
	other, err := emu.New(emu.Config{FreshKeys: true, Algorithms: spdm.AsymECDSAP384})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errs := fx.run(t, "tdisp", "state", "--trust-anchor", writeAnchor(t, other, false), "0000:3a:00.1"); code != exitAttestation {
		t.Fatalf("wrong anchor: exit %d %s", code, errs)
	}
	if code, _, _ := fx.run(t, "tdisp", "state", "--trust-anchor", anchor, "0000:3a:00.1", "--socket", "127.0.0.1:1"); code != exitInternal {
		t.Fatalf("BDF and socket: exit %d", code)
	}
}

// TestAttestCLISession: `attest --session --json` reports the session keys.
func TestAttestCLISession(t *testing.T) {
	fx := newDevFixture(t)
	d := fx.addEmu(t, "0000:3a:00.1", emu.Config{Session: emu.SessionConfig{AEAD: spdm.AEADAES256GCM}})
	anchor := writeAnchor(t, d, false)
	for _, target := range [][]string{{"0000:3a:00.1"}, {"--socket", gatetest.ServeSocket(t, d)}} {
		code, out, errs := fx.run(t, append([]string{"attest", "--session", "--json", "--trust-anchor", anchor}, target...)...)
		if code != 0 {
			t.Fatalf("exit %d %s", code, errs)
		}
		m := evidenceJSON(t, out)
		s, ok := m["session"].(map[string]any)
		if !ok {
			t.Fatalf("no session in %s", out)
		}
		hasKeys(t, "session", s, "established", "version", "aead", "dhe", "session_id")
		if s["established"] != true || s["aead"] != spdm.AEADAES256GCM.String() || m["measurements_signature_verified"] != true {
			t.Fatalf("session %v", s)
		}
	}
	// Human output names the session.
	if code, out, _ := fx.run(t, "attest", "--tdisp", "--trust-anchor", anchor, "0000:3a:00.1"); code != 0 || !strings.Contains(out, "Session") || !strings.Contains(out, "TDI CONFIG_UNLOCKED") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	// Without --session there is no session key.
	_, out, _ := fx.run(t, "attest", "--json", "--trust-anchor", anchor, "0000:3a:00.1")
	if _, ok := evidenceJSON(t, out)["session"]; ok {
		t.Fatal("session reported without --session")
	}
}

// TestTDISPCycleCLIFailure: a refused LOCK (unaligned reporting offset) is a
// failed step with its error, exit 2, and the TDI stays unlocked.
func TestTDISPCycleCLIFailure(t *testing.T) {
	fx := newDevFixture(t)
	d := fx.addEmu(t, "0000:3a:00.1", emu.Config{})
	anchor := writeAnchor(t, d, false)
	code, out, _ := fx.run(t, "tdisp", "cycle", "--json", "--mmio-reporting-offset", "0x123", "--trust-anchor", anchor, "0000:3a:00.1")
	if code != exitAttestation {
		t.Fatalf("exit %d\n%s", code, out)
	}
	m := jsonObject(t, out)
	steps := m["steps"].([]any)
	s0 := steps[0].(map[string]any)
	if len(steps) != 1 || s0["ok"] != false || !strings.Contains(s0["error"].(string), "INVALID_REQUEST") || m["final_state"] != "CONFIG_UNLOCKED" || m["report"] != nil {
		t.Fatalf("result %v", m)
	}
	if d.TDI().State() != tdisp.StateConfigUnlocked {
		t.Fatal("TDI left locked")
	}
}

// TestTDISPSocketLabel: with --socket, state and report name the device
// "socket:HOST:PORT" (as check --socket does in the TPM log), not the --interface
// BDF, in human and --json output; the JSON keys stay those of the BDF
// form, and a BDF target is still named by its BDF.
func TestTDISPSocketLabel(t *testing.T) {
	fx := newDevFixture(t)
	d := fx.addEmu(t, "0000:3a:00.1", emu.Config{})
	anchor := writeAnchor(t, d, false)
	addr := gatetest.ServeSocket(t, d)
	label := "socket:" + addr
	bdf, err := pci.ParseBDF("0000:3a:00.1")
	if err != nil {
		t.Fatal(err)
	}
	wantID, err := tdisp.InterfaceIDFor(bdf)
	if err != nil {
		t.Fatal(err)
	}

	for _, target := range [][]string{{"--socket", addr, "--interface", "0000:3a:00.1"}, {"0000:3a:00.1"}} {
		want := label
		if len(target) == 1 {
			want = target[0]
		}
		code, out, errs := fx.run(t, append([]string{"tdisp", "state", "--json", "--trust-anchor", anchor}, target...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d %s", target, code, errs)
		}
		m := jsonObject(t, out)
		hasKeys(t, "state", m, "schema", "bdf", "interface_id", "state", "session")
		if len(m) != 5 || m["bdf"] != want || m["interface_id"] != float64(wantID) || m["state"] != "CONFIG_UNLOCKED" {
			t.Errorf("%v: state --json = %v; want bdf %q, interface_id %d, and no other keys", target, m, want, wantID)
		}

		code, out, errs = fx.run(t, append([]string{"tdisp", "state", "--trust-anchor", anchor}, target...)...)
		if wantLine := want + " (interface 0000:3a:00.1): CONFIG_UNLOCKED\n"; code != 0 || out != wantLine {
			t.Errorf("%v: state prints %q (exit %d, %s); want %q", target, out, code, errs, wantLine)
		}

		// report of the unlocked TDI: refused, naming the device the same way.
		code, _, errs = fx.run(t, append([]string{"tdisp", "report", "--trust-anchor", anchor}, target...)...)
		if code != exitAttestation || !strings.Contains(errs, want+": TDI is CONFIG_UNLOCKED") {
			t.Errorf("%v: report of an unlocked TDI: exit %d, stderr %q; want 2 naming %q", target, code, errs, want)
		}
		// The same with --json: the error is a JSON document on stdout.
		code, out, errs = fx.run(t, append([]string{"tdisp", "report", "--json", "--trust-anchor", anchor}, target...)...)
		var ej rpt.Error
		if err := json.Unmarshal([]byte(out), &ej); err != nil || code != exitAttestation || ej.Schema != "vfio-gate/error/v1" ||
			ej.ExitCode != exitAttestation || ej.Meaning != "attestation failed" || !strings.Contains(ej.Error, "TDI is CONFIG_UNLOCKED") {
			t.Errorf("%v: report --json of an unlocked TDI: exit %d, stdout %q (%v), stderr %q", target, code, out, err, errs)
		}
	}

}

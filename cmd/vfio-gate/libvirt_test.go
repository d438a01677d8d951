package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/phase"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
)

// TestFinishPreflight: deferred functions are listed, never counted as a
// deny; the exit code is check's over the checked ones.
func TestFinishPreflight(t *testing.T) {
	b1, _ := pci.ParseBDF("0000:3b:00.0")
	b2, _ := pci.ParseBDF("0000:3c:00.0")
	allow := gate.Decision{BDF: b1, Identity: attest.Identity{BDF: b1.String()}, Recorded: true,
		Verdict: policy.Verdict{Decision: policy.DecisionAllow, Allow: true}}
	deny := gate.Decision{BDF: b1, Identity: attest.Identity{BDF: b1.String()}, Recorded: true,
		Verdict: policy.Verdict{Decision: policy.DecisionDeny, Reasons: []policy.Reason{{Code: policy.CodeNoCMA, Message: "x"}}}}
	def := []phase.Deferred{{BDF: b2, Message: "on host driver nvme; libvirt moves it to vfio-pci before start: checked at start begin"}}
	for _, c := range []struct {
		name     string
		ds       []gate.Decision
		json     bool
		wantCode int
		want     string
	}{
		{"allow+deferred", []gate.Decision{allow}, false, 0, "0000:3c:00.0  deferred: on host driver nvme"},
		{"only deferred", nil, false, 0, "checked at start begin"},
		{"deny+deferred", []gate.Decision{deny}, false, exitDenied, "no-cma"},
		{"json", []gate.Decision{allow}, true, 0, `"decision":"deferred"`},
	} {
		var out bytes.Buffer
		e := &env{out: &out, errw: &bytes.Buffer{}}
		err := finishPreflight(e, &globals{json: c.json}, c.ds, policy.ModeEnforce, def)
		code := 0
		var ce *codeError
		if errors.As(err, &ce) {
			code = ce.code
		} else if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := out.String()
		if c.json {
			var v rpt.Decisions
			if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Decision != "deferred" || len(v.Devices) != 2 || v.Devices[1].Decision != "deferred" {
				t.Errorf("%s: %v %s", c.name, err, got)
			}
			got = strings.ReplaceAll(got, " ", "")
		}
		if code != c.wantCode || !strings.Contains(got, c.want) {
			t.Errorf("%s: exit %d, want %d; output %q lacks %q", c.name, code, c.wantCode, got, c.want)
		}
	}
}

package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/phase"
	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tdisp"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// recordOwn records the decisions the daemon makes without the gate (in-use
// denies, a deferred function still on its host driver at start, allows kept
// from a live TDI session) in the TPM: every decision is
// recorded. A failure denies with the tpm reason.
func (b *GateBackend) recordOwn(ctx context.Context, denies, allows []DeviceDecision, confidential bool) {
	var events []tpm.Event
	mode := string(b.o.Gate.Policy().Mode)
	for _, dd := range denies {
		var codes []string
		for _, r := range dd.Reasons {
			codes = append(codes, r.Code)
		}
		events = append(events, tpm.VerdictEvent(tpm.Decision{BDF: dd.BDF.String(), Allow: false, Mode: mode,
			Reasons: codes, Confidential: confidential, Time: b.now()}))
	}
	for _, dd := range allows {
		dig, _ := hex.DecodeString(dd.EvidenceDigest)
		events = append(events, tpm.VerdictEvent(tpm.Decision{BDF: dd.BDF.String(), VendorID: uint16(dd.VendorID), DeviceID: uint16(dd.DeviceID),
			Rule: dd.Rule, Allow: true, Mode: mode, EvidenceDigest: dig, Confidential: confidential, Time: b.now()}))
	}
	recs, err := b.o.Recorder.Record(ctx, events...)
	if err == nil && len(recs) == len(events) {
		return
	}
	fail := Reason{Code: "tpm", Message: fmt.Sprintf("the decision could not be recorded in the TPM: %v", err)}
	for i := range denies {
		denies[i].Reasons = append(denies[i].Reasons, fail)
	}
	for i := range allows {
		allows[i].Decision = policy.DecisionDeny
		allows[i].Reasons = append(allows[i].Reasons, fail)
	}
}

// toDeviceDecision converts a gate decision for the API. A decision with an
// error (TPM, bind) is a deny. mailbox-owned under a host driver gets advice
// that fits the phase and whether libvirt manages the hostdev.
func toDeviceDecision(d gate.Decision, driver, domain, p string, managed bool) DeviceDecision {
	dd := DeviceDecision{BDF: d.BDF, VendorID: jsonhex.U16(d.Identity.VendorID), DeviceID: jsonhex.U16(d.Identity.DeviceID), Decision: d.Verdict.Decision, Rule: d.Verdict.Rule,
		EvidenceDigest: hex.EncodeToString(d.EvidenceDigest), Reasons: []Reason{}}
	if dd.Decision == "" {
		dd.Decision = policy.DecisionDeny
	}
	for _, r := range d.Verdict.Reasons {
		msg := r.Message
		if r.Code == policy.CodeMailboxOwned && driver != "" && driver != pci.VFIODriver {
			target := d.BDF.String()
			if domain != "" {
				target = "--domain " + domain + " " + target
			}
			msg += phase.MailboxOwnedAdvice(driver, target, domain, p, managed)
		}
		dd.Reasons = append(dd.Reasons, Reason{Code: string(r.Code), Message: msg})
	}
	if d.Err != nil {
		dd.Decision = policy.DecisionDeny
		code := "bind"
		if errors.Is(d.Err, tpm.ErrTPM) || !d.Recorded {
			code = "tpm"
		}
		if !slices.ContainsFunc(dd.Reasons, func(r Reason) bool { return r.Code == code }) {
			dd.Reasons = append(dd.Reasons, Reason{Code: code, Message: d.Err.Error()})
		}
	}
	if d.Verdict.WouldDeny {
		dd.Rule = strings.TrimSpace(dd.Rule + " (audit: would deny)")
	}
	if d.TDILocked {
		dd.TDIState = tdisp.StateConfigLocked.String()
	}
	return dd
}

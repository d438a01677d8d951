package report

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/phase"
	"github.com/vfio-gate/vfio-gate/policy"
)

// Decisions is the body of the "decision" document (check, bind, explain,
// libvirt preflight --json). The keys decision, devices[].bdf, decision,
// reasons[].code, reasons[].message, rule and evidence_digest are a
// contract.
type Decisions struct {
	Decision string      `json:"decision"`
	Mode     policy.Mode `json:"mode"`
	Devices  []Device    `json:"devices"`
}

// Device is one function of a Decisions document.
type Device struct {
	BDF            string          `json:"bdf"`
	Socket         string          `json:"socket,omitempty"`
	Decision       string          `json:"decision"`
	Reasons        []policy.Reason `json:"reasons"`
	Rule           string          `json:"rule"`
	EvidenceDigest string          `json:"evidence_digest"`
	WouldDeny      bool            `json:"would_deny"`
	Recorded       bool            `json:"recorded"`
	Bound          bool            `json:"bound,omitempty"`
	VendorID       string          `json:"vendor_id"`
	DeviceID       string          `json:"device_id"`
	Error          string          `json:"error,omitempty"`
	Checks         []policy.Check  `json:"checks,omitempty"`
}

// DecisionsOf builds the document of ds under mode; withChecks adds every
// policy check (explain). A function with an error is a deny, and so is the
// document when any function is denied or failed.
func DecisionsOf(ds []gate.Decision, mode policy.Mode, withChecks bool) Decisions {
	out := Decisions{Decision: policy.DecisionAllow, Mode: mode, Devices: []Device{}}
	for _, d := range ds {
		dj := Device{BDF: d.Identity.BDF, Socket: d.Identity.Socket, Decision: d.Verdict.Decision,
			Reasons: d.Verdict.Reasons, Rule: d.Verdict.Rule, EvidenceDigest: hex.EncodeToString(d.EvidenceDigest),
			WouldDeny: d.Verdict.WouldDeny, Recorded: d.Recorded, Bound: d.Bound,
			VendorID: fmt.Sprintf("0x%04x", d.Identity.VendorID), DeviceID: fmt.Sprintf("0x%04x", d.Identity.DeviceID)}
		if dj.BDF == "" && d.Identity.Socket == "" {
			dj.BDF = d.BDF.String()
		}
		if dj.Reasons == nil {
			dj.Reasons = []policy.Reason{}
		}
		if d.Err != nil {
			dj.Error = d.Err.Error()
		}
		if withChecks {
			dj.Checks = d.Verdict.Checks
		}
		if !d.Allowed() || d.Err != nil {
			out.Decision = policy.DecisionDeny
			if d.Err != nil && d.Verdict.Decision == policy.DecisionAllow {
				dj.Decision = policy.DecisionDeny
			}
		}
		out.Devices = append(out.Devices, dj)
	}
	return out
}

// PreflightOf is DecisionsOf for libvirt preflight: the deferred functions
// follow the checked ones with decision "deferred", which is also the
// document's decision when nothing is denied but something is deferred.
func PreflightOf(ds []gate.Decision, mode policy.Mode, deferred []phase.Deferred) Decisions {
	out := DecisionsOf(ds, mode, false)
	for _, d := range deferred {
		out.Devices = append(out.Devices, Device{BDF: d.BDF.String(), Decision: daemon.DecisionDeferred,
			Reasons: []policy.Reason{{Code: daemon.CodeDeferred, Message: d.Message}}})
	}
	if out.Decision == policy.DecisionAllow && len(deferred) > 0 {
		out.Decision = daemon.DecisionDeferred
	}
	return out
}

// WriteDecisions writes the per-device table of ds (with a BOUND column
// when showBound), then every reason and error, then a note in audit mode.
func WriteDecisions(w io.Writer, ds []gate.Decision, mode policy.Mode, showBound bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	hdr := "DEVICE\tID\tDECISION\tRULE\tREASONS"
	if showBound {
		hdr += "\tBOUND"
	}
	fmt.Fprintln(tw, hdr)
	for _, d := range ds {
		dec := d.Verdict.Decision
		if d.Verdict.WouldDeny {
			dec += " (audit: would deny)"
		}
		codes := []string{}
		for _, r := range d.Verdict.Reasons {
			codes = append(codes, string(r.Code))
		}
		line := fmt.Sprintf("%s\t%04x:%04x\t%s\t%s\t%s", deviceName(d), d.Identity.VendorID, d.Identity.DeviceID, dec,
			dash(d.Verdict.Rule), dash(strings.Join(codes, ",")))
		if showBound {
			line += fmt.Sprintf("\t%v", d.Bound)
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	for _, d := range ds {
		name := deviceName(d)
		for _, r := range d.Verdict.Reasons {
			fmt.Fprintf(w, "  %s %s: %s\n", name, r.Code, r.Message)
		}
		if d.Err != nil {
			fmt.Fprintf(w, "  %s error: %v\n", name, d.Err)
		}
	}
	if mode == policy.ModeAudit {
		fmt.Fprintln(w, "policy mode is audit: denies are recorded and reported, nothing is blocked")
	}
}

// deviceName is how a decision's table row names the function: its BDF, or
// the spdm-socket address it was reached at.
func deviceName(d gate.Decision) string {
	if d.Identity.BDF == "" {
		return d.Identity.Socket
	}
	return d.Identity.BDF
}

// WritePreflight is WriteDecisions for libvirt preflight: the table when
// something was checked, then one line per deferred function.
func WritePreflight(w io.Writer, ds []gate.Decision, mode policy.Mode, deferred []phase.Deferred) {
	if len(ds) > 0 {
		WriteDecisions(w, ds, mode, false)
	}
	for _, d := range deferred {
		fmt.Fprintf(w, "%s  deferred: %s\n", d.BDF, d.Message)
	}
}

// WriteChecks writes explain's table of d's policy checks: expected, got,
// pass or FAIL; then an empty line.
func WriteChecks(w io.Writer, d gate.Decision) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tEXPECTED\tGOT\tRESULT")
	for _, c := range d.Verdict.Checks {
		res := "pass"
		if !c.Pass {
			res = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, short(c.Expected, 48), short(c.Got, 48), res)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// Releases is the body of the "release" document.
type Releases struct {
	Released []Release `json:"released"`
}

// Release is one function of a Releases document.
type Release struct {
	BDF      string `json:"bdf"`
	Released bool   `json:"released"`
	Driver   string `json:"restored_driver"`
	Recorded bool   `json:"recorded"`
	Error    string `json:"error,omitempty"`
}

// ReleasesOf builds the document of rs (released unless it has an error).
func ReleasesOf(rs []gate.Released) Releases {
	var out Releases
	for _, r := range rs {
		j := Release{BDF: r.BDF.String(), Released: r.Err == nil, Driver: r.Driver, Recorded: r.Recorded}
		if r.Err != nil {
			j.Error = r.Err.Error()
		}
		out.Released = append(out.Released, j)
	}
	return out
}

// WriteReleases writes one line per function of rs: not released and
// why, released without a driver, or released with its driver restored.
func WriteReleases(w io.Writer, rs Releases) {
	for _, j := range rs.Released {
		switch {
		case j.Error != "":
			fmt.Fprintf(w, "%s: not released: %s\n", j.BDF, j.Error)
		case j.Driver == "":
			fmt.Fprintf(w, "%s: released (left without a driver, as before bind)\n", j.BDF)
		default:
			fmt.Fprintf(w, "%s: released, driver %s restored\n", j.BDF, j.Driver)
		}
	}
}

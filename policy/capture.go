package policy

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/vfio-gate/vfio-gate/attest"
)

// CaptureOptions adjust Capture.
type CaptureOptions struct {
	// Name of the rule; "" = "captured-VVVV-DDDD". Characters outside
	// [A-Za-z0-9._-] become "-".
	Name string
	// Anchors are the trust anchors offered (one per certificate, File set).
	// The rule keeps every anchor of each file that holds the certificate
	// that verified the device's chain.
	Anchors []*Anchor
	// ForbidDebugMode sets measurements.forbid_debug_mode when the device
	// reports a device mode.
	ForbidDebugMode bool
}

// captureNotes are the comments MarshalDocument writes for a captured rule.
type captureNotes struct {
	verifiedBy string           // SHA-256 of the anchor that verified the chain
	refs       map[uint8]string // per index: "type (digest|raw value, hashed)"
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// Capture builds the rule that allows exactly the device ev shows: its IDs,
// the negotiated SPDM version and algorithms, the anchors that verified its
// chain, the current digest of every DMTF measurement index (raw values as
// their digest), its SVN as a floor and (if asked) no debug mode. It fails
// when the attestation did not pass or no offered anchor verified the chain.
func Capture(ev *attest.Evidence, o CaptureOptions) (*Rule, error) {
	if ev.Failure != nil {
		return nil, fmt.Errorf("attestation did not pass (%s at %s: %s): nothing to capture", ev.Failure.Kind, ev.Failure.Step, ev.Failure.Message)
	}
	var used *attest.ChainState
	for i := range ev.Chains {
		if ev.Chains[i].Slot == ev.Bundle.Slot && ev.Chains[i].Verified {
			used = &ev.Chains[i]
		}
	}
	if used == nil || used.AnchorSHA256 == "" {
		return nil, fmt.Errorf("no verified certificate chain: give the device maker's root with --trust-anchor")
	}
	id := ev.Identity
	name := o.Name
	if name == "" {
		name = fmt.Sprintf("captured-%04x-%04x", id.VendorID, id.DeviceID)
	}
	r := &Rule{Name: unsafeName.ReplaceAllString(name, "-"), notes: &captureNotes{verifiedBy: used.AnchorSHA256, refs: map[uint8]string{}}}
	vendor := id.VendorID
	r.Match = Match{Vendor: &vendor, Devices: []uint16{id.DeviceID}}
	if id.SubsystemVendorID != 0 || id.SubsystemID != 0 {
		sv, sd := id.SubsystemVendorID, id.SubsystemID
		r.Match.SubsystemVendor, r.Match.SubsystemDevice = &sv, &sd
	}
	// The rule's hash list is checked against both negotiated hashes (base
	// and, when it is a hash, measurement: DMTF's responder pairs SHA-384
	// with SHA-512 measurements): list both, or the rule refuses its device.
	hashes := []string{ev.Algorithms.BaseHash}
	if m := ev.Algorithms.MeasurementHash; m != ev.Algorithms.BaseHash && KnownHash(m) {
		hashes = append(hashes, m)
	}
	r.SPDM = &SPDM{MinVersion: ev.Version, Asym: []string{ev.Algorithms.BaseAsym}, Hash: hashes}
	files := map[string]bool{}
	for _, a := range o.Anchors {
		if a.SHA256 == used.AnchorSHA256 {
			files[a.File] = true
		}
	}
	for _, a := range o.Anchors {
		if files[a.File] {
			r.SPDM.Anchors = append(r.SPDM.Anchors, a)
		}
	}
	if len(r.SPDM.Anchors) == 0 {
		return nil, fmt.Errorf("the chain verified against anchor sha256 %s, which none of the --trust-anchor files holds", used.AnchorSHA256)
	}
	r.SPDM.RequireCMASAN = used.CMASAN != nil && used.CMASAN.MatchesIdentity != nil && *used.CMASAN.MatchesIdentity
	r.Measurements = captureMeasurements(ev, o.ForbidDebugMode, r.notes)
	return r, nil
}

// captureMeasurements pins every unambiguous DMTF measurement index.
func captureMeasurements(ev *attest.Evidence, forbidDebug bool, notes *captureNotes) *Measurements {
	m := &Measurements{RequireSigned: ev.MeasurementsSignatureVerified, Reference: map[uint8][]Digest{}}
	alg := RefAlg(ev.Algorithms.MeasurementHash)
	if alg == "" {
		alg = "sha256" // raw bit streams only: reference the SHA-256 of each raw value
	}
	seen := map[uint8]int{}
	for _, b := range ev.Measurements {
		seen[b.Index]++
	}
	for _, b := range ev.Measurements {
		if b.Spec&1 == 0 || b.Index == 0 || b.Index == 0xff || seen[b.Index] != 1 {
			continue // not DMTF, or ambiguous: no defined value to pin
		}
		if b.Type == 5 || b.Type == 7 {
			continue // device mode and SVN: forbid_debug_mode and min_svn cover them
		}
		v := []byte(b.Value)
		form := "digest"
		if b.Raw {
			v = DigestOf(alg, b.Value)
			form = "raw value, hashed"
		}
		if v == nil {
			continue
		}
		m.Reference[b.Index] = []Digest{{Alg: alg, Value: v}}
		notes.refs[b.Index] = fmt.Sprintf("%s (%s)", b.TypeName, form)
	}
	for _, b := range ev.Measurements {
		if b.Spec&1 != 0 && b.Type == 7 && b.Raw && len(b.Value) == 8 {
			v := binary.LittleEndian.Uint64(b.Value)
			if m.MinSVN == nil || v < *m.MinSVN {
				m.MinSVN = &v
			}
		}
		if b.Spec&1 != 0 && b.Type == 5 {
			m.ForbidDebugMode = forbidDebug
		}
	}
	return m
}

// MarshalDocument renders a policy document (version 1, enforce,
// deny-unattested for confidential VMs, allow-unattested otherwise) with
// rules, as `vfio-gate policy capture` prints it: header lines become
// comments, a captured rule's anchors are listed by file with their
// SHA-256 fingerprints. It writes the fields Capture sets (IDs, SPDM
// version, algorithms, anchors, CMA SAN, measurements); Parse reads the
// result back to equal rules.
func MarshalDocument(header []string, rules ...*Rule) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	for _, h := range header {
		w("# %s\n", h)
	}
	w("version: 1\nmode: enforce\ndefaults:\n  confidential: deny-unattested\n  non_confidential: allow-unattested\nrules:\n")
	for _, r := range rules {
		r.marshal(w)
	}
	return b.String()
}

func (r *Rule) marshal(w func(string, ...any)) {
	notes := r.notes
	if notes == nil {
		notes = &captureNotes{}
	}
	w("  - name: %s\n    match:\n", r.Name)
	if m := r.Match; m.Vendor != nil {
		w("      vendor: 0x%04x\n", *m.Vendor)
	}
	if len(r.Match.Devices) > 0 {
		ds := make([]string, len(r.Match.Devices))
		for i, d := range r.Match.Devices {
			ds[i] = fmt.Sprintf("0x%04x", d)
		}
		w("      device: [%s]\n", strings.Join(ds, ", "))
	}
	if r.Match.SubsystemVendor != nil && r.Match.SubsystemDevice != nil {
		w("      subsystem_vendor: 0x%04x\n      subsystem_device: 0x%04x\n", *r.Match.SubsystemVendor, *r.Match.SubsystemDevice)
	}
	if s := r.SPDM; s != nil {
		w("    spdm:\n")
		if s.MinVersion != "" {
			w("      min_version: %q\n", s.MinVersion)
		}
		w("      algorithms:\n        asym: [%s]\n        hash: [%s]\n", strings.Join(s.Asym, ", "), strings.Join(s.Hash, ", "))
		w("      trust_anchors:\n")
		var files []string
		for _, a := range s.Anchors {
			if !slices.Contains(files, a.File) {
				files = append(files, a.File)
			}
		}
		for _, f := range files {
			for _, a := range s.Anchors {
				if a.File != f {
					continue
				}
				mark := ""
				if a.SHA256 == notes.verifiedBy {
					mark = " (verified this device's chain)"
				}
				w("        # %s sha256 %s%s\n", a.Cert.Subject, a.SHA256, mark)
			}
			w("        - %q\n", f)
		}
		if s.RequireCMASAN {
			w("      require_cma_san: true\n")
		}
	}
	if m := r.Measurements; m != nil {
		w("    measurements:\n      require_signed: %t\n", m.RequireSigned)
		idx := make([]uint8, 0, len(m.Reference))
		for i := range m.Reference {
			idx = append(idx, i)
		}
		slices.Sort(idx)
		if len(idx) > 0 {
			w("      reference:\n")
		}
		for _, i := range idx {
			if n := notes.refs[i]; n != "" {
				w("        # %s\n", n)
			}
			vs := make([]string, len(m.Reference[i]))
			for j, d := range m.Reference[i] {
				vs[j] = fmt.Sprintf("%q", d.Alg+":"+hex.EncodeToString(d.Value))
			}
			w("        %d: [%s]\n", i, strings.Join(vs, ", "))
		}
		if m.MinSVN != nil {
			w("      min_svn: %d\n", *m.MinSVN)
		}
		if m.ForbidDebugMode {
			w("      forbid_debug_mode: true\n")
		}
	}
}

// CheckCapture loads a captured document and evaluates ev against it as
// for a confidential VM: a capture is only good if it allows the device it
// was taken from. Content check only: the operator installs the file, and
// its owner and mode are checked then (the anchor paths are absolute).
func CheckCapture(doc string, ev *attest.Evidence) (Verdict, error) {
	pol, err := Parse([]byte(doc), "captured.yaml", &LoadOptions{SkipPermissionCheck: true})
	if err != nil {
		return Verdict{}, fmt.Errorf("captured policy does not load: %w", err)
	}
	return pol.Evaluate(ev, Input{Confidential: true}), nil
}

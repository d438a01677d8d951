package main

import (
	"crypto"
	"crypto/sha256"
	_ "crypto/sha3"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/policy"
)

// Reference-value prefixes of the policy file, by attest's measurement hash name.
var refAlg = map[string]string{"sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512",
	"sha3-256": "sha3-256", "sha3-384": "sha3-384", "sha3-512": "sha3-512"}

// anchorFile is one --trust-anchor file with its certificates.
type anchorFile struct {
	path  string
	certs []*x509.Certificate
}

func readAnchorFiles(paths []string) ([]anchorFile, error) {
	var out []anchorFile
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, usageErrorf("--trust-anchor %s: %v", p, err)
		}
		b, err := policy.ReadRegularFile(abs, maxAnchorFile)
		if err != nil {
			return nil, usageErrorf("--trust-anchor %s: %v", p, err)
		}
		cs, err := parseCerts(b)
		if err != nil {
			return nil, usageErrorf("--trust-anchor %s: %v", p, err)
		}
		out = append(out, anchorFile{path: abs, certs: cs})
	}
	return out, nil
}

type captureOpts struct {
	name        string
	forbidDebug bool
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// captureRule renders a whole policy document (version 1, enforce, the
// default defaults) with one rule that allows exactly the device ev shows:
// its IDs, the negotiated SPDM version and algorithms, the anchor files that
// verified its chain, the current measurement digests, its SVN as a floor
// and (if asked) no debug mode.
func captureRule(ev *attest.Evidence, anchors []anchorFile, o captureOpts) (string, error) {
	if ev.Failure != nil {
		return "", fmt.Errorf("attestation did not pass (%s at %s: %s): nothing to capture", ev.Failure.Kind, ev.Failure.Step, ev.Failure.Message)
	}
	var used *attest.ChainState
	for i := range ev.Chains {
		if ev.Chains[i].Slot == ev.Bundle.Slot && ev.Chains[i].Verified {
			used = &ev.Chains[i]
		}
	}
	if used == nil || used.AnchorSHA256 == "" {
		return "", fmt.Errorf("no verified certificate chain: give the device maker's root with --trust-anchor")
	}
	id := ev.Identity
	name := o.name
	if name == "" {
		name = fmt.Sprintf("captured-%04x-%04x", id.VendorID, id.DeviceID)
	}
	name = unsafeName.ReplaceAllString(name, "-")
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# vfio-gate policy capture, %s\n", time.Now().UTC().Format(time.RFC3339))
	if id.BDF != "" {
		w("# device %s [%04x:%04x]", id.BDF, id.VendorID, id.DeviceID)
	} else {
		w("# spdm-socket %s [%04x:%04x]", id.Socket, id.VendorID, id.DeviceID)
	}
	if used.CMASAN != nil {
		w(", CMA SAN %s", used.CMASAN.Raw)
	}
	w("\n# evidence digest %x\n", ev.Digest())
	w("version: 1\nmode: enforce\ndefaults:\n  confidential: deny-unattested\n  non_confidential: allow-unattested\nrules:\n")
	w("  - name: %s\n", name)
	w("    match:\n      vendor: 0x%04x\n      device: [0x%04x]\n", id.VendorID, id.DeviceID)
	if id.SubsystemVendorID != 0 || id.SubsystemID != 0 {
		w("      subsystem_vendor: 0x%04x\n      subsystem_device: 0x%04x\n", id.SubsystemVendorID, id.SubsystemID)
	}
	w("    spdm:\n      min_version: %q\n", ev.Version)
	// The rule's hash list is checked against both negotiated hashes (base
	// and, when it is a hash, measurement: DMTF's responder pairs SHA-384
	// with SHA-512 measurements): list both, or the rule refuses its device.
	hashes := []string{ev.Algorithms.BaseHash}
	if m := ev.Algorithms.MeasurementHash; m != ev.Algorithms.BaseHash && policy.KnownHash(m) {
		hashes = append(hashes, m)
	}
	w("      algorithms:\n        asym: [%s]\n        hash: [%s]\n", ev.Algorithms.BaseAsym, strings.Join(hashes, ", "))
	w("      trust_anchors:\n")
	n := 0
	for _, a := range anchors {
		var fps []string
		match := false
		for _, c := range a.certs {
			sum := sha256.Sum256(c.Raw)
			fp := hex.EncodeToString(sum[:])
			if fp == used.AnchorSHA256 {
				match = true
				fp += " (verified this device's chain)"
			}
			fps = append(fps, fmt.Sprintf("%s sha256 %s", c.Subject, fp))
		}
		if !match {
			continue
		}
		for _, f := range fps {
			w("        # %s\n", f)
		}
		w("        - %q\n", a.path)
		n++
	}
	if n == 0 {
		return "", fmt.Errorf("the chain verified against anchor sha256 %s, which none of the --trust-anchor files holds", used.AnchorSHA256)
	}
	if used.CMASAN != nil && used.CMASAN.MatchesIdentity != nil && *used.CMASAN.MatchesIdentity {
		w("      require_cma_san: true\n")
	}
	w("    measurements:\n")
	w("      require_signed: %t\n", ev.MeasurementsSignatureVerified)
	alg := refAlg[ev.Algorithms.MeasurementHash]
	if alg == "" {
		alg = "sha256" // raw bit streams only: reference the SHA-256 of each raw value
	}
	type ref struct {
		idx     uint8
		comment string
		value   string
	}
	var refs []ref
	seen := map[uint8]int{}
	for _, m := range ev.Measurements {
		seen[m.Index]++
	}
	for _, m := range ev.Measurements {
		if m.Spec&1 == 0 || m.Index == 0 || m.Index == 0xff || seen[m.Index] != 1 {
			continue // not DMTF, or ambiguous: no defined value to pin
		}
		if m.Type == 5 || m.Type == 7 {
			continue // device mode and SVN: forbid_debug_mode and min_svn cover them
		}
		v := []byte(m.Value)
		form := "digest"
		if m.Raw {
			v = digestOf(alg, m.Value)
			form = "raw value, hashed"
		}
		if v == nil {
			continue
		}
		refs = append(refs, ref{m.Index, fmt.Sprintf("%s (%s)", m.TypeName, form), alg + ":" + hex.EncodeToString(v)})
	}
	slices.SortFunc(refs, func(a, b ref) int { return int(a.idx) - int(b.idx) })
	if len(refs) > 0 {
		w("      reference:\n")
		for _, r := range refs {
			w("        # %s\n        %d: [%q]\n", r.comment, r.idx, r.value)
		}
	}
	var svn *uint64
	for _, m := range ev.Measurements {
		if m.Spec&1 != 0 && m.Type == 7 && m.Raw && len(m.Value) == 8 {
			v := binary.LittleEndian.Uint64(m.Value)
			if svn == nil || v < *svn {
				svn = &v
			}
		}
	}
	if svn != nil {
		w("      min_svn: %d\n", *svn)
	}
	hasMode := false
	for _, m := range ev.Measurements {
		if m.Spec&1 != 0 && m.Type == 5 {
			hasMode = true
		}
	}
	if hasMode {
		w("      forbid_debug_mode: %t\n", o.forbidDebug)
	}
	return b.String(), nil
}

func digestOf(alg string, v []byte) []byte {
	h, ok := map[string]crypto.Hash{"sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512,
		"sha3-256": crypto.SHA3_256, "sha3-384": crypto.SHA3_384, "sha3-512": crypto.SHA3_512}[alg]
	if !ok || !h.Available() {
		return nil
	}
	d := h.New()
	d.Write(v)
	return d.Sum(nil)
}

// selfCheck loads the captured document and evaluates ev against it: the
// capture is only printed if it allows the device it was taken from.
func selfCheck(doc string, ev *attest.Evidence) (policy.Verdict, error) {
	dir, err := os.MkdirTemp("", "vfio-gate-capture-")
	if err != nil {
		return policy.Verdict{}, err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		return policy.Verdict{}, err
	}
	// Content check only: the operator installs the file (and its owner
	// and mode are checked then).
	pol, err := policy.Load(p, &policy.LoadOptions{SkipPermissionCheck: true})
	if err != nil {
		return policy.Verdict{}, fmt.Errorf("captured policy does not load: %w", err)
	}
	return pol.Evaluate(ev, policy.Input{Confidential: true}), nil
}

func newPolicyCaptureCmd(e *env, g *globals) *cobra.Command {
	f := &attestFlags{}
	o := captureOpts{}
	c := &cobra.Command{
		Use:   "capture BDF | --socket HOST:PORT --trust-anchor FILE...",
		Short: "Attest a device you trust now and print a policy rule that allows exactly it",
		Example: `  vfio-gate policy capture --socket 127.0.0.1:2323 --trust-anchor /tmp/emu-ca.pem > policy.yaml
  sudo vfio-gate policy capture 0000:3b:00.0 --trust-anchor /etc/vfio-gate/anchors/acme-root.pem --name acme-nic`,
		Long: `Attests the device (as "vfio-gate attest" does) and prints a policy document (version 1, enforce,
deny-unattested for confidential VMs) with one rule that matches its IDs and pins what it proved:
spdm.min_version and algorithms as negotiated, the --trust-anchor files that verified its chain
(SHA-256 fingerprints in comments), measurements.reference = the current digest of every DMTF
measurement index (raw values as their digest), min_svn = the current firmware SVN when the device
reports one, and forbid_debug_mode when it reports a device mode (--allow-debug-mode to leave it off).
Before printing, the document is loaded and evaluated against the same evidence; capture fails
unless that allows the device. Capture needs a passing attestation: exit 2 otherwise, 4 when the
device is unavailable.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			bdf, err := f.target("policy capture", args)
			if err != nil {
				return err
			}
			if len(f.anchors) == 0 {
				return usageErrorf("policy capture: need at least one --trust-anchor (a rule without anchors trusts nothing)")
			}
			files, err := readAnchorFiles(f.anchors)
			if err != nil {
				return err
			}
			var roots []*x509.Certificate
			for _, a := range files {
				roots = append(roots, a.certs...)
			}
			ev, err := runAttestation(cmd.Context(), e, g, f, bdf, roots)
			if err != nil {
				return err
			}
			if ev.Failure != nil {
				return withCode(failureExit(ev.Failure), fmt.Errorf("policy capture: attestation did not pass: %s at %s: %s",
					ev.Failure.Kind, ev.Failure.Step, ev.Failure.Message))
			}
			doc, err := captureRule(ev, files, o)
			if err != nil {
				return withCode(exitAttestation, fmt.Errorf("policy capture: %w", err))
			}
			v, err := selfCheck(doc, ev)
			if err != nil {
				return err
			}
			if !v.Allow {
				var rs []string
				for _, r := range v.Reasons {
					rs = append(rs, string(r.Code)+": "+r.Message)
				}
				return withCode(exitDenied, fmt.Errorf("policy capture: the captured rule would deny this device: %s", strings.Join(rs, "; ")))
			}
			_, err = fmt.Fprint(e.out, doc)
			return err
		},
	}
	f.register(c)
	c.Flags().StringVar(&o.name, "name", "", "rule name (default captured-VVVV-DDDD)")
	allowDebug := false
	c.Flags().BoolVar(&allowDebug, "allow-debug-mode", false, "do not set forbid_debug_mode")
	c.PreRun = func(*cobra.Command, []string) { o.forbidDebug = !allowDebug }
	return c
}

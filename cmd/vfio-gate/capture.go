package main

import (
	"crypto/sha256"
	_ "crypto/sha3"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/policy"
)

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
		cs, err := policy.ParseCertificates(b)
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

// captureRule renders the policy document `policy capture` prints: the
// rule policy.Capture builds from ev, with a header naming the device.
func captureRule(ev *attest.Evidence, anchors []anchorFile, o captureOpts) (string, error) {
	var as []*policy.Anchor
	for _, f := range anchors {
		for _, c := range f.certs {
			sum := sha256.Sum256(c.Raw)
			as = append(as, &policy.Anchor{File: f.path, Cert: c, SHA256: hex.EncodeToString(sum[:])})
		}
	}
	r, err := policy.Capture(ev, policy.CaptureOptions{Name: o.name, Anchors: as, ForbidDebugMode: o.forbidDebug})
	if err != nil {
		return "", err
	}
	id := ev.Identity
	dev := fmt.Sprintf("device %s [%04x:%04x]", id.BDF, id.VendorID, id.DeviceID)
	if id.BDF == "" {
		dev = fmt.Sprintf("spdm-socket %s [%04x:%04x]", id.Socket, id.VendorID, id.DeviceID)
	}
	for _, c := range ev.Chains {
		if c.Slot == ev.Bundle.Slot && c.Verified && c.CMASAN != nil {
			dev += ", CMA SAN " + c.CMASAN.Raw
		}
	}
	header := []string{"vfio-gate policy capture, " + time.Now().UTC().Format(time.RFC3339), dev,
		fmt.Sprintf("evidence digest %x", ev.Digest())}
	return policy.MarshalDocument(header, r), nil
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
			v, err := policy.CheckCapture(doc, ev)
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

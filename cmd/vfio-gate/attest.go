package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/attest"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/target"
)

// attestFlags are shared by `attest` and `policy capture`.
type attestFlags struct {
	anchors []string
	slot    int
	socket  string
	pciID   string
	lockDir string
	timeout time.Duration
	session bool
	tdisp   bool
	pubKey  string // --responder-public-key
}

func (f *attestFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringArrayVar(&f.anchors, "trust-anchor", nil, "trust anchor certificate (PEM, may hold several, or DER); repeatable")
	fl.IntVar(&f.slot, "slot", -1, "certificate slot for CHALLENGE and MEASUREMENTS (default: lowest slot whose chain verifies)")
	fl.StringVar(&f.socket, "socket", "", "attest a responder behind the spdm-socket protocol at HOST:PORT instead of a PCI function")
	fl.StringVar(&f.pciID, "pci-id", "", "with --socket: the responder's VVVV:DDDD (default: taken from the leaf's CMA SAN)")
	fl.StringVar(&f.lockDir, "lock-dir", pci.DefaultLockDir, "directory of the per-function lock files")
	fl.DurationVar(&f.timeout, "timeout", attest.DefaultTimeout, "bound on the whole attestation")
	fl.StringVar(&f.pubKey, "responder-public-key", "", "the responder's pre-provisioned public key (PEM SubjectPublicKeyInfo, or DER): CHALLENGE and MEASUREMENTS use slot 0xFF and are verified with it; no certificate is read (the responder must advertise PUB_KEY_ID_CAP)")
	if c.Name() == "attest" {
		fl.BoolVar(&f.session, "session", false, "read the measurements inside an SPDM secure session (KEY_EXCHANGE) and report it as \"session\"")
		fl.BoolVar(&f.tdisp, "tdisp", false, "also read the TDISP interface state (and report when locked) inside the session (implies --session)")
	}
}

// target checks the positional arguments against --socket.
func (f *attestFlags) target(cmdName string, args []string) (pci.BDF, error) {
	switch {
	case f.socket != "" && len(args) > 0:
		return pci.BDF{}, usageErrorf("%s: give either a BDF or --socket, not both", cmdName)
	case f.socket == "" && len(args) != 1:
		return pci.BDF{}, usageErrorf("%s: need exactly one BDF (or --socket HOST:PORT)", cmdName)
	case f.socket == "" && f.pciID != "":
		return pci.BDF{}, usageErrorf("%s: --pci-id only applies with --socket", cmdName)
	case f.socket != "":
		return pci.BDF{}, nil
	}
	b, err := pci.ParseBDF(args[0])
	if err != nil {
		return pci.BDF{}, usageErrorf("%s: %v", cmdName, err)
	}
	return b, nil
}

// loadAnchors reads the --trust-anchor files (policy.ReadCertificates).
func loadAnchors(paths []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, p := range paths {
		certs, err := policy.ReadCertificates(p)
		if err != nil {
			return nil, usageErrorf("--trust-anchor %s: %v", p, err)
		}
		out = append(out, certs...)
	}
	return out, nil
}

// runAttestation attests the target of f (a BDF or --socket) and returns
// the evidence, or an error when the target cannot be reached at all.
func runAttestation(ctx context.Context, e *env, g *globals, f *attestFlags, bdf pci.BDF, roots []*x509.Certificate) (*attest.Evidence, error) {
	o := &attest.Options{Roots: roots, Timeout: f.timeout, Logger: g.log, Session: f.session || f.tdisp, TDISP: f.tdisp}
	if f.pubKey != "" {
		if f.slot >= 0 {
			return nil, usageErrorf("--responder-public-key uses slot 0xFF: it excludes --slot")
		}
		pub, err := policy.ReadPublicKey(f.pubKey)
		if err != nil {
			return nil, usageErrorf("--responder-public-key %s: %v", f.pubKey, err)
		}
		o.ResponderPublicKey = pub
	}
	if f.slot >= 0 {
		if f.slot > 7 {
			return nil, usageErrorf("--slot %d: SPDM slots are 0-7", f.slot)
		}
		s := uint8(f.slot)
		o.Slot = &s
	}
	req := attest.Request{Socket: f.socket, BDF: bdf, SysfsRoot: g.sysfsRoot, LockDir: f.lockDir,
		PCI: &pci.Options{ConfigOpener: e.configOpener, Geteuid: e.geteuid, Logger: g.log}}
	if f.pciID != "" {
		p, err := parsePCIID(f.pciID)
		if err != nil {
			return nil, err
		}
		req.VendorID, req.DeviceID = p.VendorID, p.DeviceID
	}
	ev, err := attest.Run(ctx, req, o)
	if oe := (*target.OpenError)(nil); errors.As(err, &oe) {
		return nil, withCode(exitUnavailable, err)
	}
	return ev, err
}

func newAttestCmd(e *env, g *globals) *cobra.Command {
	f := &attestFlags{}
	c := &cobra.Command{
		Use:     "attest BDF | --socket HOST:PORT",
		Short:   "Attest one PCI function over DOE/SPDM (CMA) and print the evidence",
		Example: helpText("attest.example"),
		Long:    helpText("attest.long"),
		RunE: func(cmd *cobra.Command, args []string) error {
			bdf, err := f.target("attest", args)
			if err != nil {
				return err
			}
			roots, err := loadAnchors(f.anchors)
			if err != nil {
				return err
			}
			ev, err := runAttestation(cmd.Context(), e, g, f, bdf, roots)
			if err != nil {
				return err
			}
			if err := jsonOrText(e, g, "attest", ev, func(w io.Writer, ev *attest.Evidence) error { return rpt.WriteAttest(w, ev, len(roots)) }); err != nil {
				return err
			}
			if ev.Failure != nil {
				return quietCode(failureExit(ev.Failure), fmt.Errorf("attestation did not pass: %s", ev.Failure.Message))
			}
			return nil
		},
	}
	f.register(c)
	return c
}

// jsonOrText prints v as the JSON document kind with --json, else as text
// through write.
func jsonOrText[T any](e *env, g *globals, kind string, v T, write func(io.Writer, T) error) error {
	if g.json {
		return rpt.WriteJSON(e.out, kind, v)
	}
	return write(e.out, v)
}

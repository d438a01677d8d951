package report

import (
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
)

// The `attest` document: its JSON body is *attest.Evidence itself.

// WriteAttest writes the readable summary of an attestation: identity,
// mailboxes, SPDM, session, TDISP, chains, challenge, measurements, traffic,
// evidence digest and the result. anchors is how many trust anchors were
// given (none: a chain failure says how to give one).
func WriteAttest(w io.Writer, ev *attest.Evidence, anchors int) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	attestIdentity(tw, ev.Identity)
	for _, m := range ev.DOE {
		feats := strings.Join(m.Features, ", ")
		if feats == "" {
			feats = "(not discovered)"
		}
		fmt.Fprintf(tw, "DOE\tmailbox at 0x%03x: %s\n", m.Offset, feats)
	}
	if ev.Version != "" {
		a := ev.Algorithms
		fmt.Fprintf(tw, "SPDM\t%s, asym %s, hash %s, measurement hash %s\n", ev.Version, a.BaseAsym, a.BaseHash, a.MeasurementHash)
	}
	if s := ev.Session; s != nil {
		if s.Established {
			fmt.Fprintf(tw, "Session	%#08x, secured messages %s, %s, %s (measurements read inside it)\n", s.SessionID, s.Version, s.AEAD, s.DHE)
		} else {
			fmt.Fprintf(tw, "Session	NOT established\n")
		}
	}
	if t := ev.TDISP; t != nil {
		fmt.Fprintf(tw, "TDISP	%s, TDI %s, report %d bytes\n", t.Version, t.State, len(t.Report))
	}
	for _, c := range ev.Chains {
		attestChain(tw, c)
	}
	if ev.Version != "" {
		fmt.Fprintf(tw, "Challenge\t%s (slot %d)\n", attestVerified(ev.ChallengeVerified), ev.Bundle.Slot)
		fmt.Fprintf(tw, "Measurements\t%d blocks, signature %s\n", len(ev.Measurements), attestVerified(ev.MeasurementsSignatureVerified))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := attestMeasurements(w, ev.Measurements); err != nil {
		return err
	}
	fmt.Fprintf(w, "Traffic: %d round trips, %d bytes sent, %d received, %s\n", ev.RoundTrips, ev.BytesSent, ev.BytesRecv,
		ev.Duration.Round(time.Microsecond))
	fmt.Fprintf(w, "Evidence digest: %x\n", ev.Digest())
	if ev.Failure != nil {
		fmt.Fprintf(w, "Result: FAIL %s at %s: %s\n", ev.Failure.Kind, ev.Failure.Step, ev.Failure.Message)
		if ev.Failure.Kind == attest.FailChain && anchors == 0 {
			fmt.Fprintln(w, "  (no --trust-anchor was given: pass the device maker's root CA to verify the chain)")
		}
		return nil
	}
	_, err := fmt.Fprintln(w, "Result: PASS")
	return err
}

// attestIdentity writes the "Device" row (and the sysfs facts of a BDF).
func attestIdentity(tw io.Writer, id attest.Identity) {
	who := id.BDF
	if id.Socket != "" {
		who = "spdm-socket " + id.Socket
	}
	fmt.Fprintf(tw, "Device\t%s [%04x:%04x] class %06x rev %02x", who, id.VendorID, id.DeviceID, id.Class, id.Revision)
	if id.FromCMASAN {
		fmt.Fprint(tw, " (IDs from the certificate's CMA SAN)")
	}
	fmt.Fprintln(tw)
	if id.BDF == "" {
		return
	}
	drv := id.Driver
	if drv == "" {
		drv = "(none)"
	}
	grp := "(none)"
	if id.IOMMUGroup != nil {
		grp = strconv.Itoa(*id.IOMMUGroup)
	}
	dsn := "(none)"
	if id.DSN != nil {
		dsn = fmt.Sprintf("%016x", *id.DSN)
	}
	fmt.Fprintf(tw, "\tdriver %s, IOMMU group %s, DSN %s\n", drv, grp, dsn)
}

// attestChain writes one slot's chain: verification, anchor, CMA SAN, certificates.
func attestChain(tw io.Writer, c attest.ChainState) {
	v := "verified"
	if !c.Verified {
		v = "NOT verified (" + c.ErrorKind + "): " + c.Error
	}
	fmt.Fprintf(tw, "Slot %d\tchain %s, digest %s\n", c.Slot, v, attestAbbrev(c.Digest, 16))
	if c.AnchorSHA256 != "" {
		fmt.Fprintf(tw, "\tanchor sha256 %s\n", c.AnchorSHA256)
	}
	switch {
	case c.CMASAN != nil:
		m := "real IDs unknown"
		if c.CMASAN.MatchesIdentity != nil {
			m = "matches the function's IDs"
			if !*c.CMASAN.MatchesIdentity {
				m = "DOES NOT match the function's IDs"
			}
		}
		fmt.Fprintf(tw, "\tCMA SAN %s (%s)\n", c.CMASAN.Raw, m)
	case c.CMASANError != "":
		fmt.Fprintf(tw, "\tCMA SAN malformed: %s\n", c.CMASANError)
	default:
		fmt.Fprint(tw, "\tCMA SAN absent\n")
	}
	for i, ci := range c.Certificates {
		fmt.Fprintf(tw, "\t[%d] %s (issuer %s, not after %s)\n", i, ci.Subject, ci.Issuer, ci.NotAfter.Format("2006-01-02"))
	}
}

// attestMeasurements writes the measurement table (nothing when there are none).
func attestMeasurements(w io.Writer, ms []attest.MeasurementBlock) error {
	if len(ms) == 0 {
		return nil
	}
	mw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(mw, "  INDEX\tTYPE\tFORM\tVALUE")
	for _, m := range ms {
		form := "digest"
		if m.Raw {
			form = "raw"
		}
		fmt.Fprintf(mw, "  %d\t%s\t%s\t%s\n", m.Index, m.TypeName, form, attestAbbrev(hex.EncodeToString(m.Value), 64))
	}
	return mw.Flush()
}

func attestVerified(b bool) string {
	if b {
		return "verified"
	}
	return "NOT verified"
}

// attestAbbrev is s cut to n bytes with "…" when longer.
func attestAbbrev(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

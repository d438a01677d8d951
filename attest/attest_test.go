package attest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/doe/socket"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// fixture is a sysfs tree whose functions' config spaces are served by
// software devices (or plain byte slices).
type fixture struct {
	*gatetest.Devices
	sys *pci.System
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fx := &fixture{Devices: gatetest.NewDevices(t)}
	var err error
	fx.sys, err = pci.Open(fx.Tree.Dir, &pci.Options{Geteuid: func() int { return 0 }, ConfigOpener: fx.Open})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fx.sys.Close() })
	return fx
}

func TestFunctionGood(t *testing.T) {
	fx := newFixture(t)
	d, bdf := fx.AddEmu(t, "0000:01:00.0", emu.Config{})
	ev, err := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors()})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Failure != nil {
		t.Fatalf("failure: %+v", ev.Failure)
	}
	id := d.Identity()
	if ev.Identity.BDF != "0000:01:00.0" || ev.Identity.VendorID != id.Vendor || ev.Identity.DeviceID != id.Device ||
		ev.Identity.Class != id.Class || ev.Identity.DSN == nil || *ev.Identity.DSN != id.DSN || ev.Identity.IOMMUGroup == nil {
		t.Errorf("identity %+v", ev.Identity)
	}
	if !ev.HasCMA || len(ev.DOE) != 1 || len(ev.DOE[0].Features) < 2 || ev.DOE[0].Features[1] != "cma-spdm" {
		t.Errorf("doe %+v", ev.DOE)
	}
	if ev.Version != "1.3" || ev.Algorithms.BaseAsym != "ecdsa-p384" || ev.Algorithms.BaseHash == "" || ev.Algorithms.MeasurementHash == "" {
		t.Errorf("version %q algorithms %+v", ev.Version, ev.Algorithms)
	}
	if len(ev.Chains) != 1 {
		t.Fatalf("chains %+v", ev.Chains)
	}
	c := ev.Chains[0]
	anchor := sha256.Sum256(d.Anchors()[0].Raw)
	if !c.Verified || c.Error != "" || c.AnchorSHA256 != hex.EncodeToString(anchor[:]) || len(c.Certificates) != 3 || len(c.Chain) != 3 {
		t.Errorf("chain %+v", c)
	}
	if c.CMASAN == nil || c.CMASAN.Raw != id.CMAName() || c.CMASAN.MatchesIdentity == nil || !*c.CMASAN.MatchesIdentity {
		t.Errorf("CMA SAN %+v", c.CMASAN)
	}
	if !ev.ChallengeVerified || !ev.MeasurementsSignatureVerified {
		t.Errorf("challenge %v measurements %v", ev.ChallengeVerified, ev.MeasurementsSignatureVerified)
	}
	if len(ev.Measurements) != len(emu.GoodMeasurements()) {
		t.Errorf("%d measurements", len(ev.Measurements))
	}
	b := ev.Bundle
	if len(b.ChallengeNonce) != 32 || len(b.MeasurementNonce) != 32 || len(b.ChallengeSignature) == 0 ||
		len(b.MeasurementSignature) == 0 || len(b.ChallengeTranscript) == 0 || len(b.MeasurementTranscript) == 0 ||
		len(b.CertChainBuffer) == 0 || bytes.Equal(b.ChallengeNonce, b.MeasurementNonce) {
		t.Errorf("bundle %+v", b)
	}
	if ev.RoundTrips < 6 || ev.BytesSent == 0 || ev.BytesRecv == 0 || ev.Duration <= 0 || len(ev.Timings) < 5 {
		t.Errorf("round trips %d bytes %d/%d duration %v timings %v", ev.RoundTrips, ev.BytesSent, ev.BytesRecv, ev.Duration, ev.Timings)
	}
	// Digest is SHA-256 of the canonical JSON and changes with the content.
	js, err := ev.CanonicalJSON()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(js)
	if !bytes.Equal(ev.Digest(), sum[:]) {
		t.Error("Digest is not SHA-256 of CanonicalJSON")
	}
	var back attest.Evidence
	if err := json.Unmarshal(js, &back); err != nil || !bytes.Equal(back.Digest(), ev.Digest()) {
		t.Errorf("evidence does not survive a JSON round trip: %v", err)
	}
	d0 := ev.Digest()
	ev.RoundTrips++
	if bytes.Equal(d0, ev.Digest()) {
		t.Error("digest does not depend on the content")
	}
}

func TestFunctionWithoutAnchorIsUnverified(t *testing.T) {
	fx := newFixture(t)
	_, bdf := fx.AddEmu(t, "0000:01:00.0", emu.Config{})
	ev, err := attest.Function(context.Background(), fx.sys, bdf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Failure == nil || ev.Failure.Kind != attest.FailChain || len(ev.Chains) != 1 || ev.Chains[0].Verified ||
		ev.Chains[0].ErrorKind != attest.ChainErrorUntrusted || ev.Chains[0].Error == "" {
		t.Fatalf("failure %+v chains %+v", ev.Failure, ev.Chains)
	}
	// Signatures are still checked against the leaf key and reported.
	if !ev.ChallengeVerified || !ev.MeasurementsSignatureVerified || len(ev.Measurements) == 0 {
		t.Errorf("challenge %v measurements %v", ev.ChallengeVerified, ev.MeasurementsSignatureVerified)
	}
}

func TestFunctionFaults(t *testing.T) {
	cases := []struct {
		fault emu.Fault
		v     spdm.Version
		kind  attest.Kind // FailUnknown = no failure
		check func(t *testing.T, ev *attest.Evidence)
	}{
		{fault: emu.FaultBadSignature, v: spdm.Version12, kind: attest.FailSignature},
		{fault: emu.FaultWrongNonce, v: spdm.Version12, kind: attest.FailSignature},
		{fault: emu.FaultWrongNonce, v: spdm.Version13, kind: attest.FailNonce},
		{fault: emu.FaultWrongCertChainHash, v: spdm.Version12, kind: attest.FailSignature},
		{fault: emu.FaultWrongRoot, v: spdm.Version12, kind: attest.FailChain, check: chainKind(attest.ChainErrorUntrusted)},
		{fault: emu.FaultExpiredLeaf, v: spdm.Version12, kind: attest.FailChain, check: chainKind(attest.ChainErrorExpired)},
		{fault: emu.FaultSANMismatch, v: spdm.Version12, check: func(t *testing.T, ev *attest.Evidence) {
			s := ev.Chains[0].CMASAN
			if !ev.Chains[0].Verified || s == nil || s.MatchesIdentity == nil || *s.MatchesIdentity {
				t.Errorf("SAN %+v must be present and not match", s)
			}
		}},
		{fault: emu.FaultNoSAN, v: spdm.Version12, check: func(t *testing.T, ev *attest.Evidence) {
			if !ev.Chains[0].Verified || ev.Chains[0].CMASAN != nil {
				t.Errorf("chain %+v: verified without SAN expected", ev.Chains[0])
			}
		}},
		{fault: emu.FaultTruncated, v: spdm.Version12, kind: attest.FailProtocol},
		{fault: emu.FaultOversize, v: spdm.Version12, kind: attest.FailProtocol},
		{fault: emu.FaultWrongResponseCode, v: spdm.Version12, kind: attest.FailProtocol},
		{fault: emu.FaultNotReadyForever, v: spdm.Version12, kind: attest.FailProtocol},
		{fault: emu.FaultBusyStorm, v: spdm.Version12, kind: attest.FailProtocol},
		{fault: emu.FaultChangingMeasurements, v: spdm.Version12},
		{fault: emu.FaultNotReadyOnce, v: spdm.Version12},
		{fault: emu.FaultBusyOnce, v: spdm.Version13},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s", tc.fault, tc.v), func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t)
			d, bdf := fx.AddEmu(t, "0000:02:00.0", emu.Config{Versions: []spdm.Version{tc.v}, Faults: []emu.Fault{tc.fault},
				Algorithms: spdm.AsymECDSAP256})
			ev, err := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors(), Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.kind == attest.FailUnknown && ev.Failure != nil:
				t.Fatalf("unexpected failure %+v", ev.Failure)
			case tc.kind != attest.FailUnknown && (ev.Failure == nil || ev.Failure.Kind != tc.kind):
				t.Fatalf("failure %+v, want kind %s", ev.Failure, tc.kind)
			case tc.kind != attest.FailUnknown && ev.Failure.Message == "":
				t.Fatal("failure without a message")
			}
			if tc.kind == attest.FailUnknown && (!ev.ChallengeVerified || !ev.MeasurementsSignatureVerified) {
				t.Errorf("legal device: challenge %v measurements %v", ev.ChallengeVerified, ev.MeasurementsSignatureVerified)
			}
			if tc.kind == attest.FailSignature && ev.ChallengeVerified && ev.MeasurementsSignatureVerified {
				t.Error("signature failure but both signatures reported verified")
			}
			if tc.check != nil {
				tc.check(t, ev)
			}
		})
	}
}

func chainKind(kind string) func(t *testing.T, ev *attest.Evidence) {
	return func(t *testing.T, ev *attest.Evidence) {
		t.Helper()
		if len(ev.Chains) != 1 || ev.Chains[0].Verified || ev.Chains[0].ErrorKind != kind {
			t.Errorf("chains %+v, want error kind %s", ev.Chains, kind)
		}
	}
}

func TestFunctionEveryProfile(t *testing.T) {
	// Every named profile ends either clean or in a classified failure
	// (never a panic, never an empty kind).
	for _, p := range emu.Profiles() {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t)
			d, bdf := fx.AddEmu(t, "0000:03:00.0", emu.Config{Profile: p.Name, Algorithms: spdm.AsymECDSAP256})
			ev, err := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors(), Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if ev.Failure != nil && (ev.Failure.Kind == attest.FailUnknown || ev.Failure.Step == "") {
				t.Fatalf("unclassified failure %+v", ev.Failure)
			}
			if p.Name == "good" || p.Name == "tampered" {
				if ev.Failure != nil {
					t.Fatalf("%s: %+v", p.Name, ev.Failure)
				}
			}
		})
	}
}

func TestFunctionTamperedMeasuresDifferently(t *testing.T) {
	fx := newFixture(t)
	dg, good := fx.AddEmu(t, "0000:01:00.0", emu.Config{})
	dt, bad := fx.AddEmu(t, "0000:02:00.0", emu.Config{Profile: "tampered"})
	eg, _ := attest.Function(context.Background(), fx.sys, good, &attest.Options{Roots: dg.Anchors()})
	et, _ := attest.Function(context.Background(), fx.sys, bad, &attest.Options{Roots: dt.Anchors()})
	if eg.Failure != nil || et.Failure != nil {
		t.Fatal(eg.Failure, et.Failure)
	}
	diff := 0
	for i := range eg.Measurements {
		if !bytes.Equal(eg.Measurements[i].Value, et.Measurements[i].Value) {
			diff++
		}
	}
	if diff == 0 {
		t.Fatal("tampered device measures like the good one")
	}
}

// memConfig is a config space in memory (a plain function without DOE).
type memConfig []byte

func (m memConfig) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(m)) {
		return 0, io.EOF
	}
	return copy(p, m[off:]), nil
}

func (m memConfig) WriteAt(p []byte, off int64) (int, error) {
	return 0, errors.New("memConfig: write")
}

func TestFunctionNoDOE(t *testing.T) {
	fx := newFixture(t)
	id := emu.DefaultIdentity
	hdr := sysfstest.Header(sysfstest.Function{Vendor: id.Vendor, Device: id.Device, Class: id.Class})
	bdf := fx.Add(t, "0000:04:00.0", id, "", memConfig(hdr))
	ev, err := attest.Function(context.Background(), fx.sys, bdf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Failure == nil || ev.Failure.Kind != attest.FailNoDOE || ev.HasCMA || len(ev.DOE) != 0 {
		t.Fatalf("%+v", ev.Failure)
	}
}

func TestFunctionDOEWithoutCMA(t *testing.T) {
	fx := newFixture(t)
	id := emu.DefaultIdentity
	m := doe.NewModel([]doe.Feature{doe.FeatureCXLCDAT}, nil)
	bdf := fx.Add(t, "0000:05:00.0", id, "", emu.NewConfigSpace(id, m))
	ev, err := attest.Function(context.Background(), fx.sys, bdf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Failure == nil || ev.Failure.Kind != attest.FailNoCMA || ev.HasCMA || len(ev.DOE) != 1 ||
		fmt.Sprint(ev.DOE[0].Features) != "[discovery cxl-cdat]" {
		t.Fatalf("failure %+v doe %+v", ev.Failure, ev.DOE)
	}
}

func TestFunctionDriverOwnsMailbox(t *testing.T) {
	fx := newFixture(t)
	b, _ := pci.ParseBDF("0000:06:00.0")
	d, err := emu.New(emu.Config{BDF: b, Algorithms: spdm.AsymECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	bdf := fx.Add(t, b.String(), d.Identity(), "cxl_pci", d)
	ev, err := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors()})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Failure == nil || ev.Failure.Kind != attest.FailMailboxOwned || ev.Identity.Driver != "cxl_pci" {
		t.Fatalf("%+v", ev.Failure)
	}
	if st := d.Model().Stats(); st.Reads != 0 || st.Writes != 0 || d.Requests() != 0 {
		t.Fatalf("mailbox touched while cxl_pci owns it: %+v, %d SPDM requests", st, d.Requests())
	}
	if len(ev.DOE) != 1 || len(ev.DOE[0].Features) != 0 {
		t.Errorf("capability must be listed without discovery: %+v", ev.DOE)
	}
}

func TestFunctionTSMOwnsMailbox(t *testing.T) {
	fx := newFixture(t)
	d, bdf := fx.AddEmu(t, "0000:06:00.0", emu.Config{})
	if err := fx.Tree.Attr(bdf.String(), "tsm/connect", "tsm0\n"); err != nil {
		t.Fatal(err)
	}
	ev, _ := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors()})
	if ev.Failure == nil || ev.Failure.Kind != attest.FailMailboxOwned || d.Model().Stats().Writes != 0 {
		t.Fatalf("%+v", ev.Failure)
	}
}

func TestFunctionLockdown(t *testing.T) {
	fx := newFixture(t)
	d, bdf := fx.AddEmu(t, "0000:07:00.0", emu.Config{})
	if err := fx.Tree.Lockdown("integrity"); err != nil {
		t.Fatal(err)
	}
	ev, err := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors()})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Failure == nil || ev.Failure.Kind != attest.FailLockdown || d.Model().Stats().Writes != 0 {
		t.Fatalf("%+v", ev.Failure)
	}
}

func TestFunctionBusyMailbox(t *testing.T) {
	fx := newFixture(t)
	d, bdf := fx.AddEmu(t, "0000:08:00.0", emu.Config{})
	d.Model().SetFault(doe.Fault{StuckBusy: true})
	ev, err := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors(),
		DOE: &doe.Options{Timeout: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Failure == nil || ev.Failure.Kind != attest.FailMailboxBusy {
		t.Fatalf("%+v", ev.Failure)
	}
}

func TestFunctionMailboxErrorIsTransport(t *testing.T) {
	fx := newFixture(t)
	d, bdf := fx.AddEmu(t, "0000:08:00.0", emu.Config{})
	d.Model().SetFault(doe.Fault{Error: true})
	ev, _ := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors()})
	if ev.Failure == nil || ev.Failure.Kind != attest.FailTransport {
		t.Fatalf("%+v", ev.Failure)
	}
}

func TestFunctionTimeout(t *testing.T) {
	fx := newFixture(t)
	d, bdf := fx.AddEmu(t, "0000:09:00.0", emu.Config{Latency: 300 * time.Millisecond})
	start := time.Now()
	ev, err := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors(), Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Failure == nil || ev.Failure.Kind != attest.FailTimeout {
		t.Fatalf("%+v", ev.Failure)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("timeout took %v", el)
	}
}

func TestFunctionNoSuchDevice(t *testing.T) {
	fx := newFixture(t)
	b, _ := pci.ParseBDF("0000:0a:00.0")
	ev, err := attest.Function(context.Background(), fx.sys, b, nil)
	if ev != nil || !errors.Is(err, pci.ErrNoDevice) {
		t.Fatalf("ev %v err %v", ev, err)
	}
}

func TestFunctionSlotNotProvisioned(t *testing.T) {
	fx := newFixture(t)
	d, bdf := fx.AddEmu(t, "0000:0b:00.0", emu.Config{})
	slot := uint8(3)
	ev, _ := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors(), Slot: &slot})
	if ev.Failure == nil || ev.Failure.Kind != attest.FailChain || ev.ChallengeVerified {
		t.Fatalf("%+v", ev.Failure)
	}
}

func TestFunctionFloors(t *testing.T) {
	fx := newFixture(t)
	d, bdf := fx.AddEmu(t, "0000:0c:00.0", emu.Config{Algorithms: emu.AllAlgorithms, Versions: []spdm.Version{spdm.Version11, spdm.Version12}})
	ev, _ := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors(), MinVersion: "1.2",
		AsymAlgos: []string{"ed25519"}, HashAlgos: []string{"sha-512"}})
	if ev.Failure != nil || ev.Version != "1.2" || ev.Algorithms.BaseAsym != "ed25519" || ev.Algorithms.BaseHash != "sha-512" {
		t.Fatalf("%+v %s %+v", ev.Failure, ev.Version, ev.Algorithms)
	}
	// A floor the device cannot meet is a protocol failure, not a downgrade.
	ev, _ = attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors(), MinVersion: "1.3"})
	if ev.Failure == nil || ev.Failure.Kind != attest.FailProtocol || ev.Failure.Step != "version" {
		t.Fatalf("%+v", ev.Failure)
	}
	ev, _ = attest.Function(context.Background(), fx.sys, bdf, &attest.Options{AsymAlgos: []string{"no-such"}})
	if ev.Failure == nil {
		t.Fatal("unknown algorithm name accepted")
	}
}

func TestTransportDirect(t *testing.T) {
	d, err := emu.New(emu.Config{Algorithms: spdm.AsymECDSAP384})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := attest.Transport(context.Background(), d.Direct(), attest.Identity{Socket: "direct"}, &attest.Options{Roots: d.Anchors()})
	if err != nil {
		t.Fatal(err)
	}
	id := d.Identity()
	if ev.Failure != nil || !ev.Identity.FromCMASAN || ev.Identity.VendorID != id.Vendor || ev.Identity.DeviceID != id.Device ||
		!ev.ChallengeVerified || !ev.MeasurementsSignatureVerified {
		t.Fatalf("failure %+v identity %+v", ev.Failure, ev.Identity)
	}
	// Operator-given vendor:device that agree with the SAN match (class and
	// the rest are unknown, so not compared).
	ev, _ = attest.Transport(context.Background(), d.Direct(), attest.Identity{VendorID: id.Vendor, DeviceID: id.Device}, &attest.Options{Roots: d.Anchors()})
	if s := ev.Chains[0].CMASAN; ev.Identity.FromCMASAN || s == nil || s.MatchesIdentity == nil || !*s.MatchesIdentity {
		t.Fatalf("identity %+v SAN %+v", ev.Identity, s)
	}
	// With operator-given IDs that differ, the SAN does not match.
	ev, _ = attest.Transport(context.Background(), d.Direct(), attest.Identity{VendorID: 0x8086, DeviceID: 0x1}, &attest.Options{Roots: d.Anchors()})
	if s := ev.Chains[0].CMASAN; ev.Identity.FromCMASAN || s == nil || s.MatchesIdentity == nil || *s.MatchesIdentity {
		t.Fatalf("identity %+v SAN %+v", ev.Identity, s)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		kind attest.Kind
	}{
		{fmt.Errorf("x: %w", doe.ErrMailboxBusy), attest.FailMailboxBusy},
		{fmt.Errorf("x: %w: %w", doe.ErrTimeout, context.DeadlineExceeded), attest.FailTimeout},
		{fmt.Errorf("x: %w", pci.ErrDeviceRemoved), attest.FailDeviceGone},
		{fmt.Errorf("x: %w", doe.ErrMailboxError), attest.FailTransport},
		{&doe.ProtocolError{Field: "Length"}, attest.FailTransport},
		{io.ErrUnexpectedEOF, attest.FailTransport},
		{&spdm.ResponderError{Code: spdm.ErrorCodeBusy}, attest.FailProtocol},
		{&spdm.DecodeError{Msg: "DIGESTS"}, attest.FailProtocol},
		{&spdm.ProtocolError{Reason: "RequesterContext not echoed", Err: spdm.ErrNonceNotEchoed}, attest.FailNonce},
		{fmt.Errorf("x: %w", spdm.ErrNonceNotEchoed), attest.FailNonce},
		// The sentinel decides, never the text: a reason that mentions a
		// nonce is still a plain protocol violation.
		{&spdm.ProtocolError{Reason: "bad nonce length"}, attest.FailProtocol},
		{fmt.Errorf("x: %w", pci.ErrTSMOwnsMailbox), attest.FailMailboxOwned},
		{&spdm.VerificationError{Step: "challenge-signature", Err: errors.New("bad")}, attest.FailSignature},
		{&spdm.VerificationError{Step: "digest", Err: errors.New("bad")}, attest.FailChain},
		{errors.New("something new"), attest.FailProtocol},
	} {
		if got := attest.Classify(tc.err); got != tc.kind {
			t.Errorf("Classify(%v) = %q, want %q", tc.err, got, tc.kind)
		}
	}
}

func TestTransportSocket(t *testing.T) {
	for _, p := range []struct {
		profile string
		kind    attest.Kind
	}{{"good", attest.FailUnknown}, {"bad-signature", attest.FailSignature}, {"wrong-root", attest.FailChain}} {
		t.Run(p.profile, func(t *testing.T) {
			d, err := emu.New(emu.Config{Algorithms: spdm.AsymECDSAP384, Profile: p.profile})
			if err != nil {
				t.Fatal(err)
			}
			addr := gatetest.ServeSocket(t, d)
			ctx := context.Background()
			c, err := socket.Dial(ctx, addr)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := attest.Transport(ctx, c.Exchanger(doe.FeatureCMA), attest.Identity{Socket: addr}, &attest.Options{Roots: d.Anchors()})
			if cerr := c.Close(); cerr != nil {
				t.Errorf("close (SHUTDOWN): %v", cerr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.kind == attest.FailUnknown {
				if ev.Failure != nil || !ev.ChallengeVerified || !ev.MeasurementsSignatureVerified || len(ev.Measurements) == 0 ||
					ev.Identity.Socket != addr || !ev.Identity.FromCMASAN || ev.Identity.VendorID != d.Identity().Vendor {
					t.Fatalf("failure %+v identity %+v", ev.Failure, ev.Identity)
				}
				return
			}
			if ev.Failure == nil || ev.Failure.Kind != p.kind {
				t.Fatalf("failure %+v, want %s", ev.Failure, p.kind)
			}
		})
	}
}

func TestTransportSocketPeerGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close() // hang up at once
		}
	}()
	defer ln.Close()
	c, err := socket.Dial(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ev, err := attest.Transport(context.Background(), c.Exchanger(doe.FeatureCMA), attest.Identity{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Failure == nil || ev.Failure.Kind != attest.FailTransport {
		t.Fatalf("%+v", ev.Failure)
	}
}

// refuseAll answers GET_MEASUREMENTS for "all indices" with ERROR
// InvalidRequest, as devices that only serve single indices do.
type refuseAll struct {
	t       spdm.Transport
	refused int
}

func (r *refuseAll) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	if len(req) >= 4 && req[1] == 0xE0 && req[3] == 0xFF {
		r.refused++
		return []byte{req[0], 0x7F, byte(spdm.ErrorCodeInvalidRequest), 0}, nil
	}
	return r.t.Exchange(ctx, req)
}

func TestTransportMeasurementsOneByOne(t *testing.T) {
	d, err := emu.New(emu.Config{Algorithms: spdm.AsymECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	tr := &refuseAll{t: d.Direct()}
	ev, err := attest.Transport(context.Background(), tr, attest.Identity{}, &attest.Options{Roots: d.Anchors()})
	if err != nil {
		t.Fatal(err)
	}
	if tr.refused != 1 || ev.Failure != nil || !ev.MeasurementsOneByOne || !ev.MeasurementsSignatureVerified ||
		len(ev.Measurements) != len(emu.GoodMeasurements()) {
		t.Fatalf("refused %d failure %+v one-by-one %v signed %v blocks %d", tr.refused, ev.Failure, ev.MeasurementsOneByOne,
			ev.MeasurementsSignatureVerified, len(ev.Measurements))
	}
}

// vanishing is a config space whose device disappears after `after` writes
// (mid-exchange, as a hot-unplug would).
type vanishing struct {
	pci.ConfigSpace
	writes, after int
}

func (v *vanishing) ReadAt(p []byte, off int64) (int, error) {
	if v.writes >= v.after {
		return 0, fmt.Errorf("%w: read config", pci.ErrDeviceRemoved)
	}
	return v.ConfigSpace.ReadAt(p, off)
}

func (v *vanishing) WriteAt(p []byte, off int64) (int, error) {
	v.writes++
	if v.writes >= v.after {
		return 0, fmt.Errorf("%w: write config", pci.ErrDeviceRemoved)
	}
	return v.ConfigSpace.WriteAt(p, off)
}

func TestFunctionDeviceRemovedMidway(t *testing.T) {
	fx := newFixture(t)
	d, bdf := fx.AddEmu(t, "0000:0d:00.0", emu.Config{})
	// Discovery takes a handful of writes; SPDM VCA many more.
	fx.Configs[bdf] = &vanishing{ConfigSpace: d, after: 40}
	ev, err := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors()})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Failure == nil || ev.Failure.Kind != attest.FailDeviceGone || !ev.HasCMA {
		t.Fatalf("%+v has_cma %v", ev.Failure, ev.HasCMA)
	}
}

func TestFunctionChainCache(t *testing.T) {
	fx := newFixture(t)
	d, bdf := fx.AddEmu(t, "0000:0e:00.0", emu.Config{})
	cache := &spdm.MapChainCache{}
	o := &attest.Options{Roots: d.Anchors(), ChainCache: cache}
	cold, _ := attest.Function(context.Background(), fx.sys, bdf, o)
	warm, _ := attest.Function(context.Background(), fx.sys, bdf, o)
	if cold.Failure != nil || warm.Failure != nil {
		t.Fatal(cold.Failure, warm.Failure)
	}
	if warm.RoundTrips >= cold.RoundTrips || warm.BytesRecv >= cold.BytesRecv || !warm.Chains[0].Verified ||
		!bytes.Equal(warm.Bundle.CertChainBuffer, cold.Bundle.CertChainBuffer) {
		t.Fatalf("cold %d round trips %d bytes, warm %d round trips %d bytes", cold.RoundTrips, cold.BytesRecv, warm.RoundTrips, warm.BytesRecv)
	}
}

func TestFunctionExplicitSlot(t *testing.T) {
	fx := newFixture(t)
	d, bdf := fx.AddEmu(t, "0000:0f:00.0", emu.Config{})
	slot := uint8(0)
	ev, _ := attest.Function(context.Background(), fx.sys, bdf, &attest.Options{Roots: d.Anchors(), Slot: &slot})
	if ev.Failure != nil || ev.Bundle.Slot != 0 || !ev.ChallengeVerified {
		t.Fatalf("%+v", ev.Failure)
	}
}

package emu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// transports under test: the DOE register model behind config space, and
// (when available) the spdm-socket server. Each returns an spdm.Transport
// and a cleanup.
type transportFunc func(t testing.TB, d *Device) (spdm.Transport, func())

func overDOE(t testing.TB, d *Device) (spdm.Transport, func()) {
	t.Helper()
	mbs, err := doe.Find(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := mbs[0].Discover(context.Background())
	if err != nil || len(fs) != 3 || fs[1] != doe.FeatureCMA || fs[2] != doe.FeatureSecuredCMA {
		t.Fatalf("Discover: %v %v", fs, err)
	}
	return mbs[0].Exchanger(doe.FeatureCMA), func() {}
}

// flow is what one full attestation proved.
type flow struct {
	neg       spdm.Negotiated
	chain     *spdm.ChainReport
	chainErr  error
	challenge *spdm.ChallengeResult
	meas      *spdm.MeasurementsResult
	stats     spdm.Stats
}

// attest runs VCA, digests, certificate, chain verification, CHALLENGE (all
// measurements summary) and signed measurements; it stops at the first
// error except a chain verification failure (recorded, as attest does).
func attest(ctx context.Context, tr spdm.Transport, d *Device, opts spdm.Options) (*flow, error) {
	opts.Roots = d.Anchors()
	r := spdm.NewRequester(tr, &opts)
	f := &flow{}
	var err error
	defer func() { f.stats = r.Stats() }()
	if f.neg, err = r.Negotiate(ctx); err != nil {
		return f, err
	}
	if _, err = r.Digests(ctx); err != nil {
		return f, err
	}
	if _, err = r.Certificate(ctx, 0); err != nil {
		return f, err
	}
	f.chain, f.chainErr = r.VerifyChain(0)
	if f.challenge, err = r.Challenge(ctx, 0, spdm.SummaryAll); err != nil {
		return f, err
	}
	f.meas, err = r.Measurements(ctx, spdm.MeasOpts{Index: spdm.MeasOpAll, Signed: true})
	return f, err
}

var allVersions = []spdm.Version{spdm.Version10, spdm.Version11, spdm.Version12, spdm.Version13}

// families: one algorithm of each kind the device signs with.
var families = []spdm.AsymAlgo{spdm.AsymECDSAP256, spdm.AsymECDSAP384, spdm.AsymECDSAP521,
	spdm.AsymRSASSA2048, spdm.AsymRSAPSS2048, spdm.AsymRSASSA3072, spdm.AsymRSAPSS3072,
	spdm.AsymRSASSA4096, spdm.AsymRSAPSS4096, spdm.AsymEd25519}

func checkGood(t *testing.T, d *Device, f *flow, v spdm.Version, a spdm.AsymAlgo) {
	t.Helper()
	if f.neg.Version != v || f.neg.BaseAsym != a {
		t.Fatalf("negotiated %s %s, want %s %s", f.neg.Version, f.neg.BaseAsym, v, a)
	}
	if f.chainErr != nil || !f.chain.Verified || !slices.ContainsFunc(d.Anchors(), f.chain.Anchor.Equal) {
		t.Fatalf("chain: %v", f.chainErr)
	}
	san := f.chain.CMASAN
	id := d.Identity()
	if san == nil || san.Raw != id.CMAName() || san.VendorID != id.Vendor || san.DeviceID != id.Device || san.DSN == nil || *san.DSN != id.DSN {
		t.Fatalf("CMA SAN %+v, want %s", san, id.CMAName())
	}
	if !san.Matches(id.FunctionID()) || spdm.CMASANFor(id.FunctionID()) != id.CMAName() {
		t.Fatalf("spdm and emu disagree on the CMA SAN of %+v", id)
	}
	if !f.challenge.Verified || !f.meas.Verified || !f.meas.Signed {
		t.Fatalf("challenge %v measurements %v", f.challenge.Verified, f.meas.Verified)
	}
	if len(f.meas.Blocks) != len(GoodMeasurements()) {
		t.Fatalf("%d blocks", len(f.meas.Blocks))
	}
	// The summary hash in CHALLENGE_AUTH covers exactly the measurement record.
	sum := f.neg.BaseHash.CryptoHash().New()
	sum.Write(f.meas.Record)
	if !bytes.Equal(sum.Sum(nil), f.challenge.SummaryHash) {
		t.Fatal("measurement summary hash does not match the signed record")
	}
}

func TestAttestEveryVersionAndAlgorithm(t *testing.T) {
	ctx := context.Background()
	for name, tf := range transports() {
		for _, v := range allVersions {
			for _, a := range families {
				if a == spdm.AsymEd25519 && v < spdm.Version12 {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/%s", name, v, a), func(t *testing.T) {
					t.Parallel()
					d, err := New(Config{Algorithms: a, Versions: []spdm.Version{v}})
					if err != nil {
						t.Fatal(err)
					}
					tr, done := tf(t, d)
					defer done()
					f, err := attest(ctx, tr, d, spdm.Options{})
					if err != nil {
						t.Fatal(err)
					}
					checkGood(t, d, f, v, a)
					// Firmware digest (index 2) is the measurement hash of the good image.
					var fw *spdm.MeasurementBlock
					for i := range f.meas.Blocks {
						if f.meas.Blocks[i].Index == 2 {
							fw = &f.meas.Blocks[i]
						}
					}
					h := f.neg.MeasHash.CryptoHash().New()
					h.Write([]byte(firmwareImage))
					if fw == nil || fw.RawBitStream || !bytes.Equal(fw.Value, h.Sum(nil)) {
						t.Fatalf("firmware block %+v", fw)
					}
				})
			}
		}
	}
}

func TestAttestRequesterChoosesFromDeviceSet(t *testing.T) {
	// A device with every algorithm and a requester offering two: the
	// device picks one of those two, and the chain matches it.
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := overDOE(t, d)
	f, err := attest(context.Background(), tr, d, spdm.Options{AsymAlgos: spdm.AsymRSAPSS3072 | spdm.AsymEd25519, HashAlgos: spdm.HashSHA512})
	if err != nil {
		t.Fatal(err)
	}
	if f.neg.BaseAsym != spdm.AsymRSAPSS3072 || f.neg.BaseHash != spdm.HashSHA512 || f.neg.Version != spdm.Version13 {
		t.Fatalf("negotiated %+v", f.neg)
	}
	if !f.chain.Verified || f.chain.Anchor.Equal(d.Anchors()[0]) {
		t.Fatal("RSA-3072 chain must verify against the RSA-3072 anchor, not the first (P-256) one")
	}
}

func TestAttestTamperedIsSignedButDifferent(t *testing.T) {
	ctx := context.Background()
	var digests [][]byte
	for _, p := range []string{"good", "tampered"} {
		d, err := New(Config{Algorithms: spdm.AsymECDSAP384, Profile: p})
		if err != nil {
			t.Fatal(err)
		}
		tr, _ := overDOE(t, d)
		f, err := attest(ctx, tr, d, spdm.Options{})
		if err != nil {
			t.Fatal(err)
		}
		checkGood(t, d, f, spdm.Version13, spdm.AsymECDSAP384)
		digests = append(digests, f.meas.Blocks[1].Value)
	}
	if bytes.Equal(digests[0], digests[1]) {
		t.Fatal("tampered firmware measures like the good one")
	}
}

// TestAttestFaults: every injected fault ends in its specific typed error
// (or, for the crypto-valid ones, in the fact that reveals it), with no
// panic and no goroutine left behind.
func TestAttestFaults(t *testing.T) {
	ctx := context.Background()
	type check func(t *testing.T, d *Device, f *flow, err error)
	verr := func(step string) check {
		return func(t *testing.T, _ *Device, _ *flow, err error) {
			var ve *spdm.VerificationError
			if !errors.As(err, &ve) || ve.Step != step {
				t.Fatalf("want VerificationError %s, got %T %v", step, err, err)
			}
		}
	}
	chainErr := func(kind string) check {
		return func(t *testing.T, _ *Device, f *flow, err error) {
			var ce *spdm.ChainError
			var ve *spdm.VerificationError
			if err != nil || !errors.As(f.chainErr, &ve) || !errors.As(f.chainErr, &ce) || ce.Kind != kind || f.chain.Verified {
				t.Fatalf("want chain error %s, got %v (flow err %v)", kind, f.chainErr, err)
			}
		}
	}
	decodeErr := func(t *testing.T, _ *Device, _ *flow, err error) {
		var de *spdm.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("want DecodeError, got %T %v", err, err)
		}
	}
	rspErr := func(code spdm.ErrorCode) check {
		return func(t *testing.T, _ *Device, _ *flow, err error) {
			var re *spdm.ResponderError
			if !errors.As(err, &re) || re.Code != code || !errors.Is(err, code) {
				t.Fatalf("want ResponderError %s, got %T %v", code, err, err)
			}
		}
	}
	ok := func(t *testing.T, d *Device, f *flow, err error) {
		if err != nil {
			t.Fatal(err)
		}
		checkGood(t, d, f, f.neg.Version, f.neg.BaseAsym)
	}
	cases := []struct {
		fault Fault
		v     spdm.Version
		check check
	}{
		{FaultBadSignature, spdm.Version12, verr("challenge-signature")},
		{FaultBadSignature, spdm.Version11, verr("challenge-signature")},
		{FaultWrongNonce, spdm.Version12, verr("challenge-signature")},
		{FaultWrongNonce, spdm.Version13, func(t *testing.T, _ *Device, _ *flow, err error) {
			var pe *spdm.ProtocolError
			if !errors.As(err, &pe) || pe.Request != spdm.RequestChallenge {
				t.Fatalf("want ProtocolError on CHALLENGE, got %T %v", err, err)
			}
		}},
		{FaultWrongCertChainHash, spdm.Version12, verr("cert-chain-hash")},
		{FaultWrongRoot, spdm.Version12, chainErr(spdm.ChainErrorUntrusted)},
		{FaultExpiredLeaf, spdm.Version12, chainErr(spdm.ChainErrorExpired)},
		{FaultSANMismatch, spdm.Version12, func(t *testing.T, d *Device, f *flow, err error) {
			if err != nil || f.chainErr != nil || f.chain.CMASAN == nil || f.chain.CMASAN.DeviceID == d.Identity().Device ||
				f.chain.CMASAN.VendorID != d.Identity().Vendor || f.chain.CMASAN.Matches(d.Identity().FunctionID()) {
				t.Fatalf("want a verified chain whose SAN names another device: %v %v %+v", err, f.chainErr, f.chain.CMASAN)
			}
		}},
		{FaultNoSAN, spdm.Version12, func(t *testing.T, _ *Device, f *flow, err error) {
			if err != nil || f.chainErr != nil || !f.chain.Verified || f.chain.CMASAN != nil || f.chain.CMASANError != nil {
				t.Fatalf("want verified chain without SAN: %v %v %+v", err, f.chainErr, f.chain.CMASAN)
			}
		}},
		{FaultTruncated, spdm.Version12, decodeErr},
		{FaultOversize, spdm.Version12, decodeErr},
		{FaultWrongResponseCode, spdm.Version12, func(t *testing.T, _ *Device, _ *flow, err error) {
			var pe *spdm.ProtocolError
			var de *spdm.DecodeError
			if !errors.As(err, &pe) && !errors.As(err, &de) {
				t.Fatalf("want ProtocolError or DecodeError, got %T %v", err, err)
			}
		}},
		{FaultNotReadyForever, spdm.Version12, func(t *testing.T, _ *Device, _ *flow, err error) {
			// The requester gives up after its bounded RESPOND_IF_READY rounds.
			var pe *spdm.ProtocolError
			if !errors.As(err, &pe) || pe.Request != spdm.RequestChallenge {
				t.Fatalf("want ProtocolError on CHALLENGE, got %T %v", err, err)
			}
		}},
		{FaultBusyStorm, spdm.Version12, rspErr(spdm.ErrorCodeBusy)},
		{FaultNotReadyOnce, spdm.Version12, ok},
		{FaultNotReadyOnce, spdm.Version10, ok},
		{FaultBusyOnce, spdm.Version13, ok},
		{FaultChangingMeasurements, spdm.Version12, func(t *testing.T, _ *Device, f *flow, err error) {
			// Everything verifies, but the summary signed in CHALLENGE_AUTH
			// no longer matches the signed measurements read after it.
			if err != nil || !f.challenge.Verified || !f.meas.Verified {
				t.Fatalf("%v", err)
			}
			sum := f.neg.BaseHash.CryptoHash().New()
			sum.Write(f.meas.Record)
			if bytes.Equal(sum.Sum(nil), f.challenge.SummaryHash) {
				t.Fatal("measurements did not change between CHALLENGE and GET_MEASUREMENTS")
			}
		}},
	}
	for name, tf := range transports() {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%s/%s", name, tc.fault, tc.v), func(t *testing.T) {
				before := runtime.NumGoroutine()
				d, err := New(Config{Algorithms: spdm.AsymECDSAP256, Versions: []spdm.Version{tc.v}, Faults: []Fault{tc.fault}})
				if err != nil {
					t.Fatal(err)
				}
				tr, done := tf(t, d)
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				f, err := attest(cctx, tr, d, spdm.Options{})
				cancel()
				done()
				tc.check(t, d, f, err)
				noLeak(t, before)
			})
		}
	}
}

func TestAttestChangingMeasurements(t *testing.T) {
	d, err := New(Config{Algorithms: spdm.AsymEd25519, Faults: []Fault{FaultChangingMeasurements}})
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := overDOE(t, d)
	opts := spdm.Options{Roots: d.Anchors()}
	r := spdm.NewRequester(tr, &opts)
	ctx := context.Background()
	if _, err := r.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Certificate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	a, err := r.Measurements(ctx, spdm.MeasOpts{Index: spdm.MeasOpAll, Signed: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Measurements(ctx, spdm.MeasOpts{Index: spdm.MeasOpAll, Signed: true})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Verified || !b.Verified || bytes.Equal(a.Record, b.Record) || a.ContentChanged != 2 || b.ContentChanged != 1 {
		t.Fatalf("content changed %d then %d, records equal %v", a.ContentChanged, b.ContentChanged, bytes.Equal(a.Record, b.Record))
	}
}

// noLeak waits briefly for goroutines to wind down to the starting count.
func noLeak(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAttestSmallDataTransferSize: a requester that takes at most 256
// bytes per message gets large responses through CHUNK_GET when both sides
// chunk, and certificate portions cut to fit when it does not.
func TestAttestSmallDataTransferSize(t *testing.T) {
	ctx := context.Background()
	for _, chunk := range []bool{true, false} {
		for _, v := range []spdm.Version{spdm.Version12, spdm.Version13} {
			t.Run(fmt.Sprintf("chunk=%v/%s", chunk, v), func(t *testing.T) {
				d, err := New(Config{Algorithms: spdm.AsymECDSAP256 | spdm.AsymRSAPSS4096, Versions: []spdm.Version{v}})
				if err != nil {
					t.Fatal(err)
				}
				tr, _ := overDOE(t, d)
				flags := spdm.CapCert | spdm.CapChal
				// RSA-4096: 512-byte signatures, CHALLENGE_AUTH and MEASUREMENTS exceed 256 bytes.
				asym, dts, minRT := spdm.AsymRSAPSS4096, uint32(256), 12
				if chunk {
					flags |= spdm.CapChunk
				} else {
					// Without chunking every response must fit: P-256 and 512 bytes;
					// the ~1.5 KB chain then takes at least 3 GET_CERTIFICATE.
					asym, dts, minRT = spdm.AsymECDSAP256, 512, 9
				}
				f, err := attest(ctx, tr, d, spdm.Options{AsymAlgos: asym, CapabilityFlags: flags, CTExponent: 20,
					DataTransferSize: dts, MaxSPDMmsgSize: 65536})
				if err != nil {
					t.Fatal(err)
				}
				checkGood(t, d, f, v, asym)
				// Without chunking the chain comes in many portions; with it, the
				// large responses take extra CHUNK_GET round trips.
				if f.stats.RoundTrips < minRT {
					t.Fatalf("%d round trips: small DataTransferSize not honoured", f.stats.RoundTrips)
				}
			})
		}
	}
}

// TestAttestOneByOne: count, unsigned reads of each index (absent ones are
// InvalidRequest and reset L1), the last one signed over all of them; with
// raw bit streams (1.2+) the digests become the measured values.
func TestAttestOneByOne(t *testing.T) {
	ctx := context.Background()
	for _, v := range allVersions {
		for _, raw := range []bool{false, true} {
			if raw && v < spdm.Version12 {
				continue
			}
			t.Run(fmt.Sprintf("%s/raw=%v", v, raw), func(t *testing.T) {
				d, err := New(Config{Algorithms: spdm.AsymECDSAP384, Versions: []spdm.Version{v}})
				if err != nil {
					t.Fatal(err)
				}
				tr, _ := overDOE(t, d)
				r := spdm.NewRequester(tr, &spdm.Options{Roots: d.Anchors()})
				if _, err := r.Negotiate(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := r.Digests(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := r.Certificate(ctx, 0); err != nil {
					t.Fatal(err)
				}
				blocks, last, err := r.MeasurementsOneByOne(ctx, spdm.MeasOpts{Signed: true, RawBitStream: raw})
				if err != nil {
					t.Fatal(err)
				}
				good := GoodMeasurements()
				if len(blocks) != len(good) || !last.Verified || last.Blocks[0].Index != 0xFE {
					t.Fatalf("%d blocks, last verified %v", len(blocks), last.Verified)
				}
				for i, b := range blocks {
					if b.Index != good[i].Index || b.Type != good[i].Type {
						t.Errorf("block %d: index %d type %d", i, b.Index, b.Type)
					}
					if raw && (!b.RawBitStream || !bytes.Equal(b.Value, good[i].Value)) {
						t.Errorf("block %d not raw: %x", b.Index, b.Value)
					}
				}
			})
		}
	}
}

// TestAttestSlots: a device with three slots lists them all; each chain
// reads, verifies against the same anchor, and signs CHALLENGE_AUTH.
func TestAttestSlots(t *testing.T) {
	ctx := context.Background()
	d, err := New(Config{Algorithms: spdm.AsymECDSAP384, Slots: 3})
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := overDOE(t, d)
	r := spdm.NewRequester(tr, &spdm.Options{Roots: d.Anchors()})
	if _, err := r.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	dg, err := r.Digests(ctx)
	if err != nil || dg.SlotMask != 0x07 {
		t.Fatalf("digests %+v %v", dg, err)
	}
	for slot := uint8(0); slot < 3; slot++ {
		cc, err := r.Certificate(ctx, slot)
		if err != nil {
			t.Fatal(err)
		}
		want := d.SlotChains(int(slot))[0].Leaf().Raw
		if !bytes.Equal(cc.Certs[len(cc.Certs)-1], want) {
			t.Fatalf("slot %d leaf differs", slot)
		}
		if rep, err := r.VerifyChain(slot); err != nil || !rep.Verified {
			t.Fatalf("slot %d chain: %v", slot, err)
		}
		if ch, err := r.Challenge(ctx, slot, spdm.SummaryNone); err != nil || !ch.Verified || ch.Slot != slot {
			t.Fatalf("slot %d challenge: %v", slot, err)
		}
	}
	if bytes.Equal(dg.Digests[0], dg.Digests[1]) {
		t.Fatal("slots 0 and 1 have the same digest")
	}
	if _, err := New(Config{Slots: 9}); err == nil {
		t.Fatal("9 slots accepted")
	}
}

package spdm

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
)

// TestProvisionedPublicKey: a responder whose key is pre-provisioned
// (PUB_KEY_ID_CAP, no certificates) is challenged, measured and keyed with
// SlotID 0xFF by a requester that holds its public key. DSP0274 1.2.0
// §10.8 (CHALLENGE_AUTH SlotID 0xF, empty slot mask, CertChainHash = hash
// of the public key), §10.11 (SlotIDParam 0xF), §10.16 (Ct = hash of the
// public key).
func TestProvisionedPublicKey(t *testing.T) {
	ctx := context.Background()
	for _, v := range []Version{Version11, Version12, Version13} {
		t.Run(v.String(), func(t *testing.T) {
			r := rspTestResponder(t, AsymECDSAP384, func(c *ResponderConfig) {
				c.PublicKeyOnly = true
				c.Session = ResponderSessionConfig{DHE: DHESECP384R1}
			})
			pub := rspKey(t, AsymECDSAP384).key.Public()
			o := &Options{ResponderPublicKey: pub, MinVersion: v, MaxVersion: v}
			EnableSessions(o, false)
			req := NewRequester(loopPlain{r}, o)
			n, err := req.Negotiate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n.Caps&CapPubKeyID == 0 || n.Caps&CapCert != 0 {
				t.Fatalf("caps %v: want PUB_KEY_ID_CAP without CERT_CAP", CapabilityNames(n.Caps))
			}
			if _, err := req.Digests(ctx); err == nil {
				t.Fatal("GET_DIGESTS answered by a responder without certificates")
			}
			req = NewRequester(loopPlain{r}, o)
			if _, err := req.Negotiate(ctx); err != nil {
				t.Fatal(err)
			}
			ch, err := req.Challenge(ctx, SlotProvisioned, SummaryAll)
			if err != nil || !ch.Verified {
				t.Fatalf("CHALLENGE 0xFF: %v", err)
			}
			m, err := req.Measurements(ctx, MeasOpts{Index: MeasOpAll, Signed: true, Slot: SlotProvisioned})
			if err != nil || !m.Verified {
				t.Fatalf("GET_MEASUREMENTS 0xF: %v", err)
			}
			s, err := req.KeyExchange(ctx, KeyExchangeOpts{Slot: SlotProvisioned, SecuredTransport: loopSecured{r}})
			if err != nil {
				t.Fatalf("KEY_EXCHANGE 0xFF: %v", err)
			}
			if _, err := s.Measurements(ctx, MeasOpts{Index: 1, Signed: true, Slot: SlotProvisioned}); err != nil {
				t.Fatalf("in-session measurements: %v", err)
			}
			// Another provisioned key does not verify the device.
			other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			bad := NewRequester(loopPlain{r}, &Options{ResponderPublicKey: other.Public(), MinVersion: v, MaxVersion: v})
			if _, err := bad.Negotiate(ctx); err != nil {
				t.Fatal(err)
			}
			var ve *VerificationError
			if _, err := bad.Challenge(ctx, SlotProvisioned, SummaryNone); !errors.As(err, &ve) {
				t.Fatalf("CHALLENGE with the wrong provisioned key: %v", err)
			}
		})
	}
	// A certificate responder refuses slot 0xFF; a provisioned-key responder
	// refuses certificate slots.
	for _, tc := range []struct {
		pubOnly bool
		slot    uint8
	}{{false, 0xFF}, {true, 0}, {true, 0x0F}} {
		r := rspTestResponder(t, AsymECDSAP256, func(c *ResponderConfig) { c.PublicKeyOnly = tc.pubOnly })
		c := &tReq{t: t, r: r, v: Version12}
		c.x((&getVersionReq{}).marshal())
		c.x(rspCapsReq(Version12, 0, CapCert|CapChal, 4096, 4096))
		c.x((&negotiateAlgorithmsReq{Version: Version12, MeasSpec: 1, BaseAsym: AsymECDSAP256, BaseHash: HashSHA256}).marshal())
		if got := errCode(t, c.x((&challengeReq{Version: Version12, Slot: tc.slot}).marshal())); got != ErrorCodeInvalidRequest {
			t.Errorf("public-key-only %v, CHALLENGE slot %#x: %v, want InvalidRequest", tc.pubOnly, tc.slot, got)
		}
	}
	// The requester refuses 0xFF without PUB_KEY_ID_CAP or without a key.
	r := rspTestResponder(t, AsymECDSAP256, nil)
	req := NewRequester(loopPlain{r}, &Options{ResponderPublicKey: rspKey(t, AsymECDSAP256).key.Public()})
	if _, err := req.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	var pe *ProtocolError
	if _, err := req.Challenge(ctx, SlotProvisioned, SummaryNone); !errors.As(err, &pe) {
		t.Fatalf("0xFF against a certificate responder: %v", err)
	}
}

package spdm

import (
	"bytes"
	"context"
	"slices"
	"testing"
)

// recordPlain is loopPlain keeping every request and response it carried.
type recordPlain struct {
	r    *Responder
	msgs *[][]byte
}

func (l recordPlain) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	rsp, err := l.r.Respond(ctx, req)
	*l.msgs = append(*l.msgs, bytes.Clone(req), bytes.Clone(rsp))
	return rsp, err
}

// TestKeyExchangeTranscriptOrder pins the multi-key KEY_EXCHANGE transcript
// independently of transcript.go, which both sides share (so a wrong order
// there would still agree with itself): the KEY_EXCHANGE_RSP signature must
// verify over A ‖ D ‖ Ct ‖ K built here from the bytes on the wire, as
// DSP0274 1.3.0 and libspdm order them.
func TestKeyExchangeTranscriptOrder(t *testing.T) {
	ctx := context.Background()
	r := rspTestResponder(t, AsymECDSAP384, func(c *ResponderConfig) {
		c.MultiKey = MultiKeyOnly
		c.Session = ResponderSessionConfig{DHE: DHESECP384R1}
	})
	o := &Options{MinVersion: Version13, MaxVersion: Version13}
	EnableSessions(o, false)
	var msgs [][]byte
	req := NewRequester(recordPlain{r, &msgs}, o)
	if _, err := req.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	a := bytes.Join(msgs, nil)
	if !bytes.Equal(a, req.VCA()) || len(msgs) != 6 {
		t.Fatalf("VCA() is not the %d VCA messages on the wire", len(msgs))
	}
	if _, err := req.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	d := msgs[len(msgs)-1]
	if _, err := req.Certificate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := req.KeyExchange(ctx, KeyExchangeOpts{Slot: 0, SecuredTransport: loopSecured{r}}); err != nil {
		t.Fatal(err)
	}
	// KEY_EXCHANGE and KEY_EXCHANGE_RSP are the last pair sent in the
	// clear (FINISH goes through the session).
	kq, kp := msgs[len(msgs)-2], msgs[len(msgs)-1]
	if RequestCode(kq[1]) != RequestKeyExchange {
		t.Fatalf("last plain request %#02x, want KEY_EXCHANGE", kq[1])
	}
	kr, err := decodePadded(kp, func(p []byte) (*keyExchangeRsp, error) {
		return decodeKeyExchangeRsp(p, keyExchangeRspShape{exchange: dheSize(DHESECP384R1), hash: HashSHA384.Size(),
			sig: AsymECDSAP384.SignatureSize(), verifyData: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := hashOf(HashSHA384, r.c.slots[0].chainBuf)
	if err != nil {
		t.Fatal(err)
	}
	pub := r.cfg.Keys[0].Signer.Public()
	check := func(name string, th []byte, want bool) {
		t.Helper()
		h, _ := hashOf(HashSHA384, th)
		err := verifySignature(Version13, AsymECDSAP384, HashSHA384, ctxKeyExchange, pub, h, kr.Signature)
		if (err == nil) != want {
			t.Errorf("%s: signature verifies %v, want %v (%v)", name, err == nil, want, err)
		}
	}
	check("A ‖ D ‖ Ct ‖ K", slices.Concat(a, d, ct, kq, kr.unsigned()), true)
	check("A ‖ Ct ‖ D ‖ K", slices.Concat(a, ct, d, kq, kr.unsigned()), false)
	check("A ‖ Ct ‖ K", slices.Concat(a, ct, kq, kr.unsigned()), false)
}

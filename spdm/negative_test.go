package spdm

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Indices in the type-1 message list of v12-p384 (discovery excluded):
// 0–5 VCA, 6/7 DIGESTS, 8/9 CERT 0, 10/11 CERT 1, 12/13 CHALLENGE, …, 20/21 MEASUREMENTS.
func flipAt(reqPos, byteOff int) func(int, []byte) []byte {
	return func(pos int, b []byte) []byte {
		if pos == reqPos {
			b[byteOff] ^= 0x01
		}
		return b
	}
}

func TestReplayNegative(t *testing.T) {
	roots := anchors(t, "ecp384-ca.der", "ecp384-ca1.der")
	var ve *VerificationError
	var pe *ProtocolError
	var de *DecodeError

	// One flipped bit in the CHALLENGE_AUTH signature (last byte before pad).
	f := loadRef(t, "v12-p384")
	rt := newReplay(t, f)
	chLen := rt.msgs[13].SPDMLen
	out, err := replayRun(t, "v12-p384", roots, flipAt(12, chLen-1))
	if !errors.As(err, &ve) || ve.Step != "challenge-signature" {
		t.Fatalf("flipped CHALLENGE_AUTH signature: %v", err)
	}
	// Sticky: the next step fails with the same error without sending.
	sent := out.r.Stats().RoundTrips
	if _, err2 := out.r.Digests(context.Background()); err2 != err || out.r.Stats().RoundTrips != sent {
		t.Fatalf("not sticky: %v", err2)
	}

	// A flipped bit inside M1 (the CHALLENGE_AUTH responder nonce) breaks the signature too.
	if _, err := replayRun(t, "v12-p384", roots, flipAt(12, 4+48+3)); !errors.As(err, &ve) || ve.Step != "challenge-signature" {
		t.Fatalf("flipped nonce: %v", err)
	}
	// CertChainHash that is not the slot's chain.
	if _, err := replayRun(t, "v12-p384", roots, flipAt(12, 4)); !errors.As(err, &ve) || ve.Step != "cert-chain-hash" {
		t.Fatalf("flipped CertChainHash: %v", err)
	}
	// MEASUREMENTS signature.
	mLen := rt.msgs[21].SPDMLen
	if _, err := replayRun(t, "v12-p384", roots, flipAt(20, mLen-1)); !errors.As(err, &ve) || ve.Step != "measurements-signature" {
		t.Fatalf("flipped MEASUREMENTS signature: %v", err)
	}
	// A certificate byte: the chain no longer matches DIGESTS.
	if _, err := replayRun(t, "v12-p384", roots, flipAt(8, 200)); !errors.As(err, &ve) || ve.Step != "digest" {
		t.Fatalf("flipped certificate: %v", err)
	}
	// Wrong response code.
	if _, err := replayRun(t, "v12-p384", roots, func(pos int, b []byte) []byte {
		if pos == 6 {
			b[1] = uint8(ResponseCertificate)
		}
		return b
	}); !errors.As(err, &pe) {
		t.Fatalf("wrong response code: %v", err)
	}
	// Response version differs from the negotiated one.
	if _, err := replayRun(t, "v12-p384", roots, flipAt(6, 0)); !errors.As(err, &pe) {
		t.Fatalf("wrong version: %v", err)
	}
	// Truncated CERTIFICATE.
	if _, err := replayRun(t, "v12-p384", roots, func(pos int, b []byte) []byte {
		if pos == 8 {
			return b[:100]
		}
		return b
	}); !errors.As(err, &de) {
		t.Fatalf("truncated: %v", err)
	}
	// ALGORITHMS selecting something not offered (SHA-512 base hash).
	if _, err := replayRun(t, "v12-p384", roots, func(pos int, b []byte) []byte {
		if pos == 4 {
			b[16] = byte(HashSHA512)
		}
		return b
	}); !errors.As(err, &pe) {
		t.Fatalf("unoffered hash: %v", err)
	}
}

func TestChainNegative(t *testing.T) {
	// Wrong anchor for slot 0 (ca1 only): untrusted root; slot 1 verifies.
	out, err := replayRun(t, "v12-p384", anchors(t, "ecp384-ca1.der"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := out.r.VerifyChain(0)
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Kind != ChainErrorUntrusted || rep.Verified {
		t.Fatalf("slot 0 with ca1: %v", err)
	}
	if rep, err := out.r.VerifyChain(1); err != nil || !rep.Verified {
		t.Fatalf("slot 1 with ca1: %v", err)
	}
	// VerifyChain failures are not sticky.
	if out.r.Err() != nil {
		t.Fatal(out.r.Err())
	}
	// No anchors at all.
	out.r.o.Roots = nil
	if _, err := out.r.VerifyChain(1); !errors.As(err, &ce) || ce.Kind != ChainErrorUntrusted {
		t.Fatalf("no roots: %v", err)
	}
	// Expired: the same chain checked in 2040.
	out.r.o.Roots = anchors(t, "ecp384-ca.der")
	out.r.o.Now = func() time.Time { return time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC) }
	if _, err := out.r.VerifyChain(0); !errors.As(err, &ce) || ce.Kind != ChainErrorExpired {
		t.Fatalf("2040: %v", err)
	}
	// An RSA root of the other run is untrusted for this chain.
	out.r.o.Now = func() time.Time { return time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) }
	out.r.o.Roots = anchors(t, "rsa3072-ca.der", "ecp256-ca.der")
	if _, err := out.r.VerifyChain(0); !errors.As(err, &ce) || ce.Kind != ChainErrorUntrusted {
		t.Fatalf("foreign roots: %v", err)
	}
	// Root outside the chain: drop the root certificate from the buffer.
	out.r.o.Roots = anchors(t, "ecp384-ca.der")
	cc := *out.r.chains[0]
	cc.Certs = cc.Certs[1:]
	rep = verifyChain(&cc, out.r.o.Roots, out.r.o.Now(), AsymECDSAP384, HashSHA384)
	if !rep.Verified {
		t.Fatalf("root outside chain: %v", rep.Err)
	}
	// …and with the root hash of another root it is untrusted.
	cc.RootHash = make([]byte, 48)
	if rep = verifyChain(&cc, out.r.o.Roots, out.r.o.Now(), AsymECDSAP384, HashSHA384); rep.Err == nil || rep.Err.Kind != ChainErrorUntrusted {
		t.Fatalf("wrong root hash: %v", rep.Err)
	}
	// Leaf key of another algorithm than negotiated.
	cc = *out.r.chains[0]
	if rep = verifyChain(&cc, out.r.o.Roots, out.r.o.Now(), AsymECDSAP256, HashSHA384); rep.Err == nil || rep.Err.Kind != ChainErrorKeyUsage {
		t.Fatalf("algorithm mismatch: %v", rep.Err)
	}
	// Chain out of order (leaf before intermediate).
	cc.Certs = [][]byte{cc.Certs[0], cc.Certs[2], cc.Certs[1]}
	if rep = verifyChain(&cc, out.r.o.Roots, out.r.o.Now(), AsymECDSAP384, HashSHA384); rep.Err == nil || rep.Err.Kind != ChainErrorBroken {
		t.Fatalf("out of order: %v", rep.Err)
	}
}

func TestChainCache(t *testing.T) {
	cache := &MapChainCache{}
	f := loadRef(t, "v12-p384")
	rt := newReplay(t, f)
	o := replayOptions(t, f, rt.msgs)
	o.ChainCache = cache
	o.Roots = anchors(t, "ecp384-ca.der")
	r := NewRequester(rt, o)
	ctx := context.Background()
	if _, err := r.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	cc, err := r.Certificate(ctx, 0)
	if err != nil || cc.FromCache {
		t.Fatalf("first read: %v", err)
	}
	// A second requester sharing the cache: the slot-0 chain costs nothing.
	rt2 := newReplay(t, f)
	o2 := replayOptions(t, f, rt2.msgs)
	o2.ChainCache, o2.Roots = cache, o.Roots
	r2 := NewRequester(rt2, o2)
	if _, err := r2.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	before := r2.Stats().RoundTrips
	cc2, err := r2.Certificate(ctx, 0)
	if err != nil || !cc2.FromCache || r2.Stats().RoundTrips != before {
		t.Fatalf("cache hit: %v fromCache=%v", err, cc2 != nil && cc2.FromCache)
	}
	if rep, err := r2.VerifyChain(0); err != nil || !rep.Verified {
		t.Fatal(err)
	}
}

// TestRootHashChecked: without DIGESTS, a CERTIFICATE whose RootHash is not
// the hash of its (self-issued) first certificate is rejected.
func TestRootHashChecked(t *testing.T) {
	f := loadRef(t, "v12-p384")
	rt := newReplay(t, f)
	ip := &interposer{t: t, rt: rt, hook: func(req []byte) ([]byte, bool) {
		if RequestCode(req[1]) == RequestGetCertificate {
			rsp := rt.msgs[9].doe(t)
			rsp[8+4+10] ^= 1 // a RootHash byte (after header, portion/remainder, chain Length/Reserved)
			return rsp, true
		}
		return nil, false
	}}
	r := NewRequester(ip, replayOptions(t, f, rt.msgs))
	if _, err := r.Negotiate(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ve *VerificationError
	if _, err := r.Certificate(context.Background(), 0); !errors.As(err, &ve) || ve.Step != "root-hash" {
		t.Fatalf("got %v", err)
	}
}

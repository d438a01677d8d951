package spdm

import (
	"bytes"
	"context"
	"crypto/x509"
	"sync/atomic"
	"testing"
	"time"
)

// tamperIndex1 is an interposer that flips the last value byte of the
// unsigned MEASUREMENTS answer for index 1.
type tamperIndex1 struct {
	t        Transport
	tampered bool
}

func (m *tamperIndex1) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	rsp, err := m.t.Exchange(ctx, req)
	if err == nil && len(req) >= 4 && RequestCode(req[1]) == RequestGetMeasurements && req[2]&MeasAttrSignature == 0 &&
		req[3] == 1 && len(rsp) > 8 && ResponseCode(rsp[1]) == ResponseMeasurements {
		rsp = bytes.Clone(rsp)
		// 1.2 MEASUREMENTS: header(4) NumBlocks(1) RecordLength(3) record
		// nonce(32) opaqueLen(2) [context]. Flip the record's last byte.
		recLen := int(rsp[5]) | int(rsp[6])<<8 | int(rsp[7])<<16
		rsp[8+recLen-1] ^= 0xFF
		m.tampered = true
	}
	return rsp, err
}

// A device whose indices have gaps, read one by one: every ERROR for an
// absent index resets L1, so the final signature does not cover the blocks
// read before the gap. Those blocks must not come back as signed.
func TestMeasurementsOneByOneGapNotCoveredBySignature(t *testing.T) {
	honest, _, err := oneByOneGapped(t, loopPlain{rspTestResponder(t, AsymECDSAP256, nil)})
	if err != nil {
		t.Fatal(err)
	}
	mitm := &tamperIndex1{t: loopPlain{rspTestResponder(t, AsymECDSAP256, nil)}}
	blocks, last, err := oneByOneGapped(t, mitm)
	if !mitm.tampered {
		t.Fatal("the interposer never saw index 1")
	}
	if err == nil && last != nil && last.Verified {
		for _, b := range blocks {
			if b.Index == 1 && !bytes.Equal(b.Value, honest[0].Value) {
				t.Fatalf("tampered index 1 (%q) returned as covered by a verified signature", b.Value)
			}
		}
	}
	if err == nil && (last == nil || !last.Verified) {
		t.Fatalf("no error and no verified signature: %+v", last)
	}
}

// oneByOneGapped reads a gapped test responder (indices 1, 2, 0x10, 0xFE)
// one by one with a signature, over tr.
func oneByOneGapped(t *testing.T, tr Transport) ([]MeasurementBlock, *MeasurementsResult, error) {
	t.Helper()
	ctx := context.Background()
	root, err := x509.ParseCertificate(rspKey(t, AsymECDSAP256).chain[0])
	if err != nil {
		t.Fatal(err)
	}
	r := NewRequester(tr, &Options{Roots: []*x509.Certificate{root}, MinVersion: Version12, MaxVersion: Version12})
	if _, err := r.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Certificate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	return r.MeasurementsOneByOne(ctx, MeasOpts{Signed: true})
}

// Without tampering, a gapped device still reads one by one, signed.
func TestMeasurementsOneByOneGapHonest(t *testing.T) {
	blocks, last, err := oneByOneGapped(t, loopPlain{rspTestResponder(t, AsymECDSAP256, nil)})
	if err != nil || last == nil || !last.Verified || len(blocks) != 4 {
		t.Fatalf("err %v last %+v blocks %d", err, last, len(blocks))
	}
	for i, want := range []uint8{1, 2, 0x10, 0xFE} {
		if blocks[i].Index != want {
			t.Fatalf("block %d index %d, want %d", i, blocks[i].Index, want)
		}
	}
}

// A hostile device can present a new chain at every check; the gate's
// long-lived cache must not grow without bound.
func TestMapChainCacheBounded(t *testing.T) {
	c := &MapChainCache{}
	chain := make([]byte, 1024)
	for i := range 3 * MaxCachedChains {
		d := []byte{byte(i), byte(i >> 8), byte(i >> 16)}
		c.Put(HashSHA256, d, chain)
	}
	if n := c.Len(); n > MaxCachedChains {
		t.Fatalf("%d chains cached, limit %d", n, MaxCachedChains)
	}
	// The newest entry is still there; the oldest was evicted.
	last := 3*MaxCachedChains - 1
	if _, ok := c.Get(HashSHA256, []byte{byte(last), byte(last >> 8), byte(last >> 16)}); !ok {
		t.Fatal("newest chain evicted")
	}
	if _, ok := c.Get(HashSHA256, []byte{0, 0, 0}); ok {
		t.Fatal("oldest chain kept")
	}
	// Re-putting a known digest does not grow the cache.
	c.Put(HashSHA256, []byte{byte(last), byte(last >> 8), byte(last >> 16)}, chain)
	if n := c.Len(); n > MaxCachedChains {
		t.Fatalf("%d chains cached after a re-put", n)
	}
}

// resynchOnce answers the first GET_DIGESTS with ERROR RequestResynch and
// then calls before (the device changes what it offers).
type resynchOnce struct {
	t       Transport
	digests int
	before  func()
}

func (m *resynchOnce) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	if RequestCode(req[1]) == RequestGetDigests {
		m.digests++
		if m.digests == 1 {
			m.before()
			return []byte{req[0], byte(ResponseError), byte(ErrorCodeRequestResynch), 0}, nil
		}
	}
	return m.t.Exchange(ctx, req)
}

// A responder must not be able to change the negotiated version or
// algorithms behind the caller's back with RequestResynch: the caller has
// recorded (and the policy judged) what Negotiate returned, and would
// otherwise get a verified CHALLENGE_AUTH made under another negotiation.
func TestResynchCannotRenegotiateDifferently(t *testing.T) {
	ctx := context.Background()
	versions := []Version{Version11, Version12, Version13}
	rsp := rspTestResponder(t, AsymECDSAP256, func(c *ResponderConfig) { c.Versions = versions })
	m := &resynchOnce{t: loopPlain{rsp}, before: func() { versions[1], versions[2] = Version11, Version11 }}
	root, _ := x509.ParseCertificate(rspKey(t, AsymECDSAP256).chain[0])
	r := NewRequester(m, &Options{Roots: []*x509.Certificate{root}})
	first, err := r.Negotiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.Version != Version13 {
		t.Fatalf("setup: negotiated %s", first.Version)
	}
	_, err = r.Digests(ctx)
	if err == nil {
		_, err = r.Certificate(ctx, 0)
	}
	var ch *ChallengeResult
	if err == nil {
		ch, err = r.Challenge(ctx, 0, SummaryNone)
	}
	now, _ := r.Negotiated()
	if now.Version != Version11 && err == nil {
		t.Fatalf("setup: the device did not downgrade (%s)", now.Version)
	}
	if err == nil && ch.Verified {
		t.Fatalf("CHALLENGE_AUTH verified under SPDM %s after negotiating %s", now.Version, first.Version)
	}
	if err == nil || r.Err() == nil {
		t.Fatalf("the changed negotiation did not fail the connection: %v", err)
	}
}

// largeLoop answers GET_DIGESTS with ERROR LargeResponse, and every
// CHUNK_GET with one chunk that reassembles to that same ERROR.
type largeLoop struct {
	t      Transport
	chunks atomic.Int64
}

func (m *largeLoop) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	large := []byte{req[0], byte(ResponseError), byte(ErrorCodeLargeResponse), 0, 1}
	switch RequestCode(req[1]) {
	case RequestGetDigests:
		return large, nil
	case RequestChunkGet:
		m.chunks.Add(1)
		seq := uint16(req[4]) | uint16(req[5])<<8
		c := &chunkResponseRsp{Version: Version(req[0]), Handle: 1, Seq: seq, LargeSize: uint32(len(large)), Chunk: large[:3]}
		if seq != 0 {
			c.Last, c.Chunk = true, large[3:]
		}
		return c.marshal(), nil
	}
	return m.t.Exchange(ctx, req)
}

// A responder whose reassembled large response is again a LargeResponse
// must not keep the requester in CHUNK_GET forever (the caller's context
// may have no deadline: the broker's long-lived sessions).
func TestLargeResponseLoopBounded(t *testing.T) {
	m := &largeLoop{t: loopPlain{rspTestResponder(t, AsymECDSAP256, nil)}}
	r := NewRequester(m, &Options{CapabilityFlags: CapCert | CapChal | CapChunk, CTExponent: 20, MinVersion: Version12})
	ctx := context.Background()
	if _, err := r.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Digests(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("after %d CHUNK_GETs: %v", m.chunks.Load(), err)
		if err == nil {
			t.Fatal("a LargeResponse loop produced digests")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("still in the LargeResponse loop after %d CHUNK_GETs", m.chunks.Load())
	}
}

package spdm

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// interposer sits in front of a replayTransport and plays a misbehaving but
// legal (or illegal) responder around chosen recorded exchanges: Busy,
// ResponseNotReady, LargeResponse with CHUNK_GET, CHUNK_SEND, RequestResynch.
type interposer struct {
	t  *testing.T
	rt *replayTransport
	// hook decides, for a request, whether to answer it itself.
	hook func(req []byte) ([]byte, bool)
	sent [][]byte
}

func (ip *interposer) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	ip.sent = append(ip.sent, bytes.Clone(req))
	if rsp, ok := ip.hook(req); ok {
		return rsp, nil
	}
	return ip.rt.Exchange(ctx, req)
}

func fastTimeouts() Timeouts {
	return Timeouts{BusyBackoff: time.Microsecond, BusyRetries: 3, NotReadyRetries: 3, MaxNotReadyWait: time.Millisecond}
}

// runFlow runs the whole recorded v12-p384 flow over tr and checks that the
// challenge and measurement signatures still verify (so retries, chunking
// and resynch left the transcripts exactly as the device computed them).
func runFlow(t *testing.T, tr func(rt *replayTransport) Transport, tm Timeouts) (*Requester, error) {
	f := loadRef(t, "v12-p384")
	rt := newReplay(t, f)
	o := replayOptions(t, f, rt.msgs)
	o.Roots = anchors(t, "ecp384-ca.der", "ecp384-ca1.der")
	o.Timeouts = tm
	r := NewRequester(tr(rt), o)
	ctx := context.Background()
	steps := []func() error{
		func() error { _, err := r.Negotiate(ctx); return err },
		func() error { _, err := r.Digests(ctx); return err },
		func() error { _, err := r.Certificate(ctx, 0); return err },
		func() error { _, err := r.Certificate(ctx, 1); return err },
		func() error {
			c, err := r.Challenge(ctx, 0, SummaryAll)
			if err == nil && !c.Verified {
				t.Fatal("challenge not verified")
			}
			return err
		},
		func() error { _, err := r.Digests(ctx); return err },
		func() error { _, err := r.Certificate(ctx, 0); return err },
		func() error { _, err := r.Digests(ctx); return err },
		func() error {
			m, err := r.Measurements(ctx, MeasOpts{Index: MeasOpAll, Signed: true})
			if err == nil && !m.Verified {
				t.Fatal("measurements not verified")
			}
			return err
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return r, err
		}
	}
	if !rt.done() {
		t.Fatalf("recording not consumed")
	}
	return r, nil
}

func errMsg(v Version, code ErrorCode, data uint8, ext ...byte) []byte {
	m := &errorRsp{Version: v, Code: code, Data: data, Ext: ext}
	if code == ErrorCodeResponseNotReady {
		m.RDExponent, m.ReqCode, m.Token, m.RDTM = ext[0], ext[1], ext[2], ext[3]
	}
	return m.marshal()
}

func TestBusyRetried(t *testing.T) {
	busy := 0
	r, err := runFlow(t, func(rt *replayTransport) Transport {
		return &interposer{t: t, rt: rt, hook: func(req []byte) ([]byte, bool) {
			if RequestCode(req[1]) == RequestChallenge && busy < 2 {
				busy++
				return append(errMsg(Version12, ErrorCodeBusy, 0), 0, 0, 0), true // with DOE pad
			}
			return nil, false
		}}
	}, fastTimeouts())
	if err != nil || busy != 2 {
		t.Fatalf("busy %d: %v", busy, err)
	}
	if r.Stats().RoundTrips != 11+2 {
		t.Fatalf("round trips %d", r.Stats().RoundTrips)
	}
}

func TestBusyStormIsBounded(t *testing.T) {
	n := 0
	r, err := runFlow(t, func(rt *replayTransport) Transport {
		return &interposer{t: t, rt: rt, hook: func(req []byte) ([]byte, bool) {
			if RequestCode(req[1]) == RequestGetDigests {
				n++
				return errMsg(Version12, ErrorCodeBusy, 0), true
			}
			return nil, false
		}}
	}, fastTimeouts())
	var re *ResponderError
	if !errors.As(err, &re) || !errors.Is(err, ErrorCodeBusy) || re.Request != RequestGetDigests || n != 4 {
		t.Fatalf("%d tries: %v", n, err)
	}
	if r.Err() != nil {
		t.Fatalf("responder ERROR made the connection sticky: %v", r.Err())
	}
}

func TestResponseNotReady(t *testing.T) {
	var riy []byte
	_, err := runFlow(t, func(rt *replayTransport) Transport {
		pending := false
		return &interposer{t: t, rt: rt, hook: func(req []byte) ([]byte, bool) {
			switch {
			case RequestCode(req[1]) == RequestGetMeasurements && !pending && riy == nil:
				// Swallow the request: answer NotReady, remember to serve later.
				pending = true
				return errMsg(Version12, ErrorCodeResponseNotReady, 0, 3, uint8(RequestGetMeasurements), 0x5A, 2), true
			case RequestCode(req[1]) == RequestRespondIfReady && pending:
				riy = bytes.Clone(req)
				pending = false
				// Serve the recorded MEASUREMENTS for the original request.
				want := rt.msgs[rt.pos].spdm(t)
				rsp, err := rt.Exchange(context.Background(), want)
				if err != nil {
					t.Fatal(err)
				}
				return rsp, true
			}
			return nil, false
		}}
	}, fastTimeouts())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(riy, []byte{0x12, 0xFF, 0xE0, 0x5A}) {
		t.Fatalf("RESPOND_IF_READY % x", riy)
	}
}

func TestResponseNotReadyForever(t *testing.T) {
	rsp := errMsg(Version12, ErrorCodeResponseNotReady, 0, 1, uint8(RequestChallenge), 1, 2)
	var pe *ProtocolError
	r, err := runFlow(t, func(rt *replayTransport) Transport {
		return &interposer{t: t, rt: rt, hook: func(req []byte) ([]byte, bool) {
			if c := RequestCode(req[1]); c == RequestChallenge || c == RequestRespondIfReady {
				return rsp, true
			}
			return nil, false
		}}
	}, fastTimeouts())
	if !errors.As(err, &pe) || r.Err() == nil {
		t.Fatalf("never ready: %v", err)
	}
	// A wait beyond MaxNotReadyWait, and a NotReady naming another request.
	for _, ext := range [][]byte{{30, uint8(RequestChallenge), 1, 2}, {1, uint8(RequestGetDigests), 1, 2}, {1, uint8(RequestChallenge), 1, 0}} {
		_, err = runFlow(t, func(rt *replayTransport) Transport {
			return &interposer{t: t, rt: rt, hook: func(req []byte) ([]byte, bool) {
				if RequestCode(req[1]) == RequestChallenge {
					return errMsg(Version12, ErrorCodeResponseNotReady, 0, ext...), true
				}
				return nil, false
			}}
		}, fastTimeouts())
		if !errors.As(err, &pe) {
			t.Fatalf("ext % x: %v", ext, err)
		}
	}
}

func TestLargeResponseChunkGet(t *testing.T) {
	gets := 0
	_, err := runFlow(t, func(rt *replayTransport) Transport {
		var large []byte
		return &interposer{t: t, rt: rt, hook: func(req []byte) ([]byte, bool) {
			switch RequestCode(req[1]) {
			case RequestGetCertificate:
				if large != nil {
					t.Fatal("GET_CERTIFICATE while a large response is pending")
				}
				rsp, err := rt.Exchange(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				cert, err := decodePadded(rsp, decodeCertificateRsp)
				if err != nil {
					t.Fatal(err)
				}
				large = cert.raw
				return errMsg(Version12, ErrorCodeLargeResponse, 0, 9), true
			case RequestChunkGet:
				q, err := decodeChunkGetReq(req)
				if err != nil || q.Handle != 9 {
					t.Fatalf("CHUNK_GET %v", err)
				}
				gets++
				const size = 500
				off := int(q.Seq) * size
				c := &chunkResponseRsp{Version: Version12, Handle: 9, Seq: q.Seq, Chunk: large[off:min(off+size, len(large))]}
				if q.Seq == 0 {
					c.LargeSize = uint32(len(large))
				}
				c.Last = off+size >= len(large)
				if c.Last {
					large = nil
				}
				return c.marshal(), true
			}
			return nil, false
		}}
	}, fastTimeouts())
	if err != nil || gets < 9 {
		t.Fatalf("%d CHUNK_GETs: %v", gets, err)
	}
}

func TestChunkSendForLargeRequest(t *testing.T) {
	// The responder claims DataTransferSize 42, so the 48-byte
	// NEGOTIATE_ALGORITHMS must go in CHUNK_SEND pieces. (This changes VCA,
	// so only the unsigned steps are run.)
	f := loadRef(t, "v12-p384")
	rt := newReplay(t, f)
	var pieces []*chunkSendReq
	var assembled []byte
	strict := true
	ip := &interposer{t: t, rt: rt, hook: func(req []byte) ([]byte, bool) {
		switch RequestCode(req[1]) {
		case RequestGetCapabilities:
			rsp := rt.msgs[rt.pos+1].doe(t)
			if strict {
				var err error
				if rsp, err = rt.Exchange(context.Background(), req); err != nil {
					t.Fatal(err)
				}
			} else {
				rt.pos += 2
			}
			c, err := decodePadded(rsp, decodeCapabilitiesRsp)
			if err != nil {
				t.Fatal(err)
			}
			c.DataTransferSize = 42
			return c.marshal(), true
		case RequestChunkSend:
			q, err := decodeChunkSendReq(req)
			if err != nil || len(req) > 42 {
				t.Fatalf("CHUNK_SEND of %d bytes: %v", len(req), err)
			}
			pieces = append(pieces, q)
			assembled = append(assembled, q.Chunk...)
			ack := &chunkSendAckRsp{Version: Version12, Handle: q.Handle, Seq: q.Seq}
			if q.Last {
				if uint32(len(assembled)) != pieces[0].LargeSize {
					t.Fatalf("assembled %d, LargeMessageSize %d", len(assembled), pieces[0].LargeSize)
				}
				rsp, err := rt.Exchange(context.Background(), assembled)
				if err != nil {
					t.Fatal(err)
				}
				ack.Response = rsp
			}
			return ack.marshal(), true
		}
		return nil, false
	}}
	o := replayOptions(t, f, rt.msgs)
	r := NewRequester(ip, o)
	ctx := context.Background()
	n, err := r.Negotiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pieces) != 2 || n.DataTransferSize != 42 || n.BaseAsym != AsymECDSAP384 {
		t.Fatalf("%d pieces, %+v", len(pieces), n)
	}
	if _, err := r.Digests(ctx); err != nil {
		t.Fatal(err)
	}
	// Without CHUNK_CAP on our side the large request is refused.
	rt2 := newReplay(t, f)
	o2 := replayOptions(t, f, rt2.msgs)
	o2.CapabilityFlags &^= CapChunk
	ip.rt = rt2
	pieces, assembled, strict = nil, nil, false
	rt = rt2
	var pe *ProtocolError
	if _, err := NewRequester(ip, o2).Negotiate(ctx); !errors.As(err, &pe) || len(pieces) != 0 {
		t.Fatalf("large request without chunking: %v", err)
	}
}

func TestRequestResynch(t *testing.T) {
	resynched := false
	r, err := runFlow(t, func(rt *replayTransport) Transport {
		return &interposer{t: t, rt: rt, hook: func(req []byte) ([]byte, bool) {
			if RequestCode(req[1]) == RequestGetDigests && !resynched {
				resynched = true
				rt.pos = 0 // the device forgot everything: VCA again from the start
				return errMsg(Version12, ErrorCodeRequestResynch, 0), true
			}
			return nil, false
		}}
	}, fastTimeouts())
	if err != nil || !resynched {
		t.Fatal(err)
	}
	if r.Stats().RoundTrips != 11+1+3 {
		t.Fatalf("round trips %d", r.Stats().RoundTrips)
	}
}

// blockingTransport never answers before ctx ends.
type blockingTransport struct{}

func (blockingTransport) Exchange(ctx context.Context, _ []byte) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestTimeoutBoundsExchange(t *testing.T) {
	r := NewRequester(blockingTransport{}, &Options{Timeouts: Timeouts{Transport: time.Millisecond, ST1: time.Millisecond}})
	start := time.Now()
	_, err := r.Negotiate(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	// Sticky until Negotiate.
	if _, err2 := r.Digests(context.Background()); !errors.Is(err2, context.DeadlineExceeded) {
		t.Fatalf("not sticky: %v", err2)
	}
}

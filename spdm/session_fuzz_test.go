package spdm

import (
	"bytes"
	"context"
	"testing"
)

// fuzzSessDecoder checks the decoder properties on b: no panic, result nil iff
// error, exact re-encoding, and no proper prefix of a valid message decodes.
func fuzzSessDecoder[T any](t *testing.T, b []byte, dec func([]byte) (*T, error), enc func(*T) []byte) {
	m, err := dec(b)
	if (m == nil) == (err == nil) {
		t.Fatalf("result %v with error %v", m, err)
	}
	if err != nil {
		return
	}
	if got := enc(m); !bytes.Equal(got, b) {
		t.Fatalf("re-encoding differs:\n got % x\nwant % x", got, b)
	}
	for i := range b {
		if p, err := dec(b[:i]); err == nil || p != nil {
			t.Fatalf("proper prefix of %d bytes decodes", i)
		}
	}
}

func FuzzKeyExchangeMessages(f *testing.F) {
	for _, name := range []string{"v12-keyex", "v12-keyex-hs-enc"} {
		ref := loadRef(f, name)
		for _, m := range ref.Messages {
			if b := m.spdm(f); len(b) > 1 {
				switch b[1] {
				case byte(RequestKeyExchange), byte(ResponseKeyExchangeRsp), byte(RequestFinish), byte(ResponseFinishRsp),
					byte(RequestEndSession), byte(ResponseEndSessionAck):
					f.Add(b, name == "v12-keyex")
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, inClear bool) {
		fuzzSessDecoder(t, b, func(p []byte) (*keyExchangeReq, error) { return decodeKeyExchangeReq(p, 96) }, (*keyExchangeReq).marshal)
		fuzzSessDecoder(t, b, func(p []byte) (*keyExchangeRsp, error) {
			return decodeKeyExchangeRsp(p, keyExchangeRspShape{exchange: 96, hash: 48, sig: 96, summary: true, verifyData: !inClear})
		}, (*keyExchangeRsp).marshal)
		fuzzSessDecoder(t, b, func(p []byte) (*finishReq, error) { return decodeFinishReq(p, 48) }, (*finishReq).marshal)
		vs := 0
		if inClear {
			vs = 48
		}
		fuzzSessDecoder(t, b, func(p []byte) (*finishRsp, error) { return decodeFinishRsp(p, vs) }, (*finishRsp).marshal)
		for _, c := range []ResponseCode{ResponseEndSessionAck, ResponseHeartbeatAck, ResponseKeyUpdateAck} {
			fuzzSessDecoder(t, b, func(p []byte) (*simpleMsg, error) { return decodeSimple("x", uint8(c), p) }, (*simpleMsg).marshal)
		}
	})
}

func FuzzOpaqueData(f *testing.F) {
	f.Add(marshalOpaque(true, []opaqueElement{smSupportedElement(securedMsgVersions)}), true)
	f.Add(marshalOpaque(false, []opaqueElement{smSelectionElement(0x1100)}), false)
	f.Add(marshalOpaque(true, []opaqueElement{{ID: 3, VendorID: []byte{1, 2}, Data: []byte{9}}, smSelectionElement(0x1200)}), true)
	f.Fuzz(func(t *testing.T, b []byte, fmt1 bool) {
		els, err := decodeOpaque(b, fmt1)
		if err != nil {
			if els != nil {
				t.Fatal("elements with error")
			}
			return
		}
		if got := marshalOpaque(fmt1, els); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding differs:\n got % x\nwant % x", got, b)
		}
		for i := range b {
			if _, err := decodeOpaque(b[:i], fmt1); err == nil {
				t.Fatalf("proper prefix of %d bytes decodes", i)
			}
		}
		if body, ok := smElement(els, smDataIDSupported); ok {
			parseSMSupported(body)
		}
		if body, ok := smElement(els, smDataIDSelection); ok {
			parseSMSelection(body)
		}
	})
}

// tamperT replaces the response to the n-th exchange (counted over both
// transports) with a fuzzer-chosen one.
type tamperT struct {
	inner Transport
	count *int
	at    int
	with  []byte
	orig  *[]byte
}

func (t tamperT) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	rsp, err := t.inner.Exchange(ctx, req)
	n := *t.count
	*t.count++
	if err != nil || n != t.at {
		return rsp, err
	}
	*t.orig = bytes.Clone(rsp)
	return bytes.Clone(t.with), nil
}

// FuzzSessionHostileDevice: a device answering KEY_EXCHANGE, FINISH or an
// in-session request with arbitrary bytes never panics the requester, and
// nothing but the genuine response is accepted.
func FuzzSessionHostileDevice(f *testing.F) {
	f.Add(uint8(0), []byte{0x12, 0x64, 0, 0})
	f.Add(uint8(1), []byte{0xff, 0xff, 0xff, 0xff, 0x14, 0x00})
	f.Add(uint8(2), []byte{0x12, 0x7f, 0x06, 0x00})
	f.Fuzz(func(t *testing.T, step uint8, data []byte) {
		rig := newSessionRig(t, AsymECDSAP256, Version12, AEADAES128GCM, false, nil)
		count := 0
		var orig []byte
		at := rig.req.Stats().RoundTrips + int(step%3) // 0: KEY_EXCHANGE_RSP, 1: FINISH_RSP, 2: HEARTBEAT_ACK
		count = rig.req.Stats().RoundTrips
		rig.req.t = tamperT{inner: loopPlain{rig.rsp}, count: &count, at: at, with: data, orig: &orig}
		sec := tamperT{inner: loopSecured{rig.rsp}, count: &count, at: at, with: data, orig: &orig}
		s, err := rig.req.KeyExchange(context.Background(), KeyExchangeOpts{SecuredTransport: sec})
		if (s == nil) == (err == nil) {
			t.Fatalf("session %v with error %v", s, err)
		}
		if err == nil {
			err = s.Heartbeat(context.Background())
		}
		// An ERROR (Busy, ResponseNotReady) may legitimately be retried into
		// the genuine response; any other replacement must be refused.
		retryable := len(data) >= 2 && data[1] == byte(ResponseError)
		if err == nil && orig != nil && !bytes.Equal(orig, data) && !retryable {
			t.Fatalf("forged response accepted at step %d", step%3)
		}
	})
}

// FuzzResponderSession feeds arbitrary plain and secured messages to a
// responder with an established session: no panic, every plain request is
// answered, a secured one either answered or refused with an error.
func FuzzResponderSession(f *testing.F) {
	f.Add([]byte{0x12, 0xe4, 0, 0}, false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x12, 0x00, 1, 2, 3}, true)
	f.Add([]byte{0x12, 0xe5, 0, 0, 1, 2, 3}, false)
	f.Fuzz(func(t *testing.T, b []byte, secured bool) {
		rig := newSessionRig(t, AsymECDSAP256, Version12, AEADAES256GCM, true, nil)
		s, err := rig.open(t)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if secured {
			if len(b) >= 4 && b[0]|b[1]|b[2]|b[3] == 0 {
				copy(b, []byte{byte(s.ID()), byte(s.ID() >> 8), byte(s.ID() >> 16), byte(s.ID() >> 24)})
			}
			rsp, err := rig.rsp.RespondSecured(ctx, b)
			if (rsp == nil) == (err == nil) {
				t.Fatalf("RespondSecured: %x, %v", rsp, err)
			}
			return
		}
		rsp, err := rig.rsp.Respond(ctx, b)
		if err != nil || len(rsp) < 4 {
			t.Fatalf("Respond: %x, %v", rsp, err)
		}
	})
}

package spdm

import (
	"bytes"
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
		if body, ok := smElement(els, smDataIDSupported); ok {
			parseSMSupported(body)
		}
		if body, ok := smElement(els, smDataIDSelection); ok {
			parseSMSelection(body)
		}
	})
}

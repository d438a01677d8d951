package spdm

import (
	"context"
	"errors"
	"testing"
)

func TestVendorDefined(t *testing.T) {
	f := loadRef(t, "v12-p384")
	for _, vendor := range [][]byte{{1, 0}, {2, 0}} {
		rt := newReplay(t, f)
		ip := &interposer{t: t, rt: rt, hook: func(req []byte) ([]byte, bool) {
			if RequestCode(req[1]) != RequestVendorDefined {
				return nil, false
			}
			q, err := decodeVendorDefinedReq(req)
			if err != nil || q.StandardID != 3 || string(q.Payload) != "\x01\x81" {
				t.Fatalf("request % x: %v", req, err)
			}
			return append((&vendorDefined{Version: Version12, StandardID: 3, VendorID: vendor, Payload: []byte{1, 1, 0x10}}).marshalResponse(), 0, 0), true
		}}
		r := NewRequester(ip, replayOptions(t, f, rt.msgs))
		if _, err := r.Negotiate(context.Background()); err != nil {
			t.Fatal(err)
		}
		p, err := r.VendorDefined(context.Background(), 3, []byte{1, 0}, []byte{1, 0x81})
		var pe *ProtocolError
		switch {
		case vendor[0] == 1 && (err != nil || string(p) != "\x01\x01\x10"):
			t.Fatalf("payload % x: %v", p, err)
		case vendor[0] == 2 && !errors.As(err, &pe):
			t.Fatalf("other vendor accepted: %v", err)
		}
	}
}

// FuzzRequesterResponses mutates one byte (or truncates) one recorded
// response of the v12-p384 connection and runs the whole flow: the
// requester must never panic, and must fail with a typed error unless the
// mutation leaves every check satisfied.
func FuzzRequesterResponses(f *testing.F) {
	f.Add(uint8(6), uint16(4), uint8(1), false)
	f.Add(uint8(8), uint16(2), uint8(0xFF), true)
	f.Add(uint8(20), uint16(5), uint8(0x80), false)
	f.Add(uint8(4), uint16(5), uint8(4), false)
	ref := newReplay(f, loadRef(f, "v12-p384"))
	f.Fuzz(func(t *testing.T, pos uint8, off uint16, x uint8, truncate bool) {
		p := int(pos) % 22 &^ 1
		rsp := ref.msgs[p+1]
		o := int(off) % len(rsp.doe(t))
		tamper := func(at int, b []byte) []byte {
			if at != p || len(b) == 0 {
				return b
			}
			if truncate {
				return b[:o]
			}
			b[o] ^= x
			return b
		}
		out, err := replayRun(t, "v12-p384", anchors(t, "ecp384-ca.der"), tamper)
		if err == nil && p == 14 {
			if _, err := out.r.VerifyChain(1); err == nil {
				t.Fatal("slot-1 chain kept after its digest changed")
			}
		}
		if err == nil {
			// Every response byte is covered by a transcript, a digest or a
			// decoder check, except the last DIGESTS (index 18), which
			// nothing uses afterwards, and the slot-1 digest of the second
			// DIGESTS (index 14) and its slot mask, which only drop the slot-1 chain.
			if truncate && o >= rsp.SPDMLen {
				return // only DOE pad bytes were cut
			}
			if (x != 0 || truncate) && p != 18 && !(p == 14 && !truncate && (o >= 52 || o == 3)) {
				t.Fatalf("mutation of response %d at %d (^%#x, truncate %v) went unnoticed", p, off, x, truncate)
			}
			return
		}
		var (
			pe *ProtocolError
			de *DecodeError
			ve *VerificationError
			re *ResponderError
		)
		if !errors.As(err, &pe) && !errors.As(err, &de) && !errors.As(err, &ve) && !errors.As(err, &re) {
			// The replay transport reports requests that left the recording.
			if out.r.Err() == nil {
				t.Fatalf("untyped error %v", err)
			}
		}
	})
}

func TestUnverifiableAlgorithmsNotOffered(t *testing.T) {
	r := NewRequester(blockingTransport{}, &Options{AsymAlgos: AsymSM2P256 | AsymEd448, HashAlgos: HashSHA384})
	var pe *ProtocolError
	if _, err := r.Negotiate(context.Background()); !errors.As(err, &pe) || r.Stats().RoundTrips != 0 {
		t.Fatalf("%v after %d round trips", err, r.Stats().RoundTrips)
	}
	r = NewRequester(blockingTransport{}, &Options{AsymAlgos: AsymSM2P256 | AsymECDSAP384, HashAlgos: HashSM3_256 | HashSHA384})
	if r.o.AsymAlgos != AsymECDSAP384 || r.o.HashAlgos != HashSHA384 {
		t.Fatalf("offers %s %s", r.o.AsymAlgos, r.o.HashAlgos)
	}
}

package spdm

import (
	"bytes"
	"testing"
)

// fuzzDecoder runs the decoder properties of STYLE §2.12 on one target:
// no panic; result nil iff error; on success raw is the input, the
// re-encoding equals the input and re-decodes; no proper prefix decodes.
func fuzzDecoder(f *testing.F, code uint8, dec func(b []byte, p uint8) (any, []byte, error)) {
	f.Helper()
	seeds := 0
	for _, name := range refFiles {
		ref := loadRef(f, name)
		for _, m := range ref.Messages {
			if b := m.spdm(f); len(b) > 1 && b[1] == code {
				f.Add(b, uint8(0))
				f.Add(b, uint8(0xFF))
				seeds++
			}
		}
	}
	for _, b := range roundTripCases() {
		if b[1] == code {
			f.Add(b, uint8(0))
			seeds++
		}
	}
	f.Add([]byte{0x12, code, 0, 0}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, p uint8) {
		v, enc, err := dec(b, p)
		if (v == nil) == (err == nil) {
			t.Fatalf("result %v with error %v", v, err)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(rawOf(v), b) {
			t.Fatal("raw is not the input")
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n got % x\nwant % x", enc, b)
		}
		if _, enc2, err := dec(enc, p); err != nil || !bytes.Equal(enc2, enc) {
			t.Fatalf("re-decode: %v", err)
		}
		if code == uint8(ResponseChunkSendAck) || (code == uint8(ResponseError) && errorExtLen(ErrorCode(b[2])) < 0) {
			return // rest-of-message fields: prefixes legitimately decode
		}
		step := 1
		if len(b) > 512 {
			step = len(b) / 97
		}
		for n := 0; n < len(b); n += step {
			if _, _, err := dec(b[:n], p); err == nil {
				t.Fatalf("proper prefix %d of %d decodes", n, len(b))
			}
		}
	})
}

type marshaler interface{ marshal() []byte }

func fz[T marshaler](v T, err error) (any, []byte, error) {
	if err != nil {
		return nil, nil, err
	}
	return v, v.marshal(), nil
}

// paramSizes derives negotiated sizes from the fuzzer's parameter byte.
func paramSizes(p uint8) (hash, sig int, flag bool) {
	hashes := []int{32, 48, 64}
	sigs := []int{64, 96, 132, 256, 384, 512}
	return hashes[int(p)%3], sigs[int(p>>2)%6], p&0x80 != 0
}

func FuzzGetVersionReq(f *testing.F) {
	fuzzDecoder(f, uint8(RequestGetVersion), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeGetVersionReq(b)) })
}

func FuzzVersionRsp(f *testing.F) {
	fuzzDecoder(f, uint8(ResponseVersion), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeVersionRsp(b)) })
}

func FuzzGetCapabilitiesReq(f *testing.F) {
	fuzzDecoder(f, uint8(RequestGetCapabilities), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeGetCapabilitiesReq(b)) })
}

func FuzzCapabilitiesRsp(f *testing.F) {
	fuzzDecoder(f, uint8(ResponseCapabilities), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeCapabilitiesRsp(b)) })
}

func FuzzNegotiateAlgorithmsReq(f *testing.F) {
	fuzzDecoder(f, uint8(RequestNegotiateAlgorithms), func(b []byte, _ uint8) (any, []byte, error) {
		return fz(decodeNegotiateAlgorithmsReq(b))
	})
}

func FuzzAlgorithmsRsp(f *testing.F) {
	fuzzDecoder(f, uint8(ResponseAlgorithms), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeAlgorithmsRsp(b)) })
}

func FuzzGetDigestsReq(f *testing.F) {
	fuzzDecoder(f, uint8(RequestGetDigests), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeGetDigestsReq(b)) })
}

func FuzzDigestsRsp(f *testing.F) {
	fuzzDecoder(f, uint8(ResponseDigests), func(b []byte, p uint8) (any, []byte, error) {
		h, _, mk := paramSizes(p)
		if len(b) > 0 && b[0] == 0x13 && p == 0xFF {
			h, mk = 48, true // the recorded 1.3 multi-key DIGESTS
		} else if p == 0xFF || p == 0 {
			h = 48
			if len(b) > 0 && b[0] == 0x11 {
				h = 32
			}
			mk = false
		}
		return fz(decodeDigestsRsp(b, h, mk))
	})
}

func FuzzGetCertificateReq(f *testing.F) {
	fuzzDecoder(f, uint8(RequestGetCertificate), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeGetCertificateReq(b)) })
}

func FuzzCertificateRsp(f *testing.F) {
	fuzzDecoder(f, uint8(ResponseCertificate), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeCertificateRsp(b)) })
}

func FuzzChallengeReq(f *testing.F) {
	fuzzDecoder(f, uint8(RequestChallenge), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeChallengeReq(b)) })
}

func FuzzChallengeAuthRsp(f *testing.F) {
	fuzzDecoder(f, uint8(ResponseChallengeAuth), func(b []byte, p uint8) (any, []byte, error) {
		h, s, sum := paramSizes(p)
		if p == 0 || p == 0xFF {
			h, s, sum = 48, 96, true
			if len(b) > 0 && b[0] == 0x11 {
				h, s = 32, 64
			}
		}
		return fz(decodeChallengeAuthRsp(b, h, s, sum))
	})
}

func FuzzGetMeasurementsReq(f *testing.F) {
	fuzzDecoder(f, uint8(RequestGetMeasurements), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeGetMeasurementsReq(b)) })
}

func FuzzMeasurementsRsp(f *testing.F) {
	fuzzDecoder(f, uint8(ResponseMeasurements), func(b []byte, p uint8) (any, []byte, error) {
		_, s, signed := paramSizes(p)
		if !signed {
			s = 0
		}
		op := uint8(1)
		if p&0x40 != 0 {
			op = MeasOpCount
		}
		return fz(decodeMeasurementsRsp(b, op, s))
	})
}

func FuzzErrorRsp(f *testing.F) {
	fuzzDecoder(f, uint8(ResponseError), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeErrorRsp(b)) })
}

func FuzzRespondIfReadyReq(f *testing.F) {
	fuzzDecoder(f, uint8(RequestRespondIfReady), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeRespondIfReadyReq(b)) })
}

func FuzzChunkSendReq(f *testing.F) {
	fuzzDecoder(f, uint8(RequestChunkSend), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeChunkSendReq(b)) })
}

func FuzzChunkSendAckRsp(f *testing.F) {
	fuzzDecoder(f, uint8(ResponseChunkSendAck), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeChunkSendAckRsp(b)) })
}

func FuzzChunkGetReq(f *testing.F) {
	fuzzDecoder(f, uint8(RequestChunkGet), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeChunkGetReq(b)) })
}

func FuzzChunkResponseRsp(f *testing.F) {
	fuzzDecoder(f, uint8(ResponseChunkResponse), func(b []byte, _ uint8) (any, []byte, error) { return fz(decodeChunkResponseRsp(b)) })
}

func FuzzVendorDefinedReq(f *testing.F) {
	fuzzDecoder(f, uint8(RequestVendorDefined), func(b []byte, _ uint8) (any, []byte, error) {
		v, err := decodeVendorDefinedReq(b)
		if err != nil {
			return nil, nil, err
		}
		return v, v.marshalRequest(), nil
	})
}

func FuzzVendorDefinedRsp(f *testing.F) {
	fuzzDecoder(f, uint8(ResponseVendorDefined), func(b []byte, _ uint8) (any, []byte, error) {
		v, err := decodeVendorDefinedRsp(b)
		if err != nil {
			return nil, nil, err
		}
		return v, v.marshalResponse(), nil
	})
}

func FuzzMeasurementRecord(f *testing.F) {
	f.Add(marshalMeasurementRecord([]MeasurementBlock{{Index: 1, DMTF: true, Value: []byte{1, 2}}}), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, n uint8) {
		blocks, err := parseMeasurementRecord(b, int(n))
		if (blocks == nil) != (err != nil) && !(err == nil && n == 0) {
			t.Fatalf("blocks %v err %v", blocks, err)
		}
		if err == nil && int(n) != len(blocks) {
			t.Fatal("block count")
		}
	})
}

func FuzzChainBuffer(f *testing.F) {
	ref := loadRef(f, "v12-p384")
	f.Add(ref.Messages[15].spdm(f)[8:], uint8(1))
	f.Add([]byte{8, 0, 0, 0, 1, 2, 3, 4}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, hsel uint8) {
		h := []HashAlgo{HashSHA256, HashSHA384, HashSHA512}[int(hsel)%3]
		cc, err := parseChainBuffer(b, h)
		if (cc == nil) == (err == nil) {
			t.Fatalf("result %v error %v", cc, err)
		}
		if err != nil {
			return
		}
		var cat []byte
		for _, c := range cc.Certs {
			if len(c) < 2 || c[0] != 0x30 {
				t.Fatal("certificate is not a SEQUENCE")
			}
			cat = append(cat, c...)
		}
		if !bytes.Equal(cat, b[4+h.Size():]) || !bytes.Equal(cc.Buffer, b) {
			t.Fatal("certificates do not tile the buffer")
		}
	})
}

func FuzzCMASAN(f *testing.F) {
	f.Add("Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4:SSID=1100:00000000deadbeef")
	f.Add("Vendor=1b36:Device=0010:CC=010802:REV=02")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseCMASAN(s)
		if (v == nil) == (err == nil) {
			t.Fatal("result/error")
		}
		if err != nil {
			return
		}
		id := FunctionID{VendorID: v.VendorID, DeviceID: v.DeviceID, Class: v.Class, Revision: v.Revision,
			SubsystemVendorID: v.SubsystemVendorID, SubsystemID: v.SubsystemID, DSN: v.DSN}
		if CMASANFor(id) != s || !v.Matches(id) {
			t.Fatalf("%q re-encodes as %q", s, CMASANFor(id))
		}
	})
}

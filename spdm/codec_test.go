package spdm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// codecState carries what response decoders need from earlier messages.
type codecState struct {
	hashSize, sigSize int
	multiKey          bool
	summary           bool
	measOp            uint8
	measSigned        bool
}

// decodeAny decodes one SPDM message with the codec its code selects and
// returns the message and its re-encoding. Unknown codes return errSkip.
func decodeAny(b []byte, st *codecState) (any, []byte, error) {
	if len(b) < 2 {
		return nil, nil, errors.New("short")
	}
	type m interface{ marshal() []byte }
	wrap := func(v m, err error) (any, []byte, error) {
		if err != nil {
			return nil, nil, err
		}
		return v, v.marshal(), nil
	}
	switch b[1] {
	case uint8(RequestGetVersion):
		return wrap(decodeGetVersionReq(b))
	case uint8(ResponseVersion):
		return wrap(decodeVersionRsp(b))
	case uint8(RequestGetCapabilities):
		return wrap(decodeGetCapabilitiesReq(b))
	case uint8(ResponseCapabilities):
		return wrap(decodeCapabilitiesRsp(b))
	case uint8(RequestNegotiateAlgorithms):
		return wrap(decodeNegotiateAlgorithmsReq(b))
	case uint8(ResponseAlgorithms):
		v, err := decodeAlgorithmsRsp(b)
		if err == nil {
			st.hashSize, st.sigSize = v.BaseHash.Size(), v.BaseAsym.SignatureSize()
			st.multiKey = v.OtherParamsSel&otherParamsMultiKeyConn != 0
		}
		return wrap(v, err)
	case uint8(RequestGetDigests):
		return wrap(decodeGetDigestsReq(b))
	case uint8(ResponseDigests):
		return wrap(decodeDigestsRsp(b, st.hashSize, st.multiKey))
	case uint8(RequestGetCertificate):
		return wrap(decodeGetCertificateReq(b))
	case uint8(ResponseCertificate):
		return wrap(decodeCertificateRsp(b))
	case uint8(RequestChallenge):
		v, err := decodeChallengeReq(b)
		if err == nil {
			st.summary = v.SummaryType != SummaryNone
		}
		return wrap(v, err)
	case uint8(ResponseChallengeAuth):
		return wrap(decodeChallengeAuthRsp(b, st.hashSize, st.sigSize, st.summary))
	case uint8(RequestGetMeasurements):
		v, err := decodeGetMeasurementsReq(b)
		if err == nil {
			st.measOp, st.measSigned = v.Op, v.signed()
		}
		return wrap(v, err)
	case uint8(ResponseMeasurements):
		sig := 0
		if st.measSigned {
			sig = st.sigSize
		}
		return wrap(decodeMeasurementsRsp(b, st.measOp, sig))
	case uint8(ResponseError):
		return wrap(decodeErrorRsp(b))
	case uint8(RequestRespondIfReady):
		return wrap(decodeRespondIfReadyReq(b))
	case uint8(RequestChunkSend):
		return wrap(decodeChunkSendReq(b))
	case uint8(ResponseChunkSendAck):
		return wrap(decodeChunkSendAckRsp(b))
	case uint8(RequestChunkGet):
		return wrap(decodeChunkGetReq(b))
	case uint8(ResponseChunkResponse):
		return wrap(decodeChunkResponseRsp(b))
	case uint8(RequestVendorDefined):
		v, err := decodeVendorDefinedReq(b)
		if err != nil {
			return nil, nil, err
		}
		return v, v.marshalRequest(), nil
	case uint8(ResponseVendorDefined):
		v, err := decodeVendorDefinedRsp(b)
		if err != nil {
			return nil, nil, err
		}
		return v, v.marshalResponse(), nil
	}
	return nil, nil, errSkip
}

var errSkip = errors.New("no codec for this code")

// rawOf returns the raw field of a decoded message.
func rawOf(v any) []byte {
	return reflect.ValueOf(v).Elem().FieldByName("raw").Bytes()
}

// TestGoldenDecode decodes every SPDM message of every recorded file (plain
// and decrypted secured ones) that has a codec here, checks raw is the exact
// input, re-encoding gives the same bytes, the DOE-padded form decodes to the
// exact length at the transport edge, and no proper prefix decodes.
func TestGoldenDecode(t *testing.T) {
	total := 0
	for _, name := range refFiles {
		t.Run(name, func(t *testing.T) {
			f := loadRef(t, name)
			st := &codecState{}
			decoded := 0
			for i, m := range f.Messages {
				b := m.spdm(t)
				if b == nil {
					continue
				}
				v, enc, err := decodeAny(b, st)
				if errors.Is(err, errSkip) {
					continue
				}
				if err != nil {
					t.Fatalf("message %d %s: %v", i, m.name(), err)
				}
				decoded++
				if !bytes.Equal(rawOf(v), b) {
					t.Fatalf("message %d %s: raw differs from input", i, m.name())
				}
				if !bytes.Equal(enc, b) {
					t.Fatalf("message %d %s: re-encoding differs\n got % x\nwant % x", i, m.name(), enc, b)
				}
				if m.DOEType == 1 {
					padded := m.doe(t)
					cp := *st
					v2, err := decodePadded(padded, func(p []byte) (any, error) { v, _, err := decodeAny(p, &cp); return v, err })
					if err != nil || len(rawOf(v2)) != m.SPDMLen {
						t.Fatalf("message %d %s: padded decode: %v", i, m.name(), err)
					}
				}
				if b[1] == uint8(ResponseError) && ErrorCode(b[2]) == ErrorCodeVendorDefined {
					continue
				}
				for n := 0; n < len(b); n++ {
					cp := *st
					if _, _, err := decodeAny(b[:n], &cp); err == nil {
						t.Fatalf("message %d %s: proper prefix of %d/%d bytes decodes", i, m.name(), n, len(b))
					}
				}
			}
			if decoded < 20 {
				t.Fatalf("only %d messages decoded", decoded)
			}
			total += decoded
		})
	}
	t.Logf("%d golden messages decoded", total)
}

// TestDecodeErrorsNameField checks that a bad field is named with its offset.
func TestDecodeErrorsNameField(t *testing.T) {
	f := loadRef(t, "v12-p384")
	cert := f.Messages[15].spdm(t) // CERTIFICATE
	bad := bytes.Clone(cert)
	bad[4]++ // PortionLength one larger than the data
	_, err := decodeCertificateRsp(bad)
	var de *DecodeError
	if !errors.As(err, &de) || de.Msg != "CERTIFICATE" || de.Field != "CertChain" || de.Offset != 8 {
		t.Fatalf("got %#v", err)
	}
	bad = append(bytes.Clone(cert), 0)
	if _, err := decodeCertificateRsp(bad); !errors.As(err, &de) || de.Field != "end" {
		t.Fatalf("trailing byte: %v", err)
	}
	// Reserved byte in CAPABILITIES.
	caps := bytes.Clone(f.Messages[9].spdm(t))
	caps[4] = 1
	if _, err := decodeCapabilitiesRsp(caps); !errors.As(err, &de) || de.Field != "Reserved" || de.Offset != 4 {
		t.Fatalf("reserved: %v", err)
	}
	// Padding that is not zero is not padding.
	padded := append(bytes.Clone(cert), 1)
	if _, err := decodePadded(padded, decodeCertificateRsp); err == nil {
		t.Fatal("non-zero pad accepted")
	}
	padded = append(bytes.Clone(cert), 0, 0, 0, 0)
	if _, err := decodePadded(padded, decodeCertificateRsp); err == nil {
		t.Fatal("4 pad bytes accepted")
	}
}

// roundTripCases are hand-built messages covering fields the recordings do
// not (chunking, vendor-defined, 1.0 layouts, errors with data).
func roundTripCases() [][]byte {
	var out [][]byte
	for _, v := range []Version{Version10, Version11, Version12, Version13} {
		out = append(out,
			(&getCapabilitiesReq{Version: v, CTExponent: 12, Flags: CapCert | CapChal, DataTransferSize: 4096, MaxSPDMmsgSize: 8192}).marshal(),
			(&capabilitiesRsp{Version: v, CTExponent: 20, Flags: CapCert | CapChal | CapMeasSig, DataTransferSize: 64, MaxSPDMmsgSize: 4096}).marshal(),
			(&getMeasurementsReq{Version: v, Attrs: MeasAttrSignature, Op: 3, Nonce: [32]byte{1, 2}, SlotParam: 2, Context: [8]byte{9}}).marshal(),
			(&getMeasurementsReq{Version: v, Op: MeasOpCount}).marshal(),
			(&challengeReq{Version: v, Slot: 3, SummaryType: SummaryTCB, Nonce: [32]byte{5}, Context: [8]byte{6}}).marshal(),
			(&errorRsp{Version: v, Code: ErrorCodeResponseNotReady, RDExponent: 3, ReqCode: 0xE0, Token: 7, RDTM: 2}).marshal(),
			(&errorRsp{Version: v, Code: ErrorCodeBusy}).marshal(),
			(&respondIfReadyReq{Version: v, ReqCode: 0x83, Token: 9}).marshal(),
			(&vendorDefined{Version: v, StandardID: 3, VendorID: []byte{1, 0}, Payload: []byte{1, 0x81, 0, 0}}).marshalRequest(),
			(&vendorDefined{Version: v, StandardID: 3, VendorID: []byte{1, 0}, Payload: []byte{1, 0x01}}).marshalResponse(),
			(&getCertificateReq{Version: v, Slot: 7, Offset: 10, Length: 400}).marshal(),
			(&certificateRsp{Version: v, Slot: 7, Portion: []byte{1, 2, 3}, Remainder: 99}).marshal(),
		)
		if v >= Version11 {
			out = append(out, (&negotiateAlgorithmsReq{Version: v, MeasSpec: 1, BaseAsym: AsymECDSAP384 | AsymRSAPSS3072, BaseHash: HashSHA384,
				ExtAsym: []uint32{7}, Algs: []algStruct{{Type: algTypeDHE, Supported: 0x18}, {Type: algTypeAEAD, Supported: 2, Ext: []uint32{1}}}}).marshal())
		} else {
			out = append(out, (&negotiateAlgorithmsReq{Version: v, MeasSpec: 1, BaseAsym: AsymECDSAP256, BaseHash: HashSHA256}).marshal())
		}
	}
	for _, v := range []Version{Version12, Version13} {
		out = append(out,
			(&chunkSendReq{Version: v, Handle: 4, Seq: 0, LargeSize: 100, Chunk: bytes.Repeat([]byte{7}, 30)}).marshal(),
			(&chunkSendReq{Version: v, Handle: 4, Seq: 3, Last: true, Chunk: []byte{1}}).marshal(),
			(&chunkSendAckRsp{Version: v, Handle: 4, Seq: 3, Response: []byte{0x12, 0x7f, 1, 0}}).marshal(),
			(&chunkGetReq{Version: v, Handle: 5, Seq: 2}).marshal(),
			(&chunkResponseRsp{Version: v, Handle: 5, Seq: 0, LargeSize: 1000, Chunk: []byte{1, 2}}).marshal(),
			(&chunkResponseRsp{Version: v, Handle: 5, Seq: 9, Last: true, Chunk: []byte{3}}).marshal(),
			(&errorRsp{Version: v, Code: ErrorCodeLargeResponse, Ext: []byte{5}}).marshal(),
		)
	}
	return out
}

func TestRoundTripAndPrefixes(t *testing.T) {
	for i, b := range roundTripCases() {
		st := &codecState{hashSize: 48, sigSize: 96}
		v, enc, err := decodeAny(b, st)
		if err != nil {
			t.Fatalf("case %d (% x): %v", i, b, err)
		}
		if !bytes.Equal(enc, b) || !bytes.Equal(rawOf(v), b) {
			t.Fatalf("case %d: round trip differs", i)
		}
		if b[1] == uint8(ResponseChunkSendAck) {
			continue // the embedded response is the rest of the message
		}
		for n := 0; n < len(b); n++ {
			if _, _, err := decodeAny(b[:n], &codecState{hashSize: 48, sigSize: 96}); err == nil {
				t.Fatalf("case %d: prefix %d of %d decodes", i, n, len(b))
			}
		}
	}
}

func TestMeasurementBlockTypes(t *testing.T) {
	svn := []byte{7, 0, 0, 0, 0, 0, 0, 0}
	mode := []byte{0x3f, 0, 0, 0, 4, 0, 0, 0, 0x1f, 0, 0, 0, 0x11, 0, 0, 0}
	blocks := []MeasurementBlock{
		{Index: 1, DMTF: true, Type: MeasTypeImmutableROM, Value: bytes.Repeat([]byte{1}, 48)},
		{Index: 0x10, DMTF: true, Type: MeasTypeFirmwareSVN, RawBitStream: true, Value: svn},
		{Index: 0xFE, DMTF: true, Type: MeasTypeDeviceMode, RawBitStream: true, Value: mode},
		{Index: 6, DMTF: true, Type: MeasTypeFirmwareVersion, RawBitStream: true, Value: []byte("1.2.3")},
		{Index: 7, DMTF: true, Type: 0x55, Value: []byte{9}},
	}
	rec := marshalMeasurementRecord(blocks)
	got, err := parseMeasurementRecord(rec, len(blocks))
	if err != nil {
		t.Fatal(err)
	}
	if *got[1].SVN != 7 || got[2].DeviceMode.OperationalModeCapabilities != 0x3f || got[2].DeviceMode.DeviceModeState != 0x11 ||
		*got[3].Version != "1.2.3" || got[4].TypeName() != "unknown-0x55" || got[0].TypeName() != "immutable-rom" {
		t.Fatalf("decoded %+v", got)
	}
	if _, err := parseMeasurementRecord(rec, len(blocks)+1); err == nil {
		t.Fatal("more blocks than present accepted")
	}
	if _, err := parseMeasurementRecord(rec, len(blocks)-1); err == nil {
		t.Fatal("trailing block accepted")
	}
	bad := bytes.Clone(rec)
	bad[0] = 0
	if _, err := parseMeasurementRecord(bad, len(blocks)); err == nil {
		t.Fatal("index 0 accepted")
	}
}

func ExampleErrorCode() {
	var err error = &ResponderError{Request: RequestGetMeasurements, Code: ErrorCodeBusy}
	fmt.Println(errors.Is(err, ErrorCodeBusy), err)
	// Output: true spdm: GET_MEASUREMENTS: responder returned ERROR Busy (data 0x00)
}

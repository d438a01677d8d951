package spdm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"
)

// rspTestKeys caches keys per algorithm across tests (RSA generation is slow).
var rspTestKeys sync.Map

type rspTestKey struct {
	key   crypto.Signer
	chain [][]byte
}

// rspKey returns a signer and a two-certificate chain (root, leaf) for asym.
func rspKey(t testing.TB, asym AsymAlgo) rspTestKey {
	t.Helper()
	if k, ok := rspTestKeys.Load(asym); ok {
		return k.(rspTestKey)
	}
	gen := func() crypto.Signer {
		var k crypto.Signer
		var err error
		switch asym {
		case AsymECDSAP256:
			k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case AsymECDSAP384:
			k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		case AsymECDSAP521:
			k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		case AsymRSASSA2048, AsymRSAPSS2048:
			k, err = rsa.GenerateKey(rand.Reader, 2048)
		case AsymRSASSA3072, AsymRSAPSS3072:
			k, err = rsa.GenerateKey(rand.Reader, 3072)
		case AsymEd25519:
			_, k, err = ed25519.GenerateKey(rand.Reader)
		default:
			t.Fatalf("no test key for %s", asym)
		}
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rootKey, leafKey := gen(), gen()
	now := time.Now()
	root := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "responder test root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "responder test leaf"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true}
	rootCert, _ := x509.ParseCertificate(rootDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, rootCert, leafKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	k := rspTestKey{key: leafKey, chain: [][]byte{rootDER, leafDER}}
	rspTestKeys.Store(asym, k)
	return k
}

func rspTestMeasurements() []ResponderMeasurement {
	return []ResponderMeasurement{
		{Index: 2, Type: MeasTypeMutableFirmware, Value: []byte("firmware")},
		{Index: 1, Type: MeasTypeImmutableROM, Value: []byte("rom")},
		{Index: 0x10, Type: MeasTypeFirmwareSVN, Raw: true, Value: []byte{7, 0, 0, 0, 0, 0, 0, 0}},
		{Index: 0xFE, Type: MeasTypeDeviceMode, Raw: true, Value: make([]byte, 16)},
	}
}

func rspTestResponder(t testing.TB, asym AsymAlgo, mod func(*ResponderConfig)) *Responder {
	k := rspKey(t, asym)
	keyAsym := asym
	switch asym {
	case AsymRSASSA2048, AsymRSAPSS2048:
		keyAsym = AsymRSASSA2048 | AsymRSAPSS2048
	case AsymRSASSA3072, AsymRSAPSS3072:
		keyAsym = AsymRSASSA3072 | AsymRSAPSS3072
	}
	cfg := ResponderConfig{
		Keys:         []ResponderKey{{Asym: keyAsym, Chain: k.chain, Signer: k.key}},
		Measurements: rspTestMeasurements,
	}
	if mod != nil {
		mod(&cfg)
	}
	return NewResponder(cfg)
}

// tReq is a minimal requester built from the codecs: it keeps its own
// transcripts, independently of the responder's.
type tReq struct {
	t        testing.TB
	r        *Responder
	v        Version
	asym     AsymAlgo
	hash     HashAlgo
	dts      uint32
	flags    uint32
	vca      []byte
	m1       []byte
	l1       []byte
	chainBuf []byte
	pad      bool
}

func (c *tReq) x(req []byte) []byte {
	c.t.Helper()
	wire := req
	if c.pad && len(req)%4 != 0 {
		wire = append(bytes.Clone(req), make([]byte, 4-len(req)%4)...)
	}
	rsp, err := c.r.Respond(context.Background(), wire)
	if err != nil {
		c.t.Fatalf("Respond: %v", err)
	}
	return rsp
}

// errCode returns the ERROR code of rsp, or 0 when it is not an ERROR.
func errCode(t testing.TB, rsp []byte) ErrorCode {
	t.Helper()
	if len(rsp) < 4 || rsp[1] != uint8(ResponseError) {
		return 0
	}
	e, err := decodeErrorRsp(rsp)
	if err != nil {
		t.Fatalf("bad ERROR: %v", err)
	}
	return e.Code
}

func (c *tReq) vcaFlow(asyms AsymAlgo, hashes HashAlgo) {
	c.t.Helper()
	gv := (&getVersionReq{}).marshal()
	vr := c.x(gv)
	ver, err := decodeVersionRsp(vr)
	if err != nil {
		c.t.Fatalf("VERSION: %v", err)
	}
	found := false
	for _, e := range ver.Entries {
		found = found || Version(e>>8) == c.v
	}
	if !found {
		c.t.Fatalf("version %s not offered: %x", c.v, ver.Entries)
	}
	if c.dts == 0 {
		c.dts = 0x10000
	}
	maxMsg := uint32(0x10000)
	if c.flags&CapChunk == 0 {
		maxMsg = c.dts // without CHUNK_CAP the two must be equal (DSP0274 1.2.0 §10.4)
	}
	gc := (&getCapabilitiesReq{Version: c.v, CTExponent: 10, Flags: CapCert | CapChal | c.flags, DataTransferSize: c.dts, MaxSPDMmsgSize: maxMsg}).marshal()
	cr := c.x(gc)
	caps, err := decodeCapabilitiesRsp(cr)
	if err != nil {
		c.t.Fatalf("CAPABILITIES: %v (%x)", err, cr)
	}
	if caps.Flags&(CapCert|CapChal|CapMeasSig) != CapCert|CapChal|CapMeasSig {
		c.t.Fatalf("responder flags %#x", caps.Flags)
	}
	na := &negotiateAlgorithmsReq{Version: c.v, MeasSpec: MeasurementSpecDMTF, BaseAsym: asyms, BaseHash: hashes}
	if c.v >= Version11 {
		na.Algs = []algStruct{{Type: algTypeDHE, Supported: uint16(DHESECP384R1)}, {Type: algTypeAEAD, Supported: uint16(AEADAES256GCM)},
			{Type: algTypeReqBaseAsym, Supported: uint16(AsymECDSAP384)}, {Type: algTypeKeySchedule, Supported: uint16(KeyScheduleSPDM)}}
	}
	if c.v >= Version12 {
		na.OtherParams = 0x02
	}
	nb := na.marshal()
	ar := c.x(nb)
	alg, err := decodeAlgorithmsRsp(ar)
	if err != nil {
		c.t.Fatalf("ALGORITHMS: %v (%x)", err, ar)
	}
	if !oneBit(alg.BaseAsym) || alg.BaseAsym&asyms == 0 || !oneBit(alg.BaseHash) || alg.BaseHash&hashes == 0 || !oneBit(alg.MeasHash) {
		c.t.Fatalf("selection asym %s hash %s meas %s from offer %s / %s", alg.BaseAsym, alg.BaseHash, alg.MeasHash, asyms, hashes)
	}
	c.asym, c.hash = alg.BaseAsym, alg.BaseHash
	c.vca = bytes.Join([][]byte{gv, vr, gc, cr, nb, ar}, nil)
}

func (c *tReq) certificates(chunk uint16) {
	c.t.Helper()
	gd := (&getDigestsReq{Version: c.v}).marshal()
	dr := c.x(gd)
	dg, err := decodeDigestsRsp(dr, c.hash.Size(), false)
	if err != nil || dg.SlotMask != 1 {
		c.t.Fatalf("DIGESTS: %v mask %v", err, dg)
	}
	c.m1 = append(c.m1, gd...)
	c.m1 = append(c.m1, dr...)
	var buf []byte
	for {
		gc := (&getCertificateReq{Version: c.v, Offset: uint16(len(buf)), Length: chunk}).marshal()
		cr := c.x(gc)
		cert, err := decodeCertificateRsp(cr)
		if err != nil {
			c.t.Fatalf("CERTIFICATE at %d: %v", len(buf), err)
		}
		if len(cert.Portion) > int(chunk) || len(cert.Portion) == 0 {
			c.t.Fatalf("portion %d for length %d", len(cert.Portion), chunk)
		}
		c.m1 = append(append(c.m1, gc...), cr...)
		buf = append(buf, cert.Portion...)
		if cert.Remainder == 0 {
			break
		}
	}
	want, _ := hashOf(c.hash, buf)
	if !bytes.Equal(want, dg.Digests[0]) {
		c.t.Fatal("digest does not match the chain buffer")
	}
	if int(buf[0])|int(buf[1])<<8 != len(buf) {
		c.t.Fatal("chain buffer Length field wrong")
	}
	c.chainBuf = buf
}

func (c *tReq) challenge(pub crypto.PublicKey, summary uint8) (*challengeAuthRsp, error) {
	c.t.Helper()
	req := &challengeReq{Version: c.v, SummaryType: summary, Context: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}
	rand.Read(req.Nonce[:])
	rb := req.marshal()
	rsp := c.x(rb)
	if code := errCode(c.t, rsp); code != 0 {
		return nil, code
	}
	ca, err := decodeChallengeAuthRsp(rsp, c.hash.Size(), c.asym.SignatureSize(), summary != SummaryNone)
	if err != nil {
		return nil, err
	}
	th, _ := hashOf(c.hash, c.vca, c.m1, rb, ca.unsigned())
	c.m1 = nil
	if want, _ := hashOf(c.hash, c.chainBuf); !bytes.Equal(want, ca.CertChainHash) {
		return ca, errors.New("cert chain hash")
	}
	if c.v >= Version13 && ca.Context != req.Context {
		return ca, errors.New("requester context")
	}
	return ca, verifySignature(c.v, c.asym, c.hash, ctxChallengeAuth, pub, th, ca.Signature)
}

func (c *tReq) measurements(pub crypto.PublicKey, op uint8, signed bool) (*measurementsRsp, error) {
	c.t.Helper()
	req := &getMeasurementsReq{Version: c.v, Op: op}
	if signed {
		req.Attrs = MeasAttrSignature
		rand.Read(req.Nonce[:])
	}
	rb := req.marshal()
	rsp := c.x(rb)
	if code := errCode(c.t, rsp); code != 0 {
		c.l1 = nil
		return nil, code
	}
	sig := 0
	if signed {
		sig = c.asym.SignatureSize()
	}
	m, err := decodeMeasurementsRsp(rsp, op, sig)
	if err != nil {
		return nil, err
	}
	c.l1 = append(append(c.l1, rb...), m.unsigned()...)
	if !signed {
		return m, nil
	}
	var vca []byte
	if c.v >= Version12 {
		vca = c.vca
	}
	th, _ := hashOf(c.hash, vca, c.l1)
	c.l1 = nil
	return m, verifySignature(c.v, c.asym, c.hash, ctxMeasurements, pub, th, m.Signature)
}

var rspAllVersions = []Version{Version10, Version11, Version12, Version13}

func TestResponderFlowAllVersionsAndAlgorithms(t *testing.T) {
	algs := []AsymAlgo{AsymECDSAP256, AsymECDSAP384, AsymECDSAP521, AsymRSASSA2048, AsymRSAPSS2048, AsymEd25519}
	for _, v := range rspAllVersions {
		for _, a := range algs {
			if a == AsymEd25519 && v < Version12 {
				continue
			}
			t.Run(v.String()+"/"+a.String(), func(t *testing.T) {
				k := rspKey(t, a)
				r := rspTestResponder(t, a, nil)
				c := &tReq{t: t, r: r, v: v, pad: true}
				c.vcaFlow(a|AsymRSASSA4096, HashSHA256|HashSHA384)
				if c.hash != HashSHA384 {
					t.Fatalf("hash %s, want the preferred sha-384", c.hash)
				}
				c.certificates(0x200)
				ca, err := c.challenge(k.key.Public(), SummaryAll)
				if err != nil {
					t.Fatalf("CHALLENGE_AUTH: %v", err)
				}
				// Summary hash = Hash(all blocks), as the all-measurements record shows them.
				all, err := c.measurements(k.key.Public(), MeasOpAll, true)
				if err != nil {
					t.Fatalf("MEASUREMENTS: %v", err)
				}
				if want, _ := hashOf(c.hash, all.Record); !bytes.Equal(want, ca.SummaryHash) {
					t.Error("measurement summary hash does not match the record")
				}
				if len(all.Blocks) != 4 || all.Blocks[0].Index != 1 || all.Blocks[3].Index != 0xFE {
					t.Fatalf("blocks %+v", all.Blocks)
				}
				if all.Blocks[0].RawBitStream || len(all.Blocks[0].Value) != 48 || !all.Blocks[2].RawBitStream || *all.Blocks[2].SVN != 7 {
					t.Errorf("block forms: %+v", all.Blocks[:3])
				}
				// One by one: count, unsigned reads, the last one signed over all of them (L1).
				cnt, err := c.measurements(nil, MeasOpCount, false)
				if err != nil || cnt.Param1 != 4 {
					t.Fatalf("count: %v %v", cnt, err)
				}
				for _, idx := range []uint8{1, 2, 0x10} {
					if _, err := c.measurements(nil, idx, false); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := c.measurements(k.key.Public(), 0xFE, true); err != nil {
					t.Fatalf("signed one-by-one: %v", err)
				}
				// An absent index is InvalidRequest and resets L1 on both sides.
				if _, err := c.measurements(nil, 0x33, false); !errors.Is(err, ErrorCodeInvalidRequest) {
					t.Fatalf("absent index: %v", err)
				}
				if _, err := c.measurements(k.key.Public(), 2, true); err != nil {
					t.Fatalf("after error: %v", err)
				}
				// A second CHALLENGE after more DIGESTS (B restarts after CHALLENGE_AUTH).
				c.certificates(0xFFFF)
				if _, err := c.challenge(k.key.Public(), SummaryNone); err != nil {
					t.Fatalf("second CHALLENGE_AUTH: %v", err)
				}
			})
		}
	}
}

func TestResponderFaults(t *testing.T) {
	a := AsymECDSAP256
	k := rspKey(t, a)
	run := func(t *testing.T, v Version, f ResponderFaults) (*tReq, error, error) {
		r := rspTestResponder(t, a, func(c *ResponderConfig) { c.Faults = f })
		c := &tReq{t: t, r: r, v: v}
		c.vcaFlow(a, HashSHA256)
		c.certificates(0xFFFF)
		_, cerr := c.challenge(k.key.Public(), SummaryAll)
		_, merr := c.measurements(k.key.Public(), MeasOpAll, true)
		return c, cerr, merr
	}
	t.Run("bad-signature", func(t *testing.T) {
		_, cerr, merr := run(t, Version12, ResponderFaults{BadSignature: true})
		if !errors.Is(cerr, errBadSignature) || !errors.Is(merr, errBadSignature) {
			t.Fatalf("challenge %v, measurements %v", cerr, merr)
		}
	})
	t.Run("wrong-nonce", func(t *testing.T) {
		_, cerr, merr := run(t, Version11, ResponderFaults{WrongNonce: true})
		if !errors.Is(cerr, errBadSignature) || !errors.Is(merr, errBadSignature) {
			t.Fatalf("challenge %v, measurements %v", cerr, merr)
		}
		_, cerr, _ = run(t, Version13, ResponderFaults{WrongNonce: true})
		if cerr == nil || cerr.Error() != "requester context" {
			t.Fatalf("1.3 context echo: %v", cerr)
		}
	})
	t.Run("wrong-cert-chain-hash", func(t *testing.T) {
		_, cerr, merr := run(t, Version12, ResponderFaults{WrongCertChainHash: true})
		if cerr == nil || cerr.Error() != "cert chain hash" || merr != nil {
			t.Fatalf("challenge %v, measurements %v", cerr, merr)
		}
	})
	t.Run("busy", func(t *testing.T) {
		r := rspTestResponder(t, a, func(c *ResponderConfig) { c.Faults.Busy = 2 })
		c := &tReq{t: t, r: r, v: Version12}
		gv := (&getVersionReq{}).marshal()
		for i := 0; i < 2; i++ {
			if code := errCode(t, c.x(gv)); code != ErrorCodeBusy {
				t.Fatalf("try %d: %v", i, code)
			}
		}
		if code := errCode(t, c.x(gv)); code != 0 {
			t.Fatalf("third try: %v", code)
		}
		r = rspTestResponder(t, a, func(c *ResponderConfig) { c.Faults.Busy = -1 })
		c = &tReq{t: t, r: r, v: Version12}
		for i := 0; i < 50; i++ {
			if code := errCode(t, c.x(gv)); code != ErrorCodeBusy {
				t.Fatalf("storm try %d: %v", i, code)
			}
		}
	})
	t.Run("not-ready", func(t *testing.T) {
		for _, n := range []int{2, -1} {
			r := rspTestResponder(t, a, func(c *ResponderConfig) { c.Faults.NotReady = n })
			c := &tReq{t: t, r: r, v: Version12}
			c.vcaFlow(a, HashSHA256)
			c.certificates(0xFFFF)
			req := &challengeReq{Version: c.v, SummaryType: SummaryNone}
			rb := req.marshal()
			rsp := c.x(rb)
			e, err := decodeErrorRsp(rsp)
			if err != nil || e.Code != ErrorCodeResponseNotReady || e.ReqCode != uint8(RequestChallenge) || e.RDTM < 2 {
				t.Fatalf("%x %v", rsp, err)
			}
			riy := (&respondIfReadyReq{Version: c.v, ReqCode: e.ReqCode, Token: e.Token}).marshal()
			for i := 0; i < 5; i++ {
				rsp = c.x(riy)
				if rsp[1] == uint8(ResponseChallengeAuth) {
					break
				}
				if errCode(t, rsp) != ErrorCodeResponseNotReady {
					t.Fatalf("RESPOND_IF_READY %d: %x", i, rsp)
				}
			}
			ready := rsp[1] == uint8(ResponseChallengeAuth)
			if ready != (n >= 0) {
				t.Fatalf("NotReady=%d: ready=%v", n, ready)
			}
			if !ready {
				continue
			}
			ca, err := decodeChallengeAuthRsp(rsp, c.hash.Size(), c.asym.SignatureSize(), false)
			if err != nil {
				t.Fatal(err)
			}
			th, _ := hashOf(c.hash, c.vca, c.m1, rb, ca.unsigned())
			if err := verifySignature(c.v, c.asym, c.hash, ctxChallengeAuth, k.key.Public(), th, ca.Signature); err != nil {
				t.Fatalf("held response: %v", err)
			}
			// A wrong token is UnexpectedRequest.
			if code := errCode(t, c.x(riy)); code != ErrorCodeUnexpectedRequest {
				t.Fatalf("stale RESPOND_IF_READY: %v", code)
			}
		}
	})
}

func TestResponderChunkGet(t *testing.T) {
	a := AsymRSAPSS2048
	k := rspKey(t, a)
	r := rspTestResponder(t, a, nil)
	c := &tReq{t: t, r: r, v: Version12, dts: 64, flags: CapChunk}
	c.vcaFlow(a, HashSHA256)
	if code := errCode(t, c.x((&chunkGetReq{Version: c.v}).marshal())); code != ErrorCodeUnexpectedRequest {
		t.Fatalf("CHUNK_GET with no large response pending: %v", code)
	}
	c.certificates(48) // portions that fit in one message
	// Ask for the whole chain at once: LargeResponse, then CHUNK_GET.
	gc := (&getCertificateReq{Version: c.v, Length: 0xFFFF}).marshal()
	rsp := c.x(gc)
	e, err := decodeErrorRsp(rsp)
	if err != nil || e.Code != ErrorCodeLargeResponse || len(e.Ext) != 1 {
		t.Fatalf("want LargeResponse, got %x (%v)", rsp, err)
	}
	var large []byte
	for seq := uint16(0); ; seq++ {
		cr := c.x((&chunkGetReq{Version: c.v, Handle: e.Ext[0], Seq: seq}).marshal())
		if len(cr) > 64 {
			t.Fatalf("chunk %d is %d bytes, over the requester's DataTransferSize", seq, len(cr))
		}
		ch, err := decodeChunkResponseRsp(cr)
		if err != nil {
			t.Fatalf("CHUNK_RESPONSE %d: %v", seq, err)
		}
		if seq == 0 && ch.LargeSize < 1000 {
			t.Fatalf("LargeMessageSize %d", ch.LargeSize)
		}
		large = append(large, ch.Chunk...)
		if ch.Last {
			break
		}
	}
	cert, err := decodeCertificateRsp(large)
	if err != nil || cert.Remainder != 0 || !bytes.Equal(cert.Portion, c.chainBuf) {
		t.Fatalf("reassembled CERTIFICATE: %v", err)
	}
	c.m1 = append(append(c.m1, gc...), large...)
	// CHALLENGE_AUTH (RSA-2048: 256-byte signature) also goes in chunks; its
	// transcript is the whole large message.
	_ = k
	if code := errCode(t, c.x((&challengeReq{Version: c.v}).marshal())); code != ErrorCodeLargeResponse {
		t.Fatalf("CHALLENGE over small DTS: %v", code)
	}
	// Without CHUNK_CAP on the requester side the certificate is cut to fit.
	c2 := &tReq{t: t, r: r, v: Version12, dts: 64}
	c2.vcaFlow(a, HashSHA256)
	cr := c2.x((&getCertificateReq{Version: c2.v, Length: 0xFFFF}).marshal())
	if len(cr) != 64 {
		t.Fatalf("unchunked certificate response is %d bytes", len(cr))
	}
}

func TestResponderErrors(t *testing.T) {
	a := AsymECDSAP256
	vd := func(_ context.Context, std uint16, vid, payload []byte) ([]byte, error) {
		return append([]byte("echo:"), payload...), nil
	}
	r := rspTestResponder(t, a, func(c *ResponderConfig) { c.VendorDefined = vd; c.Versions = []Version{Version11, Version12} })
	c := &tReq{t: t, r: r, v: Version12}
	// Before VCA.
	if code := errCode(t, c.x((&getDigestsReq{Version: Version12}).marshal())); code != ErrorCodeUnexpectedRequest {
		t.Fatalf("GET_DIGESTS before VCA: %v", code)
	}
	if code := errCode(t, c.x([]byte{1, 2})); code != ErrorCodeInvalidRequest {
		t.Fatalf("short request: %v", code)
	}
	c.x((&getVersionReq{}).marshal())
	if code := errCode(t, c.x((&getCapabilitiesReq{Version: Version13, DataTransferSize: 64, MaxSPDMmsgSize: 64}).marshal())); code != ErrorCodeVersionMismatch {
		t.Fatalf("unoffered version: %v", code)
	}
	c.vcaFlow(a, HashSHA256)
	for name, tc := range map[string]struct {
		req  []byte
		want ErrorCode
	}{
		"version-mismatch": {(&getDigestsReq{Version: Version11}).marshal(), ErrorCodeVersionMismatch},
		"key-exchange":     {[]byte{0x12, uint8(RequestKeyExchange), 0, 0}, ErrorCodeUnsupportedRequest},
		"unknown":          {[]byte{0x12, 0x99, 0, 0}, ErrorCodeUnsupportedRequest},
		"slot-1":           {(&getCertificateReq{Version: Version12, Slot: 1, Length: 10}).marshal(), ErrorCodeInvalidRequest},
		"offset-past-end":  {(&getCertificateReq{Version: Version12, Offset: 0xFFF0, Length: 10}).marshal(), ErrorCodeInvalidRequest},
		"trailing-junk":    {append((&getDigestsReq{Version: Version12}).marshal(), 1), ErrorCodeInvalidRequest},
		"chunk-get-no-cap": {(&chunkGetReq{Version: Version12}).marshal(), ErrorCodeUnsupportedRequest},
		"caps-again":       {(&getCapabilitiesReq{Version: Version12, DataTransferSize: 64, MaxSPDMmsgSize: 64}).marshal(), ErrorCodeUnexpectedRequest},
	} {
		if code := errCode(t, c.x(tc.req)); code != tc.want {
			t.Errorf("%s: got %v, want %v", name, code, tc.want)
		}
	}
	// Vendor-defined pass-through.
	rsp := c.x((&vendorDefined{Version: Version12, StandardID: 3, VendorID: []byte{1, 0}, Payload: []byte{1, 0x10}}).marshalRequest())
	vdr, err := decodeVendorDefinedRsp(rsp)
	if err != nil || vdr.StandardID != 3 || !bytes.Equal(vdr.VendorID, []byte{1, 0}) || string(vdr.Payload) != "echo:\x01\x10" {
		t.Fatalf("VENDOR_DEFINED_RESPONSE %x: %v", rsp, err)
	}
	// Without a hook it is unsupported.
	r2 := rspTestResponder(t, a, nil)
	c2 := &tReq{t: t, r: r2, v: Version12}
	c2.vcaFlow(a, HashSHA256)
	if code := errCode(t, c2.x((&vendorDefined{Version: Version12, StandardID: 3}).marshalRequest())); code != ErrorCodeUnsupportedRequest {
		t.Fatalf("no hook: %v", code)
	}
	// Nothing in common.
	c3 := &tReq{t: t, r: r2, v: Version12}
	c3.x((&getVersionReq{}).marshal())
	c3.x((&getCapabilitiesReq{Version: Version12, DataTransferSize: 64, MaxSPDMmsgSize: 64}).marshal())
	if code := errCode(t, c3.x((&negotiateAlgorithmsReq{Version: Version12, MeasSpec: 1, BaseAsym: AsymRSASSA4096, BaseHash: HashSHA256}).marshal())); code != ErrorCodeInvalidRequest {
		t.Fatalf("no common algorithm: %v", code)
	}
	// A requester without the DMTF measurement specification negotiates,
	// but gets no measurements.
	c4 := &tReq{t: t, r: r2, v: Version12}
	c4.x((&getVersionReq{}).marshal())
	c4.x((&getCapabilitiesReq{Version: Version12, DataTransferSize: 64, MaxSPDMmsgSize: 64}).marshal())
	ar, err := decodeAlgorithmsRsp(c4.x((&negotiateAlgorithmsReq{Version: Version12, BaseAsym: AsymECDSAP256, BaseHash: HashSHA256}).marshal()))
	if err != nil || ar.MeasSpecSel != 0 || ar.MeasHash != 0 || ar.BaseAsym != AsymECDSAP256 {
		t.Fatalf("ALGORITHMS without measurement spec: %+v %v", ar, err)
	}
	if code := errCode(t, c4.x((&getMeasurementsReq{Version: Version12, Op: MeasOpAll}).marshal())); code != ErrorCodeUnsupportedRequest {
		t.Fatalf("measurements without a measurement spec: %v", code)
	}
	// Cancelled context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r2.Respond(ctx, (&getVersionReq{}).marshal()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestResponderChangingMeasurements(t *testing.T) {
	a := AsymECDSAP256
	k := rspKey(t, a)
	n := 0
	r := rspTestResponder(t, a, func(c *ResponderConfig) {
		c.Measurements = func() []ResponderMeasurement {
			n++
			return []ResponderMeasurement{{Index: 1, Type: MeasTypeMutableFirmware, Value: []byte{byte(n)}}}
		}
	})
	c := &tReq{t: t, r: r, v: Version12}
	c.vcaFlow(a, HashSHA256)
	m1, err := c.measurements(k.key.Public(), MeasOpAll, true)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := c.measurements(k.key.Public(), MeasOpAll, true)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(m1.Record, m2.Record) || m1.Param2&0x30 != 0x20 || m2.Param2&0x30 != 0x10 {
		t.Fatalf("content-changed: %#x then %#x", m1.Param2, m2.Param2)
	}
}

// FuzzResponder: no request makes the responder panic or answer with
// something its own codecs cannot classify.
func FuzzResponder(f *testing.F) {
	f.Add([]byte{0x10, 0x84, 0, 0}, []byte{0x12, 0xe1, 0, 0, 0, 10, 0, 0, 6, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0}, []byte{0x12, 0x81, 0, 0})
	f.Add([]byte{0x10, 0x84, 0, 0}, []byte{0x11, 0xe1, 0, 0, 0, 10, 0, 0, 6, 0, 0, 0}, []byte{0x11, 0xe0, 1, 0xff})
	// Every request the reference requester sent, in windows of three.
	for _, name := range []string{"v11-p256", "v12-p384", "v13-p384"} {
		var reqs [][]byte
		for _, m := range loadRef(f, name).Messages {
			if m.DOEType == 1 && m.Dir == "req" {
				reqs = append(reqs, m.doe(f))
			}
		}
		for i := 0; i+2 < len(reqs) && i < 40; i++ {
			f.Add(reqs[i], reqs[i+1], reqs[i+2])
		}
	}
	k := rspKey(f, AsymECDSAP256)
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		r := NewResponder(ResponderConfig{Keys: []ResponderKey{{Asym: AsymECDSAP256, Chain: k.chain, Signer: k.key}}, Measurements: rspTestMeasurements})
		for _, req := range [][]byte{a, b, c} {
			rsp, err := r.Respond(context.Background(), req)
			if err != nil || len(rsp) < 4 {
				t.Fatalf("Respond(%x) = %x, %v", req, rsp, err)
			}
		}
	})
}

func TestResponderSlots(t *testing.T) {
	// Slot 0 and slot 2 hold distinct P-256 identities; slot 1 an RSA one,
	// which is not provisioned once P-256 is negotiated.
	k0 := rspKey(t, AsymECDSAP256)
	k0b := rspKeyFresh(t)
	rsa := rspKey(t, AsymRSASSA2048)
	r := NewResponder(ResponderConfig{
		Keys: []ResponderKey{
			{Slot: 0, Asym: AsymECDSAP256, Chain: k0.chain, Signer: k0.key},
			{Slot: 1, Asym: AsymRSASSA2048, Chain: rsa.chain, Signer: rsa.key},
			{Slot: 2, Asym: AsymECDSAP256, Chain: k0b.chain, Signer: k0b.key},
		},
		Measurements: rspTestMeasurements,
	})
	for _, v := range []Version{Version11, Version13} {
		c := &tReq{t: t, r: r, v: v}
		c.vcaFlow(AsymECDSAP256, HashSHA256)
		dr := c.x((&getDigestsReq{Version: v}).marshal())
		dg, err := decodeDigestsRsp(dr, 32, false)
		if err != nil || dg.SlotMask != 0x05 || len(dg.Digests) != 2 || bytes.Equal(dg.Digests[0], dg.Digests[1]) {
			t.Fatalf("%s DIGESTS mask %#x (%v)", v, dg.SlotMask, err)
		}
		if code := errCode(t, c.x((&getCertificateReq{Version: v, Slot: 1, Length: 100}).marshal())); code != ErrorCodeInvalidRequest {
			t.Fatalf("unprovisioned slot 1: %v", code)
		}
		cr := c.x((&getCertificateReq{Version: v, Slot: 2, Length: 0xFFFF}).marshal())
		cert, err := decodeCertificateRsp(cr)
		if err != nil || cert.Slot != 2 {
			t.Fatalf("slot 2 CERTIFICATE: %v", err)
		}
		if h, _ := hashOf(HashSHA256, cert.Portion); !bytes.Equal(h, dg.Digests[1]) {
			t.Fatal("slot 2 chain does not hash to its digest")
		}
		c.m1 = append(append(append(c.m1, (&getDigestsReq{Version: v}).marshal()...), dr...), (&getCertificateReq{Version: v, Slot: 2, Length: 0xFFFF}).marshal()...)
		c.m1 = append(c.m1, cr...)
		c.chainBuf = cert.Portion
		req := &challengeReq{Version: v, Slot: 2}
		rb := req.marshal()
		ca, err := decodeChallengeAuthRsp(c.x(rb), 32, 64, false)
		if err != nil || ca.Param1 != 2 || ca.SlotMask != 1<<2 {
			t.Fatalf("CHALLENGE_AUTH slot 2: %v %+v", err, ca)
		}
		th, _ := hashOf(HashSHA256, c.vca, c.m1, rb, ca.unsigned())
		if err := verifySignature(v, AsymECDSAP256, HashSHA256, ctxChallengeAuth, k0b.key.Public(), th, ca.Signature); err != nil {
			t.Fatalf("slot 2 signature: %v", err)
		}
		// Signed measurements with SlotIDParam 2 are signed by slot 2's key.
		mq := &getMeasurementsReq{Version: v, Attrs: MeasAttrSignature, Op: MeasOpAll, SlotParam: 2}
		mb := mq.marshal()
		mr, err := decodeMeasurementsRsp(c.x(mb), MeasOpAll, 64)
		if err != nil || mr.Param2&0x0F != 2 {
			t.Fatalf("MEASUREMENTS slot 2: %v", err)
		}
		var vca []byte
		if v >= Version12 {
			vca = c.vca
		}
		th, _ = hashOf(HashSHA256, vca, mb, mr.unsigned())
		if err := verifySignature(v, AsymECDSAP256, HashSHA256, ctxMeasurements, k0b.key.Public(), th, mr.Signature); err != nil {
			t.Fatalf("slot 2 measurement signature: %v", err)
		}
	}
}

// rspKeyFresh is a second, distinct P-256 identity.
func rspKeyFresh(t testing.TB) rspTestKey {
	t.Helper()
	saved, had := rspTestKeys.LoadAndDelete(AsymECDSAP256)
	k := rspKey(t, AsymECDSAP256)
	rspTestKeys.Delete(AsymECDSAP256)
	if had {
		rspTestKeys.Store(AsymECDSAP256, saved)
	}
	return k
}

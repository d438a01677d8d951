package spdm

// GET_KEY_PAIR_INFO / KEY_PAIR_INFO (SPDM 1.3, GET_KEY_PAIR_INFO_CAP):
// what a responder tells about one of its key pairs. DSP0274 1.3
// (request: KeyPairID; response: TotalKeyPairs, KeyPairID, Capabilities,
// KeyUsageCapabilities, CurrentKeyUsage, AsymAlgoCapabilities,
// CurrentAsymAlgo, PublicKeyInfoLen, AssocCertSlotMask, PublicKeyInfo).
// Field layout and validity rules as DMTF's libspdm applies them
// (libspdm_req_get_key_pair_info.c, libspdm_rsp_key_pair_info.c).
// SET_KEY_PAIR_INFO is not implemented on either side.

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/bits"

	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// KeyPairCap is the Capabilities field of KEY_PAIR_INFO: what
// SET_KEY_PAIR_INFO may change. A responder without SET_KEY_PAIR_INFO_CAP
// reports 0.
type KeyPairCap uint16

// KeyPairCap bits.
const (
	KeyPairCapGenKey    KeyPairCap = 1 << 0
	KeyPairCapErasable  KeyPairCap = 1 << 1
	KeyPairCapCertAssoc KeyPairCap = 1 << 2
	KeyPairCapKeyUsage  KeyPairCap = 1 << 3
	KeyPairCapAsymAlgo  KeyPairCap = 1 << 4
	KeyPairCapShareable KeyPairCap = 1 << 5
	keyPairCapMask      KeyPairCap = 1<<6 - 1
)

// KeyPairAsym is the AsymAlgoCapabilities / CurrentAsymAlgo bit set of
// KEY_PAIR_INFO (not the BaseAsymAlgo numbering: one bit per key type).
type KeyPairAsym uint32

// KeyPairAsym bits.
const (
	KeyPairRSA2048  KeyPairAsym = 1 << 0
	KeyPairRSA3072  KeyPairAsym = 1 << 1
	KeyPairRSA4096  KeyPairAsym = 1 << 2
	KeyPairECC256   KeyPairAsym = 1 << 3
	KeyPairECC384   KeyPairAsym = 1 << 4
	KeyPairECC521   KeyPairAsym = 1 << 5
	KeyPairSM2      KeyPairAsym = 1 << 6
	KeyPairEd25519  KeyPairAsym = 1 << 7
	KeyPairEd448    KeyPairAsym = 1 << 8
	keyPairAsymMask KeyPairAsym = 1<<9 - 1
)

// keyUsageDefined are the KeyUsageMask bits DSP0274 1.3 defines: KEY_EX,
// CHALLENGE, MEASUREMENT, ENDPOINT_INFO, standards (14) and vendor (15).
const keyUsageDefined uint16 = 0x000F | 1<<14 | 1<<15

// keyPairAsymOf maps a key's BaseAsymAlgo bits to its KEY_PAIR_INFO bit.
func keyPairAsymOf(a AsymAlgo) KeyPairAsym {
	switch {
	case a&(AsymRSASSA2048|AsymRSAPSS2048) != 0:
		return KeyPairRSA2048
	case a&(AsymRSASSA3072|AsymRSAPSS3072) != 0:
		return KeyPairRSA3072
	case a&(AsymRSASSA4096|AsymRSAPSS4096) != 0:
		return KeyPairRSA4096
	case a&AsymECDSAP256 != 0:
		return KeyPairECC256
	case a&AsymECDSAP384 != 0:
		return KeyPairECC384
	case a&AsymECDSAP521 != 0:
		return KeyPairECC521
	case a&AsymSM2P256 != 0:
		return KeyPairSM2
	case a&AsymEd25519 != 0:
		return KeyPairEd25519
	case a&AsymEd448 != 0:
		return KeyPairEd448
	}
	return 0
}

// KeyPairInfo is a decoded KEY_PAIR_INFO.
type KeyPairInfo struct {
	TotalKeyPairs        uint8
	KeyPairID            uint8
	Capabilities         KeyPairCap
	KeyUsageCapabilities uint16 // KeyUsageMask bits the key may be given
	CurrentKeyUsage      uint16 // KeyUsageMask bits it has now
	AsymAlgoCapabilities KeyPairAsym
	CurrentAsymAlgo      KeyPairAsym // at most one bit
	AssocCertSlotMask    uint8
	// PublicKeyInfo is the DER AlgorithmIdentifier of the key (the
	// SubjectPublicKeyInfo's algorithm), empty when the responder sends none.
	PublicKeyInfo []byte
}

// getKeyPairInfoReq is GET_KEY_PAIR_INFO: header + KeyPairID.
type getKeyPairInfoReq struct {
	Version   Version
	KeyPairID uint8
	raw       []byte
}

func (m *getKeyPairInfoReq) marshal() []byte {
	return hdr{m.Version, uint8(RequestGetKeyPairInfo), 0, 0}.append(wire.NewBuilder(nil)).AddU8(m.KeyPairID).Bytes()
}

// decodeGetKeyPairInfoReq decodes GET_KEY_PAIR_INFO (reserved Param1/2
// must be zero, as for every other request here).
func decodeGetKeyPairInfoReq(b []byte) (*getKeyPairInfoReq, error) {
	d, h, m := newDecoder("GET_KEY_PAIR_INFO", b), hdr{}, &getKeyPairInfoReq{}
	if !d.header(&h, uint8(RequestGetKeyPairInfo)) || !d.check(h.Param1 == 0, "Param1", "reserved not zero") ||
		!d.check(h.Param2 == 0, "Param2", "reserved not zero") || !d.u8(&m.KeyPairID, "KeyPairID") || !d.end() {
		return nil, d.err()
	}
	m.Version, m.raw = h.Version, b
	return m, nil
}

// keyPairInfoRsp is KEY_PAIR_INFO (1.3 layout; 1.4's PQC tail is not
// accepted).
type keyPairInfoRsp struct {
	Version Version
	KeyPairInfo
	raw []byte
}

func (m *keyPairInfoRsp) marshal() []byte {
	b := hdr{m.Version, uint8(ResponseKeyPairInfo), 0, 0}.append(wire.NewBuilder(nil))
	b.AddU8(m.TotalKeyPairs).AddU8(m.KeyPairID).AddU16(uint16(m.Capabilities)).
		AddU16(m.KeyUsageCapabilities).AddU16(m.CurrentKeyUsage).
		AddU32(uint32(m.AsymAlgoCapabilities)).AddU32(uint32(m.CurrentAsymAlgo)).
		AddU16(uint16(len(m.PublicKeyInfo))).AddU8(m.AssocCertSlotMask).AddBytes(m.PublicKeyInfo)
	return b.Bytes()
}

// decodeKeyPairInfoRsp decodes KEY_PAIR_INFO strictly: every length,
// the KeyPairID range, the defined bits of each mask, "current" within
// "capabilities", at most one current algorithm, SHAREABLE only with
// CERT_ASSOC, and a PublicKeyInfo that is one DER AlgorithmIdentifier.
// Whether Capabilities may be non-zero (SET_KEY_PAIR_INFO_CAP) and that
// the KeyPairID is the one asked for are the requester's checks.
func decodeKeyPairInfoRsp(b []byte) (*keyPairInfoRsp, error) {
	d, h, m := newDecoder("KEY_PAIR_INFO", b), hdr{}, &keyPairInfoRsp{}
	var caps, pkLen uint16
	var asymCaps, asymCur uint32
	ok := d.header(&h, uint8(ResponseKeyPairInfo)) &&
		d.check(h.Version >= Version13, "SPDMVersion", "KEY_PAIR_INFO is SPDM 1.3+") &&
		d.check(h.Param1 == 0, "Param1", "reserved not zero") && d.check(h.Param2 == 0, "Param2", "reserved not zero") &&
		d.u8(&m.TotalKeyPairs, "TotalKeyPairs") && d.u8(&m.KeyPairID, "KeyPairID") &&
		d.check(m.KeyPairID != 0 && m.KeyPairID <= m.TotalKeyPairs, "KeyPairID", "0 or above TotalKeyPairs") &&
		d.u16(&caps, "Capabilities") &&
		d.check(KeyPairCap(caps)&^keyPairCapMask == 0, "Capabilities", "undefined bits set") &&
		d.check(KeyPairCap(caps)&KeyPairCapShareable == 0 || KeyPairCap(caps)&KeyPairCapCertAssoc != 0, "Capabilities", "SHAREABLE_CAP without CERT_ASSOC_CAP") &&
		d.u16(&m.KeyUsageCapabilities, "KeyUsageCapabilities") &&
		d.check(m.KeyUsageCapabilities != 0 && m.KeyUsageCapabilities&^keyUsageDefined == 0, "KeyUsageCapabilities", "empty or undefined bits set") &&
		d.u16(&m.CurrentKeyUsage, "CurrentKeyUsage") &&
		d.check(m.CurrentKeyUsage&^m.KeyUsageCapabilities == 0, "CurrentKeyUsage", "usage outside KeyUsageCapabilities") &&
		d.u32(&asymCaps, "AsymAlgoCapabilities") &&
		d.check(asymCaps != 0 && KeyPairAsym(asymCaps)&^keyPairAsymMask == 0, "AsymAlgoCapabilities", "empty or undefined bits set") &&
		d.u32(&asymCur, "CurrentAsymAlgo") &&
		d.check(bits.OnesCount32(asymCur) <= 1, "CurrentAsymAlgo", "more than one algorithm") &&
		d.check(asymCur&^asymCaps == 0, "CurrentAsymAlgo", "algorithm outside AsymAlgoCapabilities") &&
		d.u16(&pkLen, "PublicKeyInfoLen") && d.u8(&m.AssocCertSlotMask, "AssocCertSlotMask") &&
		d.bytes(&m.PublicKeyInfo, int(pkLen), "PublicKeyInfo") &&
		d.check(pkLen == 0 || validAlgorithmIdentifier(m.PublicKeyInfo), "PublicKeyInfo", "not one DER AlgorithmIdentifier") &&
		d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.Capabilities, m.raw = h.Version, KeyPairCap(caps), b
	m.AsymAlgoCapabilities, m.CurrentAsymAlgo = KeyPairAsym(asymCaps), KeyPairAsym(asymCur)
	if pkLen == 0 {
		m.PublicKeyInfo = nil
	}
	return m, nil
}

// validAlgorithmIdentifier reports whether b is exactly one DER
// AlgorithmIdentifier (SEQUENCE { OID, optional parameters }).
func validAlgorithmIdentifier(b []byte) bool {
	var ai pkix.AlgorithmIdentifier
	rest, err := asn1.Unmarshal(b, &ai)
	return err == nil && len(rest) == 0
}

// publicKeyInfoOf is the PublicKeyInfo of a key: the AlgorithmIdentifier
// of its SubjectPublicKeyInfo (libspdm's sample key pairs carry the same).
func publicKeyInfoOf(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	var spki struct {
		Algorithm asn1.RawValue
		Key       asn1.BitString
	}
	if rest, err := asn1.Unmarshal(der, &spki); err != nil || len(rest) != 0 {
		return nil
	}
	return spki.Algorithm.FullBytes
}

// GetKeyPairInfo sends GET_KEY_PAIR_INFO for keyPairID (1..TotalKeyPairs)
// outside a session. DSP0274 1.3 (GET_KEY_PAIR_INFO). It needs SPDM 1.3 and the
// responder's GET_KEY_PAIR_INFO_CAP (else a *ProtocolError before
// anything is sent). The response must answer the KeyPairID asked for,
// must report Capabilities 0 unless the responder has
// SET_KEY_PAIR_INFO_CAP, and must decode strictly (decodeKeyPairInfoRsp);
// a violation is a *ProtocolError or *DecodeError and sticky. The message
// is in no transcript.
func (r *Requester) GetKeyPairInfo(ctx context.Context, keyPairID uint8) (*KeyPairInfo, error) {
	var out *KeyPairInfo
	err := r.step(ctx, func() (err error) {
		out, err = r.getKeyPairInfo(ctx, keyPairID)
		return err
	})
	return out, err
}

// getKeyPairInfo is one GET_KEY_PAIR_INFO/KEY_PAIR_INFO exchange.
// Precondition: VCA done.
func (r *Requester) getKeyPairInfo(ctx context.Context, id uint8) (*KeyPairInfo, error) {
	if err := r.ready(RequestGetKeyPairInfo); err != nil {
		return nil, err
	}
	n := r.neg
	switch {
	case n.Version < Version13:
		return nil, protoErr(RequestGetKeyPairInfo, "needs SPDM 1.3, negotiated %s", n.Version)
	case n.Caps&CapGetKeyPairInfo == 0:
		return nil, protoErr(RequestGetKeyPairInfo, "responder has no GET_KEY_PAIR_INFO_CAP")
	case id == 0:
		return nil, protoErr(RequestGetKeyPairInfo, "KeyPairID 0 is reserved")
	}
	rsp, err := r.exchange(ctx, (&getKeyPairInfoReq{Version: n.Version, KeyPairID: id}).marshal(), false)
	if err != nil {
		return nil, err
	}
	m, err := decodePadded(rsp, decodeKeyPairInfoRsp)
	if err != nil {
		return nil, err
	}
	switch {
	case m.KeyPairID != id:
		return nil, protoErr(RequestGetKeyPairInfo, "KEY_PAIR_INFO answers KeyPairID %d, asked for %d", m.KeyPairID, id)
	case m.Capabilities != 0 && n.Caps&CapSetKeyPairInfo == 0:
		return nil, protoErr(RequestGetKeyPairInfo, "Capabilities %#x without SET_KEY_PAIR_INFO_CAP", uint16(m.Capabilities))
	}
	info := m.KeyPairInfo
	return &info, nil
}

// rspKeyPair is one key pair of a responder as KEY_PAIR_INFO reports it.
type rspKeyPair struct {
	key   *ResponderKey // the first Keys entry of the pair
	usage uint16        // union of the entries' key usages
	slots uint8         // slots of the entries
}

// keyPairsAdvertised reports whether the responder advertises
// GET_KEY_PAIR_INFO_CAP: at 1.3, in a multi-key configuration (the key
// pairs a multi-key DIGESTS names), never with PublicKeyOnly.
func (r *Responder) keyPairsAdvertised(v Version) bool {
	return v >= Version13 && len(r.cfg.Keys) > 0 && !r.cfg.PublicKeyOnly &&
		(r.cfg.MultiKey == MultiKeyOnly || r.cfg.MultiKey == MultiKeyNegotiated)
}

// keyPairs groups Keys by KeyPairID (keyPairID): index i is KeyPairID i+1;
// an ID no key has is a nil entry.
func (r *Responder) keyPairs() []*rspKeyPair {
	var out []*rspKeyPair
	for i := range r.cfg.Keys {
		k := &r.cfg.Keys[i]
		id := int(r.keyPairID(k))
		for len(out) < id {
			out = append(out, nil)
		}
		p := out[id-1]
		if p == nil {
			p = &rspKeyPair{key: k}
			out[id-1] = p
		}
		p.usage |= (&rspSlot{key: k}).keyUsage()
		if k.Slot < maxSlots {
			p.slots |= 1 << k.Slot
		}
	}
	return out
}

// getKeyPairInfo answers GET_KEY_PAIR_INFO (DSP0274 1.3 (GET_KEY_PAIR_INFO)):
// UnsupportedRequest without GET_KEY_PAIR_INFO_CAP (or before 1.3);
// InvalidRequest for a malformed request or a KeyPairID of 0, above
// TotalKeyPairs or naming no key. Capabilities is 0 (no
// SET_KEY_PAIR_INFO); the key's usage and algorithm are fixed, so
// the capabilities equal the current values.
func (r *Responder) getKeyPairInfo(req []byte) []byte {
	if !r.keyPairsAdvertised(r.c.version) {
		return r.errRsp(ErrorCodeUnsupportedRequest, uint8(RequestGetKeyPairInfo))
	}
	m, ok := rspDecode(req, decodeGetKeyPairInfoReq)
	pairs := r.keyPairs()
	if !ok || m.KeyPairID == 0 || int(m.KeyPairID) > len(pairs) || pairs[m.KeyPairID-1] == nil {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	p := pairs[m.KeyPairID-1]
	asym := keyPairAsymOf(p.key.Asym)
	rsp := &keyPairInfoRsp{Version: r.c.version, KeyPairInfo: KeyPairInfo{
		TotalKeyPairs: uint8(len(pairs)), KeyPairID: m.KeyPairID,
		KeyUsageCapabilities: p.usage, CurrentKeyUsage: p.usage,
		AsymAlgoCapabilities: asym, CurrentAsymAlgo: asym,
		AssocCertSlotMask: p.slots, PublicKeyInfo: publicKeyInfoOf(p.key.Signer.Public()),
	}}
	return r.send(RequestGetKeyPairInfo, rsp.marshal())
}

package spdm

import (
	"crypto/x509"
	"slices"

	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// Responder preference orders: the first supported entry the requester also
// offered is selected.
var (
	rspAsymOrder = []AsymAlgo{AsymECDSAP384, AsymECDSAP256, AsymECDSAP521, AsymRSAPSS3072, AsymRSASSA3072,
		AsymRSAPSS4096, AsymRSASSA4096, AsymRSAPSS2048, AsymRSASSA2048, AsymEd25519}
	rspHashOrder = []HashAlgo{HashSHA384, HashSHA256, HashSHA512, HashSHA3_384, HashSHA3_256, HashSHA3_512}
)

// getVersion answers GET_VERSION (DSP0274 §10.3) and restarts the connection.
func (r *Responder) getVersion(req []byte) []byte {
	if Version(req[0]) != Version10 {
		// GET_VERSION is always sent as 1.0 (DSP0274 1.2.0 §10.3); any
		// other version is VersionMismatch, and the connection is kept.
		return (&errorRsp{Version: Version10, Code: ErrorCodeVersionMismatch}).marshal()
	}
	m, ok := rspDecode(req, decodeGetVersionReq)
	r.endAllSessions()
	r.c = rspConn{}
	if !ok {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	v := &versionRsp{}
	for _, ver := range r.cfg.Versions {
		v.Entries = append(v.Entries, uint16(ver)<<8)
	}
	rsp := v.marshal()
	r.c.stage = rspStageVersion
	r.c.tr.addVCA(m.raw, rsp) // r.c was just reset: A starts here
	return rsp
}

// rspFlags are the responder's CAPABILITIES flags at version v.
func (r *Responder) rspFlags(v Version) uint32 {
	var f uint32
	if len(r.cfg.Keys) > 0 {
		f |= CapCert | CapChal
		if r.cfg.PublicKeyOnly {
			f &^= CapCert
			if v >= Version11 {
				f |= CapPubKeyID
			} else {
				f &^= CapChal // 1.0 has no provisioned keys: nothing can sign
			}
		}
		if r.cfg.Measurements != nil {
			f |= CapMeasSig
			if f&CapChal == 0 {
				f ^= CapMeasSig | CapMeasNoSig
			}
		}
	} else if r.cfg.Measurements != nil {
		f |= CapMeasNoSig
	}
	if v >= Version12 && !r.cfg.NoChunk {
		f |= CapChunk
	}
	if v >= Version13 && len(r.cfg.Keys) > 0 && !r.cfg.PublicKeyOnly && r.cfg.MultiKey <= MultiKeyNegotiated {
		f |= uint32(r.cfg.MultiKey) << 26
	}
	if r.keyPairsAdvertised(v) {
		f |= CapGetKeyPairInfo
	}
	return f | r.sessionFlags(v)
}

// CapabilityFlags returns the CAPABILITIES flags the responder advertises
// to a requester speaking version v.
func (r *Responder) CapabilityFlags(v Version) uint32 { return r.rspFlags(v) }

// getCapabilities answers GET_CAPABILITIES (DSP0274 §10.4).
func (r *Responder) getCapabilities(req []byte) []byte {
	if r.c.stage != rspStageVersion {
		return r.errRsp(ErrorCodeUnexpectedRequest, 0)
	}
	v := Version(req[0])
	if !slices.Contains(r.cfg.Versions, v) {
		return r.errRsp(ErrorCodeVersionMismatch, 0)
	}
	m, ok := rspDecode(req, decodeGetCapabilitiesReq)
	if !ok || !validRequesterCaps(m) {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	rsp := &capabilitiesRsp{Version: v, CTExponent: r.cfg.CTExponent, Flags: r.rspFlags(v)}
	if v >= Version12 {
		rsp.DataTransferSize, rsp.MaxSPDMmsgSize = r.cfg.DataTransferSize, r.cfg.MaxSPDMmsgSize
		r.c.reqDTS, r.c.reqMaxMsg = m.DataTransferSize, m.MaxSPDMmsgSize
		r.c.chunk = rsp.Flags&CapChunk != 0 && m.Flags&CapChunk != 0
	}
	if v >= Version13 && m.Param1&1 != 0 && r.c.chunk {
		// The supported-algorithms block is sent only to a requester that
		// asked for it and when both sides have CHUNK_CAP (DSP0274 1.3.0
		// §10.4).
		rsp.Supported = r.supportedAlgorithms()
	}
	b := rsp.marshal()
	r.c.version, r.c.reqFlags, r.c.stage = v, m.Flags, rspStageCapabilities
	r.c.tr.addVCA(m.raw, b)
	return b
}

// keyFor returns the first key that signs with a.
func (r *Responder) keyFor(a AsymAlgo) *ResponderKey {
	for i := range r.cfg.Keys {
		if r.cfg.Keys[i].Asym&a != 0 {
			return &r.cfg.Keys[i]
		}
	}
	return nil
}

// negotiateAlgorithms answers NEGOTIATE_ALGORITHMS (DSP0274 §10.5): exactly
// one of what the requester offered for each field, from the configured set.
func (r *Responder) negotiateAlgorithms(req []byte) []byte {
	if r.c.stage != rspStageCapabilities {
		return r.errRsp(ErrorCodeUnexpectedRequest, 0)
	}
	m, ok := rspDecode(req, decodeNegotiateAlgorithmsReq)
	if !ok {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	v := r.c.version
	rsp := &algorithmsRsp{Version: v}
	if len(r.cfg.Keys) > 0 {
		for _, a := range rspAsymOrder {
			if m.BaseAsym&a != 0 && r.cfg.Asym&a != 0 && (a != AsymEd25519 || v >= Version12) && r.keyFor(a) != nil {
				rsp.BaseAsym = a
				break
			}
		}
		if rsp.BaseAsym == 0 {
			return r.errRsp(ErrorCodeInvalidRequest, 0) // no common signature algorithm
		}
	}
	for _, h := range rspHashOrder {
		if m.BaseHash&h != 0 && r.cfg.Hash&h != 0 {
			rsp.BaseHash = h
			break
		}
	}
	if rsp.BaseHash == 0 {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	// Measurements only when the requester speaks the DMTF measurement
	// specification; otherwise none is selected and GET_MEASUREMENTS is refused.
	if r.cfg.Measurements != nil && m.MeasSpec&MeasurementSpecDMTF != 0 {
		rsp.MeasSpecSel = MeasurementSpecDMTF
		rsp.MeasHash = r.cfg.MeasHash
		if rsp.MeasHash == 0 {
			rsp.MeasHash = rspMeasHashFor(rsp.BaseHash)
		}
	}
	if v >= Version12 {
		// Opaque data format: general (format 1) if offered, else format 0.
		switch {
		case m.OtherParams&0x02 != 0:
			rsp.OtherParamsSel = 0x02
		case m.OtherParams&0x01 != 0:
			rsp.OtherParamsSel = 0x01
		}
	}
	multiKey := false
	if v >= Version13 {
		// DSP0274 1.3.0 Table 32. The requester's MultiKeyConn bit is
		// MULTI_KEY_CONN_RSP: invalid when it contradicts our MULTI_KEY_CAP
		// (00b with the bit set, 01b with it clear).
		var ok bool
		multiKey, ok = multiKeyConn(multiKeyCapOf(r.rspFlags(v)), m.OtherParams&otherParamsMultiKeyConn != 0)
		if !ok {
			return r.errRsp(ErrorCodeInvalidRequest, 0)
		}
		// Our bit is MULTI_KEY_CONN_REQ, from the requester's MULTI_KEY_CAP:
		// set for 01b; for 10b it is our choice, and this responder, which
		// verifies no requester signatures, leaves it clear.
		if multiKeyCapOf(r.c.reqFlags) == MultiKeyOnly {
			rsp.OtherParamsSel |= otherParamsMultiKeyConn
		}
	}
	// AlgStruct tables: each type the requester listed, nothing selected
	// (this responder has no KEY_EX_CAP, PSK_CAP or MUT_AUTH_CAP).
	// (KEY_EX_CAP: DHE, AEAD and key schedule are selected when sessions
	// are enabled and the requester has KEY_EX_CAP; responder_session.go.)
	r.c.dhe, r.c.aead, r.c.keySchedule = 0, 0, 0
	for _, a := range m.Algs {
		sel := algStruct{Type: a.Type, Supported: a.Supported}
		r.selectSessionAlgs(&sel)
		rsp.Algs = append(rsp.Algs, sel)
	}
	b := rsp.marshal()
	r.c.asym, r.c.hash, r.c.measHash, r.c.measSpec = rsp.BaseAsym, rsp.BaseHash, rsp.MeasHash, rsp.MeasSpecSel
	r.c.otherParams = rsp.OtherParamsSel
	r.c.multiKey = multiKey
	if r.cfg.PublicKeyOnly {
		if k := r.keyFor(rsp.BaseAsym); k != nil && rsp.BaseAsym != 0 {
			if der, err := x509.MarshalPKIXPublicKey(k.Signer.Public()); err == nil {
				r.c.pubKey = &rspSlot{key: k, chainBuf: der}
			}
		}
	}
	for i := range r.cfg.Keys {
		k := &r.cfg.Keys[i]
		if r.cfg.PublicKeyOnly {
			break
		}
		if k.Asym&rsp.BaseAsym != 0 && k.Slot < maxSlots && r.c.slots[k.Slot] == nil && len(k.Chain) > 0 {
			r.c.slots[k.Slot] = &rspSlot{key: k, chainBuf: rspChainBuffer(rsp.BaseHash, k.Chain)}
			r.c.slotMask |= 1 << k.Slot
		}
	}
	r.c.tr.addVCA(m.raw, b)
	r.c.stage = rspStageNegotiated
	return b
}

// rspMeasHashFor is the measurement hash matching a base hash.
func rspMeasHashFor(h HashAlgo) MeasHashAlgo {
	switch h {
	case HashSHA256:
		return MeasHashSHA256
	case HashSHA384:
		return MeasHashSHA384
	case HashSHA512:
		return MeasHashSHA512
	case HashSHA3_256:
		return MeasHashSHA3_256
	case HashSHA3_384:
		return MeasHashSHA3_384
	case HashSHA3_512:
		return MeasHashSHA3_512
	}
	return MeasHashRawBitStream
}

// rspChainBuffer is the SPDM certificate chain buffer (DSP0274 §10.7.1):
// Length(2) ‖ Reserved(2) ‖ RootHash(H) ‖ DER certificates, root first.
func rspChainBuffer(h HashAlgo, chain [][]byte) []byte {
	root, _ := hashOf(h, chain[0])
	b := wire.NewBuilder(nil).AddU16(0).AddU16(0).AddBytes(root)
	for _, c := range chain {
		b.AddBytes(c)
	}
	b.SetU16At(0, uint16(b.Len()))
	return b.Bytes()
}

// capEvent is EVENT_CAP (1.3), a session capability.
const capEvent uint32 = 1 << 25

// validRequesterCaps applies DSP0274's rules on the requester's
// GET_CAPABILITIES fields (1.2.0/1.3.0 §10.4, Table 11 flag descriptions;
// the same checks libspdm and DMTF's SPDM-Responder-Validator case 2.4 make).
// A request that breaks one is answered with ERROR(InvalidRequest).
func validRequesterCaps(m *getCapabilitiesReq) bool {
	v, f := m.Version, m.Flags
	has := func(c uint32) bool { return f&c != 0 }
	psk := f >> 10 & 3
	if v >= Version11 {
		if psk == 2 || psk == 3 { // requester PSK_CAP: 01b only; 10b, 11b reserved
			return false
		}
		if has(CapKeyEx) || psk != 0 {
			// Key exchange needs ENCRYPT_CAP or MAC_CAP.
			if !has(CapEncrypt) && !has(CapMAC) {
				return false
			}
		} else if has(CapEncrypt) || has(CapMAC) || has(CapHandshakeInClear) || has(CapHBeat) || has(CapKeyUpd) ||
			(v >= Version13 && has(capEvent)) {
			// Session capabilities without a way to open a session.
			return false
		}
		if !has(CapKeyEx) && has(CapHandshakeInClear) {
			return false // HANDSHAKE_IN_THE_CLEAR is a KEY_EXCHANGE property
		}
		if has(CapCert) || has(CapPubKeyID) {
			if has(CapCert) && has(CapPubKeyID) {
				return false // a certificate or a provisioned key, not both
			}
			if !has(CapChal) && !has(CapKeyEx) {
				return false // a key nothing can use
			}
		} else if has(CapChal) || has(CapMutAuth) {
			return false // CHAL_CAP/MUT_AUTH_CAP need a certificate or a key
		}
		if has(CapMutAuth) && !has(CapKeyEx) && !has(CapChal) {
			return false
		}
		// MUT_AUTH_CAP is carried out with encapsulated requests.
		if has(CapMutAuth) && !has(CapEncap) {
			return false
		}
	}
	if v >= Version12 {
		dts, max := m.DataTransferSize, m.MaxSPDMmsgSize
		if dts < minDataTransferSize || dts > max || (!has(CapChunk) && dts != max) {
			return false
		}
	}
	if v >= Version13 {
		if f>>22&3 == 3 || f>>26&3 == 3 { // EP_INFO_CAP, MULTI_KEY_CAP 11b reserved
			return false
		}
		if f>>26&3 != 0 && has(CapPubKeyID) {
			return false
		}
		if m.Param1&1 != 0 && !has(CapChunk) {
			return false // the supported-algorithms block needs CHUNK_CAP
		}
	}
	return true
}

// supportedAlgorithms is everything the responder can select in
// ALGORITHMS, for the 1.3 supported-algorithms block of CAPABILITIES.
func (r *Responder) supportedAlgorithms() *SupportedAlgorithms {
	sa := &SupportedAlgorithms{BaseHash: r.cfg.Hash, OtherParams: 0x01 | otherParamsOpaqueFmt1} // OpaqueDataFmt0 and Fmt1
	for _, a := range rspAsymOrder {
		if r.cfg.Asym&a != 0 && r.keyFor(a) != nil {
			sa.BaseAsym |= a
		}
	}
	if r.cfg.Measurements != nil {
		sa.MeasSpec = MeasurementSpecDMTF
	}
	if r.sessionsEnabled() {
		sa.DHE = r.cfg.Session.DHE & (DHESECP256R1 | DHESECP384R1 | DHESECP521R1)
		sa.AEAD = r.cfg.Session.AEAD
		if sa.AEAD == 0 {
			sa.AEAD = AEADAES128GCM | AEADAES256GCM | AEADChaCha20Poly1305
		}
		sa.KeySchedule = KeyScheduleSPDM
	}
	return sa
}

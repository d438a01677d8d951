package spdm

import (
	"crypto"
	"io"
	"slices"
)

// getDigests answers GET_DIGESTS (DSP0274 §10.6): one digest per
// provisioned slot, in slot order.
func (r *Responder) getDigests(req []byte) []byte {
	m, ok := rspDecode(req, decodeGetDigestsReq)
	if !ok {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	if r.c.slotMask == 0 {
		return r.errRsp(ErrorCodeUnsupportedRequest, uint8(RequestGetDigests))
	}
	rsp := &digestsRsp{Version: r.c.version, SlotMask: r.c.slotMask}
	if r.c.version >= Version13 {
		rsp.SupportedMask = r.c.slotMask
	}
	for _, sl := range r.c.slots {
		if sl != nil {
			dg, _ := hashOf(r.c.hash, sl.chainBuf)
			rsp.Digests = append(rsp.Digests, dg)
			if r.c.multiKey {
				// DSP0274 1.3.0 §10.6: per provisioned slot, in slot order.
				rsp.KeyPairID = append(rsp.KeyPairID, r.keyPairID(sl.key))
				rsp.CertInfo = append(rsp.CertInfo, CertModelDevice)
				rsp.KeyUsageMask = append(rsp.KeyUsageMask, sl.keyUsage())
			}
		}
	}
	b := rsp.marshal()
	r.c.tr.addDigests(m.raw, b, r.c.multiKey) // in a session, RespondSecured restores the log
	return r.send(RequestGetDigests, b)
}

// certHeaderLen is the CERTIFICATE header before the portion.
const rspCertHeaderLen = hdrLen + 4

// getCertificate answers GET_CERTIFICATE (DSP0274 §10.7) with the portion
// asked for, shortened to what the requester can take in one message when
// chunking is not available.
func (r *Responder) getCertificate(req []byte) []byte {
	m, ok := rspDecode(req, decodeGetCertificateReq)
	if !ok {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	if r.c.slotMask == 0 {
		return r.errRsp(ErrorCodeUnsupportedRequest, uint8(RequestGetCertificate))
	}
	sl := r.slot(m.Slot)
	if sl == nil {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	total := len(sl.chainBuf)
	off := int(m.Offset)
	rsp := &certificateRsp{Version: r.c.version, Slot: m.Slot}
	switch {
	case m.Param2&1 != 0: // 1.3 SlotSizeRequested
		rsp.Remainder = uint16(total)
	case off >= total:
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	default:
		n := min(int(m.Length), total-off)
		if lim := r.singleMessageLimit(); lim > 0 && !r.c.chunk && n > lim-rspCertHeaderLen {
			n = lim - rspCertHeaderLen
		}
		rsp.Portion = sl.chainBuf[off : off+n]
		rsp.Remainder = uint16(total - off - n)
	}
	b := rsp.marshal()
	r.c.tr.addCertificate(m.raw, b)
	return r.send(RequestGetCertificate, b)
}

// singleMessageLimit is the largest response the requester takes without
// chunking (its DataTransferSize, 1.2+), 0 = no limit.
func (r *Responder) singleMessageLimit() int { return int(r.c.reqDTS) }

// challenge answers CHALLENGE (DSP0274 §10.8), signing M1 = VCA ‖ B ‖
// CHALLENGE ‖ CHALLENGE_AUTH-without-signature.
func (r *Responder) challenge(req []byte) []byte {
	m, ok := rspDecode(req, decodeChallengeReq)
	if !ok {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	if r.c.slotMask == 0 && r.c.pubKey == nil {
		return r.errRsp(ErrorCodeUnsupportedRequest, uint8(RequestChallenge))
	}
	sl := r.slot(m.Slot)
	if m.Slot == 0x0F { // 0xF is SlotIDParam's spelling, not CHALLENGE's
		sl = nil
	}
	if sl == nil || (m.SummaryType != SummaryNone && (r.cfg.Measurements == nil || r.c.measSpec == 0)) || !r.usable(sl, RequestChallenge) {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	f := r.cfg.Faults
	rsp := &challengeAuthRsp{Version: r.c.version, Param1: m.Slot, Context: m.Context}
	if m.Slot == 0xFF {
		rsp.Param1 = 0x0F // provisioned key: SlotID 0xF, empty slot mask (DSP0274 1.2.0 §10.8)
	} else {
		rsp.SlotMask = 1 << m.Slot
	}
	rsp.CertChainHash, _ = hashOf(r.c.hash, sl.chainBuf)
	if f.WrongCertChainHash {
		rsp.CertChainHash, _ = hashOf(r.c.hash, append(slices.Clone(sl.chainBuf), 0))
	}
	if _, err := io.ReadFull(r.cfg.Rand, rsp.Nonce[:]); err != nil {
		return r.errRsp(ErrorCodeUnspecified, 0)
	}
	if m.SummaryType != SummaryNone {
		rsp.SummaryHash = r.summaryHash(m.SummaryType)
	}
	signedReq := m.raw
	if f.WrongNonce {
		signedReq = slices.Clone(m.raw)
		signedReq[hdrLen] ^= 0xFF
		if r.c.version >= Version13 {
			rsp.Context[0] ^= 0xFF
		}
	}
	rsp.Signature = make([]byte, r.c.asym.SignatureSize())
	full := rsp.marshal()
	unsigned := full[:len(full)-len(rsp.Signature)]
	th, _ := hashOf(r.c.hash, r.c.tr.m1(signedReq, unsigned))
	sig, err := signTranscript(r.cfg.Rand, r.c.version, r.c.asym, r.c.hash, ctxChallengeAuth, sl.key.Signer, th)
	if err != nil {
		return r.errRsp(ErrorCodeUnspecified, 0)
	}
	if f.BadSignature {
		sig[len(sig)/2] ^= 0x01
	}
	copy(full[len(unsigned):], sig)
	r.c.tr.resetB() // B restarts after CHALLENGE_AUTH
	return r.notReady(RequestChallenge, full)
}

// measurementBlocks returns the current measurements as blocks, digests
// under the negotiated measurement hash unless raw is asked for.
func (r *Responder) measurementBlocks(raw bool) []MeasurementBlock {
	ms := r.cfg.Measurements()
	slices.SortFunc(ms, func(a, b ResponderMeasurement) int { return int(a.Index) - int(b.Index) })
	ch := r.c.measHash.CryptoHash()
	out := make([]MeasurementBlock, 0, len(ms))
	for _, m := range ms {
		blk := MeasurementBlock{Index: m.Index, Spec: MeasurementSpecDMTF, DMTF: true, Type: m.Type & 0x7F}
		if m.Raw || raw || ch == 0 {
			blk.RawBitStream, blk.Value = true, m.Value
		} else {
			h := ch.New()
			h.Write(m.Value)
			blk.Value = h.Sum(nil)
		}
		out = append(out, blk)
	}
	return out
}

// summaryHash is the measurement summary hash of CHALLENGE_AUTH: the base
// hash of the concatenated blocks (all, or the TCB ones: ROM and firmware).
func (r *Responder) summaryHash(kind uint8) []byte {
	blocks := r.measurementBlocks(false)
	if kind == SummaryTCB {
		blocks = slices.DeleteFunc(blocks, func(b MeasurementBlock) bool {
			return b.Type != MeasTypeImmutableROM && b.Type != MeasTypeMutableFirmware
		})
	}
	h, _ := hashOf(r.c.hash, marshalMeasurementRecord(blocks))
	return h
}

// getMeasurements answers GET_MEASUREMENTS (DSP0274 §10.11). Signed
// responses sign L1 = [VCA (1.2+)] ‖ the GET_MEASUREMENTS/MEASUREMENTS
// exchanged since the last reset, ending before the signature.
func (r *Responder) getMeasurements(req []byte) []byte {
	m, ok := rspDecode(req, decodeGetMeasurementsReq)
	if !ok || r.cfg.Measurements == nil || r.c.measSpec == 0 {
		r.c.tr.resetL()
		if !ok {
			return r.errRsp(ErrorCodeInvalidRequest, 0)
		}
		return r.errRsp(ErrorCodeUnsupportedRequest, uint8(RequestGetMeasurements))
	}
	signed := m.signed()
	var sl *rspSlot
	if signed {
		if sl = r.slot(m.SlotParam); sl == nil || !r.usable(sl, RequestGetMeasurements) { // 1.0 has no SlotIDParam: slot 0
			r.c.tr.resetL()
			return r.errRsp(ErrorCodeInvalidRequest, 0)
		}
	}
	blocks := r.measurementBlocks(m.Attrs&MeasAttrRawBitStream != 0 && r.c.version >= Version12)
	// The nonce goes into every MEASUREMENTS, 1.0 unsigned included, as
	// DMTF's libspdm sends and expects it (SPDM-Responder-Validator 7.1).
	rsp := &measurementsRsp{Version: r.c.version, Context: m.Context, hasNonce: true}
	switch m.Op {
	case MeasOpCount:
		rsp.Param1 = uint8(len(blocks))
	case MeasOpAll:
	default:
		i := slices.IndexFunc(blocks, func(b MeasurementBlock) bool { return b.Index == m.Op })
		if i < 0 {
			r.c.tr.resetL()
			return r.errRsp(ErrorCodeInvalidRequest, 0)
		}
		blocks = blocks[i : i+1]
	}
	if m.Op != MeasOpCount {
		rsp.NumBlocks = uint8(len(blocks))
		rsp.Record = marshalMeasurementRecord(blocks)
	}
	if signed && r.c.version >= Version11 {
		rsp.Param2 = m.SlotParam
	}
	if signed && r.c.version >= Version12 {
		rsp.Param2 |= 0x20 // content changed: "no change detected"
		if prev, seen := r.c.lastRecord[m.Op]; seen && string(prev) != string(rsp.Record) {
			rsp.Param2 ^= 0x30 // "change detected"
		}
		if r.c.lastRecord == nil {
			r.c.lastRecord = map[uint8][]byte{}
		}
		r.c.lastRecord[m.Op] = rsp.Record
	}
	if _, err := io.ReadFull(r.cfg.Rand, rsp.Nonce[:]); err != nil {
		return r.errRsp(ErrorCodeUnspecified, 0)
	}
	f := r.cfg.Faults
	if signed && f.WrongNonce && r.c.version >= Version13 {
		rsp.Context[0] ^= 0xFF
	}
	if !signed {
		b := rsp.marshal()
		r.c.tr.addMeasurements(m.raw, b)
		return r.notReady(RequestGetMeasurements, b)
	}
	rsp.Signature = make([]byte, r.c.asym.SignatureSize())
	full := rsp.marshal()
	unsigned := full[:len(full)-len(rsp.Signature)]
	signedReq := m.raw
	if f.WrongNonce {
		signedReq = slices.Clone(m.raw)
		signedReq[hdrLen] ^= 0xFF
	}
	r.c.tr.addMeasurements(signedReq, unsigned)
	th, _ := hashOf(r.c.hash, r.c.tr.takeL1(r.c.version)) // L1 restarts after every signed response
	sig, err := signTranscript(r.cfg.Rand, r.c.version, r.c.asym, r.c.hash, ctxMeasurements, sl.key.Signer, th)
	if err != nil {
		return r.errRsp(ErrorCodeUnspecified, 0)
	}
	if f.BadSignature {
		sig[len(sig)/2] ^= 0x01
	}
	copy(full[len(unsigned):], sig)
	return r.notReady(RequestGetMeasurements, full)
}

// notReady implements Faults.NotReady: the response is held back behind
// ERROR ResponseNotReady. Otherwise it goes out through send.
func (r *Responder) notReady(code RequestCode, rsp []byte) []byte {
	n := r.cfg.Faults.NotReady
	if n == 0 {
		return r.send(code, rsp)
	}
	r.c.token++
	r.c.pending = &rspPending{code: code, token: r.c.token, rsp: rsp, left: n - 1}
	return r.notReadyRsp(code, r.c.token)
}

func (r *Responder) notReadyRsp(code RequestCode, token uint8) []byte {
	return (&errorRsp{Version: r.rspVersion(), Code: ErrorCodeResponseNotReady,
		RDExponent: rspRDExponent, ReqCode: uint8(code), Token: token, RDTM: rspRDTM}).marshal()
}

// respondIfReady answers RESPOND_IF_READY (DSP0274 §10.13) with the held
// response, once it is "ready".
func (r *Responder) respondIfReady(req []byte) []byte {
	m, ok := rspDecode(req, decodeRespondIfReadyReq)
	if !ok {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	p := r.c.pending
	if p == nil || m.ReqCode != uint8(p.code) || m.Token != p.token || m.Version != r.c.version {
		return r.errRsp(ErrorCodeUnexpectedRequest, 0)
	}
	if p.left != 0 {
		if p.left > 0 {
			p.left--
		}
		return r.notReadyRsp(p.code, p.token)
	}
	r.c.pending = nil
	return r.send(p.code, p.rsp)
}

// send delivers a response, switching to a chunked large response (1.2+)
// when it exceeds the requester's DataTransferSize.
func (r *Responder) send(code RequestCode, rsp []byte) []byte {
	lim := r.singleMessageLimit()
	if lim == 0 || len(rsp) <= lim {
		return rsp
	}
	if !r.c.chunk || (r.c.reqMaxMsg != 0 && len(rsp) > int(r.c.reqMaxMsg)) || len(rsp) > int(r.cfg.MaxSPDMmsgSize) {
		return r.errRsp(ErrorCodeResponseTooLarge, 0)
	}
	r.c.largeHandle++
	r.c.large = &rspLarge{handle: r.c.largeHandle, data: rsp}
	return (&errorRsp{Version: r.c.version, Code: ErrorCodeLargeResponse, Ext: []byte{r.c.largeHandle}}).marshal()
}

// chunkGet answers CHUNK_GET (DSP0274 §10.17) with the next chunk of the
// pending large response.
func (r *Responder) chunkGet(req []byte) []byte {
	if !r.c.chunk {
		return r.errRsp(ErrorCodeUnsupportedRequest, uint8(RequestChunkGet))
	}
	m, ok := rspDecode(req, decodeChunkGetReq)
	l := r.c.large
	if !ok || l == nil || m.Handle != l.handle || m.Seq != l.seq {
		r.c.large = nil
		if !ok {
			return r.errRsp(ErrorCodeInvalidRequest, 0)
		}
		return r.errRsp(ErrorCodeUnexpectedRequest, 0)
	}
	room := int(r.c.reqDTS) - (hdrLen + 8)
	if l.seq == 0 {
		room -= 4 // LargeMessageSize
	}
	n := min(room, len(l.data)-l.off)
	rsp := &chunkResponseRsp{Version: r.c.version, Handle: l.handle, Seq: l.seq, Chunk: l.data[l.off : l.off+n]}
	if l.seq == 0 {
		rsp.LargeSize = uint32(len(l.data))
	}
	l.off += n
	l.seq++
	if l.off == len(l.data) {
		rsp.Last = true
		r.c.large = nil
	}
	return rsp.marshal()
}

// keyPairID is the KeyPairID DIGESTS reports for k (ResponderKey.KeyPairID).
func (r *Responder) keyPairID(k *ResponderKey) uint8 {
	if k.KeyPairID != 0 {
		return k.KeyPairID
	}
	same := func(a, b *ResponderKey) bool {
		if a == b {
			return true
		}
		pub, ok := a.Signer.Public().(interface{ Equal(crypto.PublicKey) bool })
		return ok && pub.Equal(b.Signer.Public())
	}
	id := uint8(0)
	for i := range r.cfg.Keys {
		ki := &r.cfg.Keys[i]
		first := true // ki is the first entry with its public key
		for j := range i {
			if same(ki, &r.cfg.Keys[j]) {
				first = false
				break
			}
		}
		if first {
			id++
		}
		if same(k, ki) {
			return id
		}
	}
	return 1
}

// keyUsage is the slot's KeyUsageMask (ResponderKey.KeyUsage).
func (sl *rspSlot) keyUsage() uint16 {
	if sl.key.KeyUsage != 0 {
		return sl.key.KeyUsage
	}
	return KeyUsageKeyExchange | KeyUsageChallenge | KeyUsageMeasurement
}

// usable reports whether the slot's key may sign the response to rc: in a
// multi-key connection only what its KeyUsageMask allows (libspdm answers
// a slot without the usage bit with ERROR(InvalidRequest)).
func (r *Responder) usable(sl *rspSlot, rc RequestCode) bool {
	return !r.c.multiKey || sl.keyUsage()&keyUsageFor(rc) != 0
}

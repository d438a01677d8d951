package spdm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
)

// ChallengeResult is a verified CHALLENGE_AUTH and what an offline verifier
// needs to re-check it.
type ChallengeResult struct {
	Slot           uint8
	SummaryType    uint8
	Nonce          []byte // ours (the request's)
	ResponderNonce []byte // CHALLENGE_AUTH's own nonce
	SummaryHash    []byte // MeasurementSummaryHash (nil for type 0)
	CertChainHash  []byte
	Opaque         []byte
	Transcript     []byte // M1 without the signature
	Signature      []byte
	Verified       bool
}

// Challenge sends CHALLENGE for slot (whose chain Certificate has read) with
// a fresh 32-byte nonce (and 1.3 RequesterContext) from Options.Rand, and
// verifies CHALLENGE_AUTH: slot and slot mask, CertChainHash = hash of the
// slot's chain buffer, RequesterContext echo (1.3), and the signature over
// M1 = VCA ‖ digests/certificates since VCA (or the last CHALLENGE) ‖
// CHALLENGE ‖ CHALLENGE_AUTH-without-signature with the leaf key.
// DSP0274 1.3 §10.8, §15.
func (r *Requester) Challenge(ctx context.Context, slot, summaryType uint8) (*ChallengeResult, error) {
	var out *ChallengeResult
	err := r.step(ctx, func() (err error) {
		out, err = r.challenge(ctx, slot, summaryType)
		return err
	})
	return out, err
}

// challenge is one CHALLENGE/CHALLENGE_AUTH exchange (Challenge; r.step retries it after a resynch).
// Preconditions: VCA done, the slot's chain read (Certificate) or a provisioned public key.
func (r *Requester) challenge(ctx context.Context, slot, summaryType uint8) (*ChallengeResult, error) {
	if err := r.ready(RequestChallenge); err != nil {
		return nil, err
	}
	n := r.neg
	if n.Caps&CapChal == 0 {
		return nil, protoErr(RequestChallenge, "responder has no CHAL_CAP")
	}
	if !validSummaryType(summaryType) {
		return nil, protoErr(RequestChallenge, "summary type %#x invalid", summaryType)
	}
	if summaryType != SummaryNone && n.Caps&CapMeasMask == 0 {
		return nil, protoErr(RequestChallenge, "measurement summary requested from a responder without MEAS_CAP")
	}
	pub, keyBuf, err := r.slotKey(RequestChallenge, "challenge-signature", slot)
	if err != nil {
		return nil, err
	}
	q := &challengeReq{Version: n.Version, Slot: slot, SummaryType: summaryType}
	if err := r.readRand(q.Nonce[:]); err != nil {
		return nil, err
	}
	if n.Version >= Version13 {
		if err := r.readRand(q.Context[:]); err != nil {
			return nil, err
		}
	}
	req := q.marshal()
	sent := r.tr  // A and B as this CHALLENGE goes out
	r.tr.resetB() // B restarts after every CHALLENGE, answered or not
	rsp, err := r.exchange(ctx, req, true)
	if err != nil {
		return nil, err
	}
	hs, ss := n.BaseHash.Size(), n.BaseAsym.SignatureSize()
	ca, err := decodePadded(rsp, func(p []byte) (*challengeAuthRsp, error) {
		return decodeChallengeAuthRsp(p, hs, ss, summaryType != SummaryNone)
	})
	if err != nil {
		return nil, err
	}
	if slot == SlotProvisioned {
		// DSP0274 1.2.0 §10.8: SlotID 0xF and an empty slot mask for
		// a pre-provisioned key.
		if ca.Param1&0x0F != 0x0F || ca.SlotMask != 0 {
			return nil, protoErr(RequestChallenge, "CHALLENGE_AUTH slot %d mask %#02x for the provisioned key, want 15 and 0", ca.Param1&0x0F, ca.SlotMask)
		}
	} else {
		if ca.Param1&0x0F != slot {
			return nil, protoErr(RequestChallenge, "CHALLENGE_AUTH for slot %d, asked %d", ca.Param1&0x0F, slot)
		}
		if ca.SlotMask&(1<<slot) == 0 {
			return nil, protoErr(RequestChallenge, "CHALLENGE_AUTH slot mask %#02x lacks slot %d", ca.SlotMask, slot)
		}
	}
	if n.Version >= Version13 && ca.Context != q.Context {
		return nil, &ProtocolError{Request: RequestChallenge, Reason: "RequesterContext not echoed", Err: ErrNonceNotEchoed}
	}
	res := &ChallengeResult{Slot: slot, SummaryType: summaryType, Nonce: bytes.Clone(q.Nonce[:]),
		ResponderNonce: bytes.Clone(ca.Nonce[:]), SummaryHash: bytes.Clone(ca.SummaryHash),
		CertChainHash: bytes.Clone(ca.CertChainHash), Opaque: bytes.Clone(ca.Opaque), Signature: bytes.Clone(ca.Signature)}
	if want, _ := hashOf(n.BaseHash, keyBuf); !bytes.Equal(want, ca.CertChainHash) {
		return nil, &VerificationError{Step: "cert-chain-hash", Err: fmt.Errorf("CertChainHash %x, slot %d chain hashes to %x", ca.CertChainHash, slot, want)}
	}
	m1 := sent.m1(req, ca.unsigned())
	res.Transcript = m1
	th, err := hashOf(n.BaseHash, m1)
	if err != nil {
		return nil, err
	}
	if err := verifySignature(n.Version, n.BaseAsym, n.BaseHash, ctxChallengeAuth, pub, th, ca.Signature); err != nil {
		return nil, &VerificationError{Step: "challenge-signature", Err: err}
	}
	res.Verified = true
	return res, nil
}

// MeasOpts selects what GET_MEASUREMENTS asks for.
type MeasOpts struct {
	Index        uint8 // 0 = count only, 1..0xFE one block, 0xFF all
	Signed       bool
	RawBitStream bool  // 1.2+
	Slot         uint8 // signing slot (SlotIDParam)
}

// MeasurementsResult is one MEASUREMENTS answer.
type MeasurementsResult struct {
	Count          int // op 0: number of indices the device has
	Blocks         []MeasurementBlock
	Record         []byte // MeasurementRecord as sent
	ContentChanged uint8  // Param2 [5:4] (1.2+)
	Nonce          []byte // ours, when signed
	ResponderNonce []byte
	Opaque         []byte
	Signed         bool
	// Transcript is L1/L2 without the signature (signed responses only).
	Transcript []byte
	Signature  []byte
	Verified   bool
}

// Measurements sends one GET_MEASUREMENTS. A signed response is verified
// over L1 = [VCA (1.2+)] ‖ every GET_MEASUREMENTS/MEASUREMENTS pair since
// the last reset ‖ this request ‖ this response without its signature.
// The log resets on any other request, after each signed response and after
// an ERROR to GET_MEASUREMENTS. DSP0274 1.3 §10.11, §15.
func (r *Requester) Measurements(ctx context.Context, o MeasOpts) (*MeasurementsResult, error) {
	var out *MeasurementsResult
	err := r.step(ctx, func() error {
		var err error
		out, err = r.measurements(ctx, o)
		return err
	})
	return out, err
}

func (r *Requester) measurements(ctx context.Context, o MeasOpts) (*MeasurementsResult, error) {
	if err := r.ready(RequestGetMeasurements); err != nil {
		return nil, err
	}
	n := r.neg
	switch {
	case n.Caps&CapMeasMask == 0:
		return nil, protoErr(RequestGetMeasurements, "responder has no MEAS_CAP")
	case o.Signed && n.Caps&CapMeasMask != CapMeasSig:
		return nil, protoErr(RequestGetMeasurements, "signed measurements requested from a responder without MEAS_CAP signing")
	case o.RawBitStream && n.Version < Version12:
		return nil, protoErr(RequestGetMeasurements, "raw bit stream requested before 1.2")
	case o.Slot >= maxSlots && o.Slot != SlotProvisioned:
		return nil, protoErr(RequestGetMeasurements, "slot %d out of range", o.Slot)
	}
	// SlotIDParam is 4 bits: 0xF names the provisioned key (DSP0274 1.2.0 §10.11).
	slotParam := o.Slot & 0x0F
	q := &getMeasurementsReq{Version: n.Version, Op: o.Index, SlotParam: slotParam}
	var pub crypto.PublicKey
	if o.Signed {
		q.Attrs |= MeasAttrSignature
		var err error
		if pub, _, err = r.slotKey(RequestGetMeasurements, "measurements-signature", o.Slot); err != nil {
			return nil, err
		}
		if err := r.readRand(q.Nonce[:]); err != nil {
			return nil, err
		}
	}
	if o.RawBitStream {
		q.Attrs |= MeasAttrRawBitStream
	}
	if n.Version >= Version13 {
		if err := r.readRand(q.Context[:]); err != nil {
			return nil, err
		}
	}
	req := q.marshal()
	rsp, err := r.exchange(ctx, req, o.Signed)
	if err != nil {
		r.tr.resetL() // reset after an ERROR to GET_MEASUREMENTS
		return nil, err
	}
	sig := 0
	if o.Signed {
		sig = n.BaseAsym.SignatureSize()
	}
	mr, err := decodePadded(rsp, func(p []byte) (*measurementsRsp, error) { return decodeMeasurementsRsp(p, o.Index, sig) })
	if err != nil {
		return nil, err
	}
	r.tr.addMeasurements(req, mr.unsigned())
	if n.Version >= Version13 && mr.Context != q.Context {
		return nil, &ProtocolError{Request: RequestGetMeasurements, Reason: "RequesterContext not echoed", Err: ErrNonceNotEchoed}
	}
	if o.Signed && mr.Param2&0x0F != slotParam {
		return nil, protoErr(RequestGetMeasurements, "MEASUREMENTS signed by slot %d, asked %d", mr.Param2&0x0F, slotParam)
	}
	res := &MeasurementsResult{Blocks: mr.Blocks, Record: mr.Record, ContentChanged: (mr.Param2 >> 4) & 3,
		ResponderNonce: bytes.Clone(mr.Nonce[:]), Opaque: mr.Opaque, Signed: o.Signed}
	if o.Signed {
		res.Nonce = bytes.Clone(q.Nonce[:])
	}
	if err := checkBlocks(n, o.Index, mr); err != nil {
		return nil, err
	}
	if o.Index == MeasOpCount {
		res.Count = int(mr.Param1)
	}
	if !o.Signed {
		return res, nil
	}
	l1 := r.tr.takeL1(n.Version) // L restarts after each signed response
	res.Transcript, res.Signature = l1, bytes.Clone(mr.Signature)
	th, err := hashOf(n.BaseHash, l1)
	if err != nil {
		return nil, err
	}
	if err := verifySignature(n.Version, n.BaseAsym, n.BaseHash, ctxMeasurements, pub, th, mr.Signature); err != nil {
		return nil, &VerificationError{Step: "measurements-signature", Err: err}
	}
	res.Verified = true
	return res, nil
}

// checkBlocks checks what the request implies about the record: one block
// with the asked index, unique indices, digest sizes of the measurement hash.
func checkBlocks(n *Negotiated, op uint8, mr *measurementsRsp) error {
	if op != MeasOpCount && op != MeasOpAll && (len(mr.Blocks) != 1 || mr.Blocks[0].Index != op) {
		return protoErr(RequestGetMeasurements, "asked for index %d, got %d blocks", op, len(mr.Blocks))
	}
	var seen [256]bool
	for _, b := range mr.Blocks {
		if seen[b.Index] {
			return protoErr(RequestGetMeasurements, "index %d appears twice", b.Index)
		}
		seen[b.Index] = true
		if b.DMTF && !b.RawBitStream {
			if n.MeasHash == MeasHashRawBitStream {
				return protoErr(RequestGetMeasurements, "index %d is a digest but only raw bit streams were negotiated", b.Index)
			}
			if len(b.Value) != n.MeasHash.Size() {
				return protoErr(RequestGetMeasurements, "index %d digest is %d bytes, %s is %d", b.Index, len(b.Value), n.MeasHash, n.MeasHash.Size())
			}
		}
	}
	return nil
}

// MeasurementsOneByOne reads the device's measurements one index at a time,
// for devices that do not answer index 0xFF: op 0 for the count, then
// indices 1..0xFE until count blocks are found; absent indices (ERROR
// InvalidRequest) are skipped; the request made when only one block is
// missing asks for a signature (so the last block's response is signed and
// covers the unsigned ones before it in L1). Returns the blocks and the
// signed result. When an absent index was skipped after a block was read
// (its ERROR resets L1, so the last signature would not cover the blocks
// before it), the found indices are read again, each signed.
func (r *Requester) MeasurementsOneByOne(ctx context.Context, o MeasOpts) ([]MeasurementBlock, *MeasurementsResult, error) {
	cnt, err := r.Measurements(ctx, MeasOpts{Index: MeasOpCount, RawBitStream: o.RawBitStream})
	if err != nil {
		return nil, nil, err
	}
	if cnt.Count == 0 {
		return nil, nil, nil
	}
	var blocks []MeasurementBlock
	var last *MeasurementsResult
	// gap: an absent index was skipped after a block was read. Its ERROR
	// reset L1, so the final signature does not cover the blocks before it.
	gap := false
	for idx := 1; idx <= 0xFE && len(blocks) < cnt.Count; idx++ {
		mo := MeasOpts{Index: uint8(idx), RawBitStream: o.RawBitStream, Slot: o.Slot}
		mo.Signed = o.Signed && len(blocks) == cnt.Count-1
		res, err := r.Measurements(ctx, mo)
		if errors.Is(err, ErrorCodeInvalidRequest) {
			gap = gap || len(blocks) > 0
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		blocks = append(blocks, res.Blocks...)
		last = res
	}
	if len(blocks) != cnt.Count {
		return nil, nil, r.fail(protoErr(RequestGetMeasurements, "device announced %d measurements, found %d", cnt.Count, len(blocks)))
	}
	if !o.Signed || !gap {
		return blocks, last, nil
	}
	// Read the indices now known to exist again, each with its own signature
	// over a fresh nonce (as the DMTF reference requester does), so that every
	// block returned is covered by a verified signature.
	again := make([]MeasurementBlock, 0, len(blocks))
	for _, b := range blocks {
		res, err := r.Measurements(ctx, MeasOpts{Index: b.Index, RawBitStream: o.RawBitStream, Slot: o.Slot, Signed: true})
		if err != nil {
			return nil, nil, err
		}
		again = append(again, res.Blocks...)
		last = res
	}
	return again, last, nil
}

// VendorDefined sends VENDOR_DEFINED_REQUEST outside a session and returns
// the response payload. The response must carry the same StandardID and
// VendorID. DSP0274 1.3 §10.15.
func (r *Requester) VendorDefined(ctx context.Context, standardID uint16, vendorID, payload []byte) ([]byte, error) {
	var out []byte
	err := r.step(ctx, func() (err error) {
		out, err = r.vendorDefined(ctx, standardID, vendorID, payload)
		return err
	})
	return out, err
}

// vendorDefined is one VENDOR_DEFINED_REQUEST/RESPONSE exchange (VendorDefined).
func (r *Requester) vendorDefined(ctx context.Context, standardID uint16, vendorID, payload []byte) ([]byte, error) {
	if err := r.ready(RequestVendorDefined); err != nil {
		return nil, err
	}
	if len(vendorID) > 0xFF || len(payload) > 0xFFFF {
		return nil, protoErr(RequestVendorDefined, "vendor ID or payload too long")
	}
	req := (&vendorDefined{Version: r.neg.Version, StandardID: standardID, VendorID: vendorID, Payload: payload}).marshalRequest()
	rsp, err := r.exchange(ctx, req, false)
	if err != nil {
		return nil, err
	}
	vr, err := decodePadded(rsp, decodeVendorDefinedRsp)
	if err != nil {
		return nil, err
	}
	if vr.StandardID != standardID || !bytes.Equal(vr.VendorID, vendorID) {
		return nil, protoErr(RequestVendorDefined, "response for standard %d vendor %x, asked %d %x", vr.StandardID, vr.VendorID, standardID, vendorID)
	}
	return bytes.Clone(vr.Payload), nil
}

// SlotProvisioned is the SlotID of a pre-provisioned responder public key
// (CHALLENGE, KEY_EXCHANGE; 0xF in GET_MEASUREMENTS' 4-bit SlotIDParam).
// DSP0274 1.2.0 §10.8, §10.11, §10.16.
const SlotProvisioned uint8 = 0xFF

// slotKey returns the key that signs for slot and the buffer whose hash
// stands for it in transcripts and CertChainHash: the leaf key and the
// certificate chain buffer of a slot Certificate has read, or, for
// SlotProvisioned, Options.ResponderPublicKey and its DER
// SubjectPublicKeyInfo (the responder must have PUB_KEY_ID_CAP).
func (r *Requester) slotKey(rc RequestCode, step string, slot uint8) (crypto.PublicKey, []byte, error) {
	if r.neg.MultiKey && slot != SlotProvisioned {
		// Multi-key (1.3): a slot's key signs only what its KeyUsageMask in
		// DIGESTS allows; without DIGESTS the usage is unknown.
		if r.digests == nil || r.digests.SlotMask&(1<<slot) == 0 {
			return nil, nil, protoErr(rc, "multi-key connection: slot %d has no KeyUsageMask (GET_DIGESTS first)", slot)
		}
		if u := r.digests.KeyUsageMask[slot]; u&keyUsageFor(rc) == 0 {
			return nil, nil, protoErr(rc, "multi-key connection: slot %d key may not sign this response (KeyUsageMask %#04x)", slot, u)
		}
	}
	if slot == SlotProvisioned {
		if r.neg.Caps&CapPubKeyID == 0 {
			return nil, nil, protoErr(rc, "slot 0xFF asked of a responder without PUB_KEY_ID_CAP")
		}
		if r.o.ResponderPublicKey == nil {
			return nil, nil, protoErr(rc, "slot 0xFF asked without a provisioned responder public key")
		}
		der, err := x509.MarshalPKIXPublicKey(r.o.ResponderPublicKey)
		if err != nil {
			return nil, nil, &VerificationError{Step: step, Err: fmt.Errorf("provisioned public key: %w", err)}
		}
		return r.o.ResponderPublicKey, der, nil
	}
	cc := r.chains[slot]
	if cc == nil {
		return nil, nil, protoErr(rc, "slot %d chain was not read", slot)
	}
	leaf, err := x509.ParseCertificate(cc.Certs[len(cc.Certs)-1])
	if err != nil {
		return nil, nil, &VerificationError{Step: step, Err: fmt.Errorf("leaf certificate: %w", err)}
	}
	return leaf.PublicKey, cc.Buffer, nil
}

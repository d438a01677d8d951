package spdm

import (
	"context"
)

// Negotiate runs VCA: GET_VERSION (highest common version within
// [MinVersion, MaxVersion]), GET_CAPABILITIES and NEGOTIATE_ALGORITHMS
// (the responder must select exactly one of what we offered). It resets
// the connection state, including the sticky error. DSP0274 1.3 §10.3–10.5.
func (r *Requester) Negotiate(ctx context.Context) (Negotiated, error) {
	r.err, r.neg = nil, nil
	r.tr = transcript{}
	r.digests, r.chains = nil, map[uint8]*CertChain{}
	n, err := r.negotiate(ctx)
	if err != nil {
		// A responder ERROR during VCA leaves no usable connection either.
		r.err = err
		return Negotiated{}, err
	}
	r.neg = &n
	r.log.InfoContext(ctx, "spdm negotiated", "version", n.Version.String(), "asym", n.BaseAsym.String(), "hash", n.BaseHash.String())
	return n, nil
}

func (r *Requester) negotiate(ctx context.Context) (Negotiated, error) {
	var n Negotiated
	if r.o.AsymAlgos == 0 || r.o.HashAlgos == 0 {
		return n, protoErr(RequestNegotiateAlgorithms, "no verifiable asymmetric or hash algorithm allowed by Options")
	}
	// GET_VERSION / VERSION.
	req := (&getVersionReq{}).marshal()
	rsp, err := r.exchange(ctx, req, false)
	if err != nil {
		return n, err
	}
	vr, err := decodePadded(rsp, decodeVersionRsp)
	if err != nil {
		return n, err
	}
	r.tr.addVCA(req, vr.raw)
	for _, e := range vr.Entries {
		v := Version(e >> 8)
		if v.valid() && v >= r.o.MinVersion && v <= r.o.MaxVersion && v > n.Version {
			n.Version = v
		}
	}
	if n.Version == 0 {
		return n, protoErr(RequestGetVersion, "no common version in %x (we accept %s–%s)", vr.Entries, r.o.MinVersion, r.o.MaxVersion)
	}

	// GET_CAPABILITIES / CAPABILITIES.
	creq := &getCapabilitiesReq{Version: n.Version, CTExponent: r.o.CTExponent, Flags: r.o.CapabilityFlags,
		DataTransferSize: r.o.DataTransferSize, MaxSPDMmsgSize: r.o.MaxSPDMmsgSize}
	if n.Version >= Version13 && r.o.SupportedAlgorithms && r.o.CapabilityFlags&CapChunk != 0 {
		creq.Param1 = 1
	}
	req = creq.marshal()
	if rsp, err = r.exchange(ctx, req, false); err != nil {
		return n, err
	}
	cr, err := decodePadded(rsp, decodeCapabilitiesRsp)
	if err != nil {
		return n, err
	}
	if cr.Supported != nil {
		if creq.Param1&1 == 0 || cr.Flags&CapChunk == 0 {
			return n, protoErr(RequestGetCapabilities, "supported-algorithms block not asked for (or without CHUNK_CAP)")
		}
		n.Supported, n.HasSupported = *cr.Supported, true
	}
	r.tr.addVCA(req, cr.raw)
	n.RequesterCaps, n.Caps, n.CTExponent = creq.Flags, cr.Flags, cr.CTExponent
	n.DataTransferSize, n.MaxSPDMmsgSize = cr.DataTransferSize, cr.MaxSPDMmsgSize
	if cr.CTExponent > 40 || n.CT() > r.o.Timeouts.MaxCT {
		return n, protoErr(RequestGetCapabilities, "CTExponent %d exceeds the allowed %v", cr.CTExponent, r.o.Timeouts.MaxCT)
	}

	// NEGOTIATE_ALGORITHMS / ALGORITHMS.
	areq := &negotiateAlgorithmsReq{Version: n.Version, MeasSpec: MeasurementSpecDMTF,
		BaseAsym: r.o.AsymAlgos, BaseHash: r.o.HashAlgos}
	if n.Version >= Version12 {
		areq.OtherParams = otherParamsOpaqueFmt1
	}
	if n.Version >= Version13 {
		// MultiKeyConn is MULTI_KEY_CONN_RSP (DSP0274 1.3.0 Table 32): set
		// for a 01b responder, our choice for 10b, clear for 00b.
		switch multiKeyCapOf(n.Caps) {
		case MultiKeyOnly:
			areq.OtherParams |= otherParamsMultiKeyConn
		case MultiKeyNegotiated:
			if r.o.MultiKeyConn {
				areq.OtherParams |= otherParamsMultiKeyConn
			}
		}
		areq.MELSpec = r.o.MELSpec
	}
	if n.Version >= Version11 {
		for _, a := range []algStruct{{algTypeDHE, uint16(r.o.DHEAlgos), nil}, {algTypeAEAD, uint16(r.o.AEADAlgos), nil},
			{algTypeReqBaseAsym, uint16(r.o.ReqAsymAlgos), nil}, {algTypeKeySchedule, uint16(r.o.KeySchedules), nil}} {
			if a.Supported != 0 {
				areq.Algs = append(areq.Algs, a)
			}
		}
	}
	// r.neg is still nil, so a large NEGOTIATE_ALGORITHMS cannot be chunked;
	// set it provisionally so send() knows the responder's transfer size.
	prov := n
	r.neg = &prov
	req = areq.marshal()
	rsp, err = r.exchange(ctx, req, false)
	r.neg = nil
	if err != nil {
		return n, err
	}
	ar, err := decodePadded(rsp, decodeAlgorithmsRsp)
	if err != nil {
		return n, err
	}
	r.tr.addVCA(req, ar.raw)
	if err := checkSelection(&n, areq, ar); err != nil {
		return n, err
	}
	return n, nil
}

// checkSelection applies the ALGORITHMS rules: exactly one bit per field we
// need, always within what we offered; nothing selected that we did not offer.
func checkSelection(n *Negotiated, req *negotiateAlgorithmsReq, a *algorithmsRsp) error {
	bad := func(format string, args ...any) error { return protoErr(RequestNegotiateAlgorithms, format, args...) }
	needAsym := n.Caps&(CapChal|CapMeasSig|CapKeyEx) != 0 || n.Caps&CapCert != 0
	if needAsym && (!oneBit(a.BaseAsym) || a.BaseAsym&req.BaseAsym == 0) {
		return bad("BaseAsymSel %#x is not exactly one offered algorithm", uint32(a.BaseAsym))
	}
	if !needAsym && a.BaseAsym&^req.BaseAsym != 0 {
		return bad("BaseAsymSel %#x was not offered", uint32(a.BaseAsym))
	}
	if !oneBit(a.BaseHash) || a.BaseHash&req.BaseHash == 0 {
		return bad("BaseHashSel %#x is not exactly one offered algorithm", uint32(a.BaseHash))
	}
	if len(a.ExtAsymSel) != 0 || len(a.ExtHashSel) != 0 {
		return bad("selected an extended algorithm we did not offer")
	}
	if n.Caps&CapMeasMask != 0 {
		if a.MeasSpecSel != MeasurementSpecDMTF {
			return bad("MeasurementSpecificationSel %#x, want DMTF", a.MeasSpecSel)
		}
		if !oneBit(a.MeasHash) || (a.MeasHash != MeasHashRawBitStream && a.MeasHash.CryptoHash() == 0) {
			return bad("MeasurementHashAlgo %s is not exactly one supported algorithm", a.MeasHash)
		}
	} else if a.MeasSpecSel&^req.MeasSpec != 0 {
		return bad("MeasurementSpecificationSel %#x was not offered", a.MeasSpecSel)
	}
	otherSel := a.OtherParamsSel
	if n.Version >= Version13 {
		// The responder's MultiKeyConn bit is MULTI_KEY_CONN_REQ, about our
		// keys: it must agree with our MULTI_KEY_CAP (Table 32).
		if _, ok := multiKeyConn(multiKeyCapOf(n.RequesterCaps), otherSel&otherParamsMultiKeyConn != 0); !ok {
			return bad("MULTI_KEY_CONN_REQ %v contradicts our MULTI_KEY_CAP %d",
				otherSel&otherParamsMultiKeyConn != 0, multiKeyCapOf(n.RequesterCaps))
		}
		otherSel &^= otherParamsMultiKeyConn
	}
	if otherSel&^req.OtherParams != 0 {
		return bad("OtherParamsSelection %#x was not offered (%#x)", a.OtherParamsSel, req.OtherParams)
	}
	if a.MELSpecSel&^req.MELSpec != 0 {
		return bad("MELspecificationSel %#x was not offered", a.MELSpecSel)
	}
	offered := map[uint8]uint16{}
	for _, s := range req.Algs {
		offered[s.Type] = s.Supported
	}
	for _, s := range a.Algs {
		o, ok := offered[s.Type]
		if !ok || len(s.Ext) != 0 || (s.Supported != 0 && (!oneBit(s.Supported) || s.Supported&o == 0)) {
			return bad("AlgStruct type %d selection %#x was not offered (%#x)", s.Type, s.Supported, o)
		}
		switch s.Type {
		case algTypeDHE:
			n.DHE = DHEAlgo(s.Supported)
		case algTypeAEAD:
			n.AEAD = AEADAlgo(s.Supported)
		case algTypeReqBaseAsym:
			n.ReqBaseAsym = AsymAlgo(s.Supported)
		case algTypeKeySchedule:
			n.KeySchedule = KeySchedule(s.Supported)
		}
	}
	if n.BaseHash = a.BaseHash; n.BaseHash.CryptoHash() == 0 {
		return bad("BaseHashSel %s is not supported", a.BaseHash)
	}
	n.BaseAsym, n.MeasHash, n.MeasSpec, n.OtherParams = a.BaseAsym, a.MeasHash, a.MeasSpecSel, a.OtherParamsSel
	n.MultiKey = n.Version >= Version13 && req.OtherParams&otherParamsMultiKeyConn != 0
	return nil
}

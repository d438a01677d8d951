package spdm

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vfio-gate/vfio-gate/spdm/secured"
)

// KeyExchangeOpts configure KEY_EXCHANGE.
type KeyExchangeOpts struct {
	// Slot whose certificate chain (read with Certificate) authenticates
	// the responder's signature.
	Slot uint8
	// MeasurementSummaryType asks for a summary hash in KEY_EXCHANGE_RSP
	// (SummaryNone, SummaryTCB, SummaryAll).
	MeasurementSummaryType uint8
	// SessionPolicy is the 1.2+ SessionPolicy byte (SessionPolicy* bits).
	SessionPolicy uint8
	// SecuredTransport carries secured messages: the secured-CMA DOE
	// exchanger (doe.FeatureSecuredCMA, type 0x02). Required.
	SecuredTransport Transport
	// ReqSessionID is our half of the session ID; 0 picks 0xFFFF, 0xFFFE, …
	// for successive sessions of this requester.
	ReqSessionID uint16
}

// SessionInfo describes an established session (attest.Evidence.Session).
type SessionInfo struct {
	ID               uint32
	Version          Version  // SPDM version
	SecuredVersion   uint16   // secured-message (DSP0277) version, e.g. 0x1200
	AEAD             AEADAlgo // negotiated AEAD
	DHE              DHEAlgo
	Hash             HashAlgo
	Slot             uint8
	HandshakeInClear bool
	// HeartbeatPeriod is the responder's HeartbeatPeriod (0 = no heartbeat
	// required). The requester must send something at least this often.
	HeartbeatPeriod time.Duration
	// MeasurementSummaryHash from KEY_EXCHANGE_RSP (nil when not asked).
	MeasurementSummaryHash []byte
	// CanHeartbeat and CanKeyUpdate: both sides have HBEAT_CAP / KEY_UPD_CAP.
	CanHeartbeat, CanKeyUpdate bool
}

// SessionError says why a session operation failed and that the session is
// dead. errors.Is(err, secured.ErrSessionDead) holds for every
// *SessionError; Unwrap gives the cause (a *secured.Error for record
// failures, a transport error, a *ProtocolError, ...).
type SessionError struct {
	SessionID uint32
	Op        string
	Err       error
}

func (e *SessionError) Error() string {
	return fmt.Sprintf("spdm: session %#08x dead after %s: %v", e.SessionID, e.Op, e.Err)
}

func (e *SessionError) Unwrap() []error { return []error{e.Err, secured.ErrSessionDead} }

// ErrSessionEnded is returned by operations on a session after End.
var ErrSessionEnded = errors.New("spdm: session ended")

// ErrNotNegotiated is returned (without harming the session) by Heartbeat
// or KeyUpdate when HBEAT_CAP / KEY_UPD_CAP is not set on both sides.
var ErrNotNegotiated = errors.New("spdm: capability not negotiated for this session")

// Session is one SPDM secure session held by the requester. It is
// independent of the Requester that established it (which may go on with
// other work or establish further sessions), so one long-lived owner can
// hold many. A Session is safe for concurrent use: its methods serialise on
// an internal mutex (requests inside one session are strictly one at a
// time, as the protocol demands). Any failure of the record layer, the
// transport or the protocol kills the session: every later call returns the
// same *SessionError.
type Session struct {
	mu    sync.Mutex
	info  SessionInfo
	sec   *secured.Session
	inner *Requester // shares VCA, chains and negotiation; talks over the sealed transport
	st    *sealedTransport
	wire  Stats // secured records as carried
	err   error // sticky
	ended bool
	tag   uint8
}

// sealedTransport seals requests and opens responses of one session.
type sealedTransport struct {
	s    *secured.Session
	t    Transport
	wire *Stats // record bytes as carried (DOE padding included)
	// beforeOpen, when set, runs once between sending and opening the
	// response (KEY_UPDATE UpdateAllKeys: the ACK comes under the new key).
	beforeOpen func() error
}

func (st *sealedTransport) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	rec, err := st.s.Seal(req)
	if err != nil {
		return nil, err
	}
	rsp, err := st.t.Exchange(ctx, rec)
	st.wire.RoundTrips++
	st.wire.BytesSent += len(rec)
	st.wire.BytesRecv += len(rsp)
	if err != nil {
		return nil, err
	}
	if f := st.beforeOpen; f != nil {
		st.beforeOpen = nil
		if err := f(); err != nil {
			return nil, err
		}
	}
	msg, err := st.s.Open(rsp)
	if err != nil {
		// A responder that cannot open our record answers a plain ERROR
		// (DecryptError): report that, the session is dead either way.
		if em, derr := decodePadded(rsp, decodeErrorRsp); derr == nil && len(rsp) <= 8 {
			return nil, fmt.Errorf("%w (the record layer saw: %v)", &ResponderError{Request: RequestCode(req[1]), Code: em.Code, Data: em.Data}, err)
		}
		return nil, err
	}
	return msg, nil
}

// KeyUpdateError is a KEY_UPDATE whose new keys did not work: the
// VerifyNewKey exchange failed. The session is dead.
type KeyUpdateError struct {
	Op  KeyUpdateOp
	Err error
}

func (e *KeyUpdateError) Error() string {
	return fmt.Sprintf("spdm: %v: new keys not confirmed (key update mismatch): %v", e.Op, e.Err)
}

func (e *KeyUpdateError) Unwrap() error { return e.Err }

// dheKey is an ephemeral DHE key pair: the ExchangeData we send and the
// function that agrees on the shared secret with the peer's ExchangeData.
type dheKey struct {
	pub   []byte
	agree func(peer []byte) ([]byte, error)
}

func newDHEKey(g DHEAlgo) (*dheKey, error) {
	var c ecdh.Curve
	switch g {
	case DHESECP256R1:
		c = ecdh.P256()
	case DHESECP384R1:
		c = ecdh.P384()
	case DHESECP521R1:
		c = ecdh.P521()
	default:
		return nil, fmt.Errorf("spdm: DHE group %s not supported (ECDHE secp256r1/384r1/521r1 only)", g)
	}
	k, err := c.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &dheKey{pub: k.PublicKey().Bytes()[1:], agree: func(peer []byte) ([]byte, error) {
		pk, err := c.NewPublicKey(append([]byte{4}, peer...))
		if err != nil {
			return nil, fmt.Errorf("peer ExchangeData: %w", err)
		}
		return k.ECDH(pk)
	}}, nil
}

// sessionSuite checks what the negotiation allows and returns the suite.
func (r *Requester) sessionSuite(o *KeyExchangeOpts) (secured.Suite, error) {
	n := r.neg
	bad := func(f string, a ...any) (secured.Suite, error) {
		return secured.Suite{}, protoErr(RequestKeyExchange, f, a...)
	}
	switch {
	case n.Version < Version11:
		return bad("SPDM %s has no sessions", n.Version)
	case n.Caps&CapKeyEx == 0 || n.RequesterCaps&CapKeyEx == 0:
		return bad("KEY_EX_CAP not set on both sides")
	case n.Caps&CapEncrypt == 0 || n.RequesterCaps&CapEncrypt == 0:
		return bad("ENCRYPT_CAP not set on both sides (MAC-only sessions are not supported)")
	case n.KeySchedule != KeyScheduleSPDM:
		return bad("key schedule %#x not the SPDM key schedule", uint16(n.KeySchedule))
	case dheSize(n.DHE) == 0:
		return bad("no DHE group negotiated")
	case o.SecuredTransport == nil:
		return bad("no secured transport")
	case o.Slot >= maxSlots && o.Slot != SlotProvisioned:
		return bad("slot %d out of range", o.Slot)
	case !validSummaryType(o.MeasurementSummaryType):
		return bad("summary type %#x invalid", o.MeasurementSummaryType)
	case o.MeasurementSummaryType != SummaryNone && n.Caps&CapMeasMask == 0:
		return bad("measurement summary requested from a responder without MEAS_CAP")
	}
	s := secured.Suite{Version: uint8(n.Version), Hash: n.BaseHash.CryptoHash(), AEAD: secured.AEAD(n.AEAD)}
	if s.AEAD.KeySize() == 0 {
		return bad("AEAD %s not supported", n.AEAD)
	}
	return s, nil
}

// KeyExchange establishes a secure session (DSP0274 §10.16–10.17, DSP0277):
// KEY_EXCHANGE with an ephemeral ECDHE key and the secured-message versions
// we speak in OpaqueData; KEY_EXCHANGE_RSP's signature over
// A ‖ H(cert chain buffer) ‖ K is verified with the slot's leaf key; TH1
// gives the handshake keys; ResponderVerifyData is checked (unless the
// handshake is in the clear); FINISH goes in the clear when both sides have
// HANDSHAKE_IN_THE_CLEAR_CAP, else sealed with the handshake keys on the
// secured transport; FINISH_RSP (with ResponderVerifyData in the clear
// case) ends the handshake and TH2 gives the data keys. The slot's chain
// must have been read (Certificate) and should have been verified
// (VerifyChain). Mutual authentication is refused.
func (r *Requester) KeyExchange(ctx context.Context, o KeyExchangeOpts) (*Session, error) {
	var out *Session
	err := r.step(ctx, func() error {
		var err error
		out, err = r.keyExchange(ctx, o)
		return err
	})
	return out, err
}

func (r *Requester) keyExchange(ctx context.Context, o KeyExchangeOpts) (_ *Session, err error) {
	if err := r.ready(RequestKeyExchange); err != nil {
		return nil, err
	}
	suite, err := r.sessionSuite(&o)
	if err != nil {
		return nil, err
	}
	n := r.neg
	pub, keyBuf, err := r.slotKey(RequestKeyExchange, "key-exchange-signature", o.Slot)
	if err != nil {
		return nil, err
	}
	ct, err := hashOf(n.BaseHash, keyBuf)
	if err != nil {
		return nil, err
	}
	q, key, err := r.newKeyExchangeReq(o)
	if err != nil {
		return nil, err
	}
	reqID, req := q.ReqSessionID, q.marshal()
	fmt1 := n.Version >= Version12 && n.OtherParams&otherParamsOpaqueFmt1 != 0
	inClear := n.Caps&CapHandshakeInClear != 0 && n.RequesterCaps&CapHandshakeInClear != 0
	rsp, err := r.exchange(ctx, req, true)
	if err != nil {
		return nil, err
	}
	hs := n.BaseHash.Size()
	kr, err := decodePadded(rsp, func(p []byte) (*keyExchangeRsp, error) {
		return decodeKeyExchangeRsp(p, keyExchangeRspShape{exchange: dheSize(n.DHE), hash: hs, sig: n.BaseAsym.SignatureSize(),
			summary: o.MeasurementSummaryType != SummaryNone, verifyData: !inClear})
	})
	if err != nil {
		return nil, err
	}
	if kr.MutAuth != 0 {
		return nil, protoErr(RequestKeyExchange, "responder asks for mutual authentication (%#02x), not supported", kr.MutAuth)
	}
	th := r.tr.keyExchange(n.BaseHash, n.MultiKey, ct, req, kr.unsigned())
	if err := verifySignature(n.Version, n.BaseAsym, n.BaseHash, ctxKeyExchange, pub, th.sum(), kr.Signature); err != nil {
		return nil, &VerificationError{Step: "key-exchange-signature", Err: err}
	}
	els, err := decodeOpaque(kr.Opaque, fmt1)
	if err != nil {
		return nil, protoErr(RequestKeyExchange, "OpaqueData: %v", err)
	}
	sel, ok := smElement(els, smDataIDSelection)
	smv, ok2 := parseSMSelection(sel)
	if !ok || !ok2 || !slices.Contains(securedMsgVersions, smv) {
		return nil, protoErr(RequestKeyExchange, "no acceptable secured-message version selected in OpaqueData")
	}
	shared, err := key.agree(kr.Exchange)
	if err != nil {
		return nil, &VerificationError{Step: "key-exchange-dhe", Err: err}
	}
	th.add(kr.Signature)
	th1 := th.sum()
	hsec, err := secured.NewHandshakeSecret(suite, shared)
	if err != nil {
		return nil, err
	}
	hk, err := hsec.HandshakeKeys(th1)
	if err != nil {
		return nil, err
	}
	id := uint32(kr.RspSessionID)<<16 | uint32(reqID)
	sec, err := secured.NewSession(id, secured.RoleRequester, hk)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			sec.Close()
		}
	}()
	if !inClear {
		if err := hk.CheckResponderVerifyData(th1, kr.VerifyData); err != nil {
			return nil, &VerificationError{Step: "responder-verify-data", Err: err}
		}
		th.add(kr.VerifyData)
	}
	s := &Session{sec: sec, info: SessionInfo{ID: id, Version: n.Version, SecuredVersion: smv, AEAD: n.AEAD, DHE: n.DHE,
		Hash: n.BaseHash, Slot: o.Slot, HandshakeInClear: inClear,
		HeartbeatPeriod:        time.Duration(kr.HeartbeatPeriod) * time.Second,
		MeasurementSummaryHash: bytes.Clone(kr.SummaryHash),
		CanHeartbeat:           n.Caps&n.RequesterCaps&CapHBeat != 0,
		CanKeyUpdate:           n.Caps&n.RequesterCaps&CapKeyUpd != 0}}
	s.st = &sealedTransport{s: sec, t: o.SecuredTransport, wire: &s.wire}
	s.inner = &Requester{t: s.st, o: r.o, log: r.log.With("session", fmt.Sprintf("%#08x", id)),
		neg: r.neg, tr: transcript{a: r.tr.vca()}, chains: r.chains, digests: r.digests}

	if err := r.finish(ctx, s, hk, th, inClear); err != nil {
		return nil, err
	}
	r.log.InfoContext(ctx, "spdm session established", "session", fmt.Sprintf("%#08x", id), "aead", n.AEAD.String(),
		"dhe", n.DHE.String(), "in_the_clear", inClear)
	return s, nil
}

// newKeyExchangeReq makes the ephemeral DHE key and the KEY_EXCHANGE
// request for o, picking a ReqSessionID when o leaves it 0.
func (r *Requester) newKeyExchangeReq(o KeyExchangeOpts) (*keyExchangeReq, *dheKey, error) {
	n := r.neg
	newKey := r.dheHook
	if newKey == nil {
		newKey = newDHEKey
	}
	key, err := newKey(n.DHE)
	if err != nil {
		return nil, nil, err
	}
	reqID := o.ReqSessionID
	if reqID == 0 {
		reqID = 0xFFFF - uint16(r.sessions)
	}
	r.sessions++
	fmt1 := n.Version >= Version12 && n.OtherParams&otherParamsOpaqueFmt1 != 0
	q := &keyExchangeReq{Version: n.Version, SummaryType: o.MeasurementSummaryType, Slot: o.Slot, ReqSessionID: reqID,
		Exchange: key.pub, Opaque: marshalOpaque(fmt1, []opaqueElement{smSupportedElement(securedMsgVersions)})}
	if n.Version >= Version12 {
		q.Policy = o.SessionPolicy
	}
	if err := r.readRand(q.Random[:]); err != nil {
		return nil, nil, err
	}
	return q, key, nil
}

// finish sends FINISH (RequesterVerifyData over th ‖ FINISH header) through
// the session unless the handshake is in the clear, checks FINISH_RSP
// (ResponderVerifyData in the clear) and enters the data phase with TH2.
// th is the transcript so far: A ‖ [D] ‖ Ct ‖ K [‖ ResponderVerifyData].
// DSP0274 1.3 §10.14; DSP0277 key schedule.
func (r *Requester) finish(ctx context.Context, s *Session, hk *secured.HandshakeKeys, th *sessionTranscript, inClear bool) error {
	n := r.neg
	hs := n.BaseHash.Size()
	fq := &finishReq{Version: n.Version}
	fhdr := fq.marshal()
	fq.VerifyData = hk.RequesterVerifyData(th.sum(fhdr))
	freq := fq.marshal()
	via := r
	if !inClear {
		via = s.inner
	}
	frsp, err := via.exchange(ctx, freq, true)
	if err != nil {
		return err
	}
	vs := 0
	if inClear {
		vs = hs
	}
	fr, err := decodePadded(frsp, func(p []byte) (*finishRsp, error) { return decodeFinishRsp(p, vs) })
	if err != nil {
		return err
	}
	th.add(freq)
	if inClear {
		if err := hk.CheckResponderVerifyData(th.sum(fr.raw[:hdrLen]), fr.VerifyData); err != nil {
			return &VerificationError{Step: "responder-verify-data", Err: err}
		}
	}
	th.add(fr.raw)
	if err := s.sec.EnterDataPhase(th.sum()); err != nil { // TH2
		return err
	}
	return nil
}

// ID returns the session ID (RspSessionID<<16 | ReqSessionID).
func (s *Session) ID() uint32 { return s.info.ID }

// Info describes the session.
func (s *Session) Info() SessionInfo {
	i := s.info
	i.MeasurementSummaryHash = bytes.Clone(i.MeasurementSummaryHash)
	return i
}

// Err returns the error that killed the session, ErrSessionEnded after End,
// or nil while it is usable.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usable()
}

// Stats counts the secured records of the session (round trips, and
// bytes as carried: record header, AEAD tag and DOE padding included).
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wire
}

// Remaining is how many more records each direction can carry before a
// KEY_UPDATE is mandatory (the smaller of the two).
func (s *Session) Remaining() uint64 {
	return min(s.sec.Remaining(secured.Request), s.sec.Remaining(secured.Response))
}

func (s *Session) usable() error {
	if s.err != nil {
		return s.err
	}
	if s.ended {
		return ErrSessionEnded
	}
	return nil
}

// do runs one operation under the lock; any failure except a responder
// ERROR (which leaves the session usable) kills the session.
func (s *Session) do(op string, fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	err := fn()
	if err == nil {
		return nil
	}
	var re *ResponderError
	if errors.As(err, &re) && s.sec.Err() == nil {
		return err
	}
	s.err = &SessionError{SessionID: s.info.ID, Op: op, Err: err}
	s.sec.Close()
	return s.err
}

// VendorDefined sends VENDOR_DEFINED_REQUEST inside the session (TDISP,
// IDE_KM) and returns the response payload. It satisfies tdisp.Session.
func (s *Session) VendorDefined(ctx context.Context, standardID uint16, vendorID, payload []byte) ([]byte, error) {
	var out []byte
	err := s.do("VENDOR_DEFINED_REQUEST", func() error {
		var err error
		out, err = s.inner.VendorDefined(ctx, standardID, vendorID, payload)
		s.inner.err = nil // the session, not the inner requester, holds the sticky error
		return err
	})
	return out, err
}

// Measurements runs GET_MEASUREMENTS inside the session. Signed responses
// are verified over L1 = VCA ‖ the session's own GET_MEASUREMENTS log.
func (s *Session) Measurements(ctx context.Context, o MeasOpts) (*MeasurementsResult, error) {
	var out *MeasurementsResult
	err := s.do("GET_MEASUREMENTS", func() error {
		var err error
		out, err = s.inner.measurements(ctx, o)
		s.inner.err = nil
		return err
	})
	return out, err
}

// simple exchanges a header-only request and checks the header-only answer.
func (s *Session) simple(ctx context.Context, code RequestCode, p1, p2 uint8) (*simpleMsg, error) {
	req := (&simpleMsg{Version: s.info.Version, Code: uint8(code), Param1: p1, Param2: p2}).marshal()
	rsp, err := s.inner.exchange(ctx, req, false)
	if err != nil {
		return nil, err
	}
	return decodePadded(rsp, func(b []byte) (*simpleMsg, error) {
		return decodeSimple(code.Response().String(), uint8(code.Response()), b)
	})
}

// Heartbeat sends HEARTBEAT and expects HEARTBEAT_ACK.
func (s *Session) Heartbeat(ctx context.Context) error {
	if !s.info.CanHeartbeat {
		return fmt.Errorf("HEARTBEAT: %w", ErrNotNegotiated)
	}
	return s.do("HEARTBEAT", func() error {
		_, err := s.simple(ctx, RequestHeartbeat, 0, 0)
		return err
	})
}

// KeyUpdate runs KEY_UPDATE with op (KeyUpdateKey: the request direction;
// KeyUpdateAllKeys: both) and then proves the new keys with VerifyNewKey.
// Keys switch where DSP0274 (and libspdm) switch them: the request goes
// under the old keys; with UpdateAllKeys the ACK already comes under the
// responder's new key; our new request key is used from VerifyNewKey on. A
// mismatch kills the session.
func (s *Session) KeyUpdate(ctx context.Context, op KeyUpdateOp) error {
	if !s.info.CanKeyUpdate {
		return fmt.Errorf("KEY_UPDATE: %w", ErrNotNegotiated)
	}
	return s.do("KEY_UPDATE", func() error {
		if op != KeyUpdateKey && op != KeyUpdateAllKeys {
			return protoErr(RequestKeyUpdate, "operation %v is not a key update", op)
		}
		for _, step := range []KeyUpdateOp{op, KeyUpdateVerifyNewKey} {
			s.tag++
			if step == KeyUpdateAllKeys {
				// The responder answers UpdateAllKeys under its new key
				// (DSP0274; libspdm does the same).
				s.st.beforeOpen = func() error { return s.sec.UpdateKey(secured.Response) }
			}
			ack, err := s.simple(ctx, RequestKeyUpdate, uint8(step), s.tag)
			s.st.beforeOpen = nil
			if err != nil {
				if step == KeyUpdateVerifyNewKey {
					s.sec.Close() // whatever the responder said, the keys disagree
					return &KeyUpdateError{Op: op, Err: err}
				}
				return err
			}
			if ack.Param1 != uint8(step) || ack.Param2 != s.tag {
				return protoErr(RequestKeyUpdate, "KEY_UPDATE_ACK op %d tag %d, sent %d %d", ack.Param1, ack.Param2, step, s.tag)
			}
			if step == KeyUpdateVerifyNewKey {
				break
			}
			if err := s.sec.UpdateKey(secured.Request); err != nil {
				return err
			}
		}
		return nil
	})
}

// End sends END_SESSION and drops the keys. A TDI the session locked goes
// to ERROR on the device. Calling End on a dead or ended session is a no-op
// returning its error.
func (s *Session) End(ctx context.Context) error { return s.EndWith(ctx, false) }

// EndWith is End with the END_SESSION attribute "negotiated state clearing"
// (Param1 bit 0): the responder then also forgets VCA.
func (s *Session) EndWith(ctx context.Context, clearNegotiated bool) error {
	var p1 uint8
	if clearNegotiated {
		p1 = 1
	}
	err := s.do("END_SESSION", func() error {
		_, err := s.simple(ctx, RequestEndSession, p1, 0)
		return err
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.ended = true
	}
	s.sec.Close()
	return err
}

// RequesterSessionCaps are the capability flags a requester advertises to
// establish sessions (EnableSessions sets them).
const RequesterSessionCaps = CapKeyEx | CapEncrypt | CapMAC | CapHBeat | CapKeyUpd

// EnableSessions makes o offer what KeyExchange needs: the session
// capabilities, ECDHE secp384r1/secp256r1, all three AEADs (or those already
// set) and the SPDM key schedule. inClear also offers
// HANDSHAKE_IN_THE_CLEAR_CAP.
func EnableSessions(o *Options, inClear bool) {
	if o.CapabilityFlags == 0 {
		o.CapabilityFlags, o.CTExponent = CapCert|CapChal, 20
	}
	o.CapabilityFlags |= RequesterSessionCaps
	if inClear {
		o.CapabilityFlags |= CapHandshakeInClear
	}
	if o.DHEAlgos == 0 {
		o.DHEAlgos = DHESECP256R1 | DHESECP384R1
	}
	if o.AEADAlgos == 0 {
		o.AEADAlgos = AEADAES128GCM | AEADAES256GCM | AEADChaCha20Poly1305
	}
	o.KeySchedules = KeyScheduleSPDM
}

// ErrChainNotVerified is returned by OpenSession when the slot's chain does
// not verify against Options.Roots: a session with an unauthenticated
// device proves nothing.
var ErrChainNotVerified = errors.New("spdm: certificate chain not verified")

// OpenSession is the whole way from a transport pair to a session: VCA,
// DIGESTS, CERTIFICATE of slot, chain verification against o.Roots (the
// session is refused with ErrChainNotVerified if it fails), KEY_EXCHANGE
// and FINISH. o gets EnableSessions (handshake encrypted) unless it already
// advertises KEY_EX_CAP. The Requester stays usable for plain requests.
func OpenSession(ctx context.Context, plain, securedT Transport, o *Options, slot uint8) (*Requester, *Session, error) {
	opts := Options{}
	if o != nil {
		opts = *o
	}
	if opts.CapabilityFlags&CapKeyEx == 0 {
		EnableSessions(&opts, false)
	}
	r := NewRequester(plain, &opts)
	if _, err := r.Negotiate(ctx); err != nil {
		return r, nil, err
	}
	if _, err := r.Digests(ctx); err != nil {
		return r, nil, err
	}
	if _, err := r.Certificate(ctx, slot); err != nil {
		return r, nil, err
	}
	rep, err := r.VerifyChain(slot)
	if err != nil || !rep.Verified {
		if err == nil {
			err = rep.Err
		}
		return r, nil, fmt.Errorf("%w: slot %d: %v", ErrChainNotVerified, slot, err)
	}
	s, err := r.KeyExchange(ctx, KeyExchangeOpts{Slot: slot, MeasurementSummaryType: SummaryNone, SecuredTransport: securedT})
	return r, s, err
}

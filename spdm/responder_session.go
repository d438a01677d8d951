package spdm

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/vfio-gate/vfio-gate/spdm/secured"
)

// ResponderSessionConfig enables secure sessions on a Responder (1.1+).
type ResponderSessionConfig struct {
	// DHE groups the responder selects from (ECDHE only); 0 = no sessions
	// (no KEY_EX_CAP).
	DHE DHEAlgo
	// AEAD suites it selects from; 0 = all three.
	AEAD AEADAlgo
	// HandshakeInClear advertises HANDSHAKE_IN_THE_CLEAR_CAP.
	HandshakeInClear bool
	// HeartbeatPeriod in seconds, sent in KEY_EXCHANGE_RSP when both sides
	// have HBEAT_CAP (0 = heartbeat not used). A session whose requester
	// sends nothing for more than twice the period it was given is ended
	// (DSP0274 HEARTBEAT; libspdm's responder arms its session watchdog
	// with HeartbeatPeriod × 2): its next record gets ErrNoSession.
	HeartbeatPeriod uint8
	// Now is the clock of the heartbeat timeout; nil = time.Now.
	Now func() time.Time
	// NoHeartbeat withholds HBEAT_CAP; NoKeyUpdate withholds KEY_UPD_CAP.
	// HEARTBEAT and KEY_UPDATE are then UnsupportedRequest.
	NoHeartbeat, NoKeyUpdate bool
	// MaxSessions bounds concurrent sessions; 0 = 4.
	MaxSessions int
	// Ended is called (with the responder's lock held: do not call back)
	// when a session ends, by END_SESSION, a record failure or a reset.
	Ended func(sessionID uint32)
	// Faults inject session misbehaviour.
	Faults ResponderSessionFaults
}

// ResponderSessionFaults make the session layer lie.
type ResponderSessionFaults struct {
	// BadVerifyData flips a bit of ResponderVerifyData (KEY_EXCHANGE_RSP or
	// FINISH_RSP).
	BadVerifyData bool
	// BadTag flips a bit of the AEAD tag of every data-phase response.
	BadTag bool
	// WrongSessionID answers data-phase requests in records carrying
	// another session ID.
	WrongSessionID bool
	// KeyUpdateMismatch derives the wrong receive key at KEY_UPDATE (one
	// generation too far), so the requester's next record does not open.
	KeyUpdateMismatch bool
}

// sessionCaps are the capability flags sessions add.
const sessionCaps = CapKeyEx | CapEncrypt | CapMAC | CapHBeat | CapKeyUpd

// rspSession is one session on the responder side.
type rspSession struct {
	id       uint32
	sec      *secured.Session
	hk       *secured.HandshakeKeys
	th       *sessionTranscript
	inClear  bool
	finished bool
	l1       []byte // session GET_MEASUREMENTS log
	// Heartbeat timeout: the HeartbeatPeriod sent in KEY_EXCHANGE_RSP (0 =
	// none) and when the last record of the session arrived.
	hbPeriod uint8
	last     time.Time
}

// ErrNoSession is returned by RespondSecured for a record whose session ID
// names no session (the DOE layer reports it as a transport error).
var ErrNoSession = errors.New("spdm: responder: no such session")

type sessionCtxKey struct{}

// SessionIDFromContext returns the session a VENDOR_DEFINED hook is called
// in, if any.
func SessionIDFromContext(ctx context.Context) (uint32, bool) {
	id, ok := ctx.Value(sessionCtxKey{}).(uint32)
	return id, ok
}

func (r *Responder) sessionsEnabled() bool {
	return r.cfg.Session.DHE&(DHESECP256R1|DHESECP384R1|DHESECP521R1) != 0 && len(r.cfg.Keys) > 0
}

func (r *Responder) sessionFlags(v Version) uint32 {
	if v < Version11 || !r.sessionsEnabled() {
		return 0
	}
	f := sessionCaps
	if r.cfg.Session.HandshakeInClear {
		f |= CapHandshakeInClear
	}
	if r.cfg.Session.NoHeartbeat {
		f &^= CapHBeat
	}
	if r.cfg.Session.NoKeyUpdate {
		f &^= CapKeyUpd
	}
	return f
}

// heartbeatPeriod is the HeartbeatPeriod of KEY_EXCHANGE_RSP: zero unless
// both sides have HBEAT_CAP (DSP0274 1.2.0 §10.16, HeartbeatPeriod).
func (r *Responder) heartbeatPeriod() uint8 {
	if r.sessionFlags(r.c.version)&r.c.reqFlags&CapHBeat == 0 {
		return 0
	}
	return r.cfg.Session.HeartbeatPeriod
}

// selectSessionAlgs fills the DHE, AEAD and key schedule selections.
func (r *Responder) selectSessionAlgs(a *algStruct) {
	if !r.sessionsEnabled() || r.c.reqFlags&CapKeyEx == 0 || r.c.version < Version11 {
		a.Supported = 0
		return
	}
	pick := func(order []uint16, allowed uint16) {
		for _, o := range order {
			if a.Supported&o != 0 && allowed&o != 0 {
				a.Supported = o
				return
			}
		}
		a.Supported = 0
	}
	aead := r.cfg.Session.AEAD
	if aead == 0 {
		aead = AEADAES128GCM | AEADAES256GCM | AEADChaCha20Poly1305
	}
	switch a.Type {
	case algTypeDHE:
		pick([]uint16{uint16(DHESECP384R1), uint16(DHESECP256R1), uint16(DHESECP521R1)}, uint16(r.cfg.Session.DHE))
		r.c.dhe = DHEAlgo(a.Supported)
	case algTypeAEAD:
		pick([]uint16{uint16(AEADAES256GCM), uint16(AEADAES128GCM), uint16(AEADChaCha20Poly1305)}, uint16(aead))
		r.c.aead = AEADAlgo(a.Supported)
	case algTypeKeySchedule:
		pick([]uint16{uint16(KeyScheduleSPDM)}, uint16(KeyScheduleSPDM))
		r.c.keySchedule = KeySchedule(a.Supported)
	default:
		a.Supported = 0
	}
}

func (r *Responder) endSession(s *rspSession) {
	s.sec.Close()
	delete(r.c.sessions, s.id)
	if r.cfg.Session.Ended != nil {
		r.cfg.Session.Ended(s.id)
	}
}

// now reads the session clock (ResponderSessionConfig.Now).
func (r *Responder) now() time.Time {
	if r.cfg.Session.Now != nil {
		return r.cfg.Session.Now()
	}
	return time.Now()
}

// expireSessions ends every session whose requester has been silent for
// more than twice the HeartbeatPeriod it was given in KEY_EXCHANGE_RSP
// (libspdm: libspdm_start_watchdog(session, heartbeat_period * 2), reset
// by every message of the session). Sessions without a period never expire.
func (r *Responder) expireSessions() {
	if len(r.c.sessions) == 0 {
		return
	}
	now := r.now()
	ids := make([]uint32, 0, len(r.c.sessions))
	for id, s := range r.c.sessions {
		if s.hbPeriod > 0 && now.Sub(s.last) > 2*time.Duration(s.hbPeriod)*time.Second {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		r.log.Debug("spdm responder: heartbeat timeout, session ended", "session", fmt.Sprintf("%#08x", id))
		r.endSession(r.c.sessions[id])
	}
}

// endAllSessions ends every session (GET_VERSION, Reset).
func (r *Responder) endAllSessions() {
	ids := make([]uint32, 0, len(r.c.sessions))
	for id := range r.c.sessions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r.endSession(r.c.sessions[id])
	}
}

// keyExchange answers KEY_EXCHANGE (DSP0274 §10.16).
func (r *Responder) keyExchange(req []byte) []byte {
	v := r.c.version
	if !r.sessionsEnabled() || v < Version11 || r.c.reqFlags&CapKeyEx == 0 || r.c.dhe == 0 || r.c.aead == 0 || r.c.keySchedule == 0 {
		return r.errRsp(ErrorCodeUnsupportedRequest, uint8(RequestKeyExchange))
	}
	m, ok := rspDecode(req, func(b []byte) (*keyExchangeReq, error) { return decodeKeyExchangeReq(b, dheSize(r.c.dhe)) })
	if !ok || (m.Slot >= maxSlots && m.Slot != 0xFF) || r.slot(m.Slot) == nil || (m.SummaryType != SummaryNone && r.cfg.Measurements == nil) ||
		!r.usable(r.slot(m.Slot), RequestKeyExchange) {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	slot := r.slot(m.Slot)
	limit := r.cfg.Session.MaxSessions
	if limit == 0 {
		limit = 4
	}
	if len(r.c.sessions) >= limit {
		return r.errRsp(ErrorCodeSessionLimitExceeded, 0)
	}
	fmt1 := v >= Version12 && r.c.otherParams&otherParamsOpaqueFmt1 != 0
	els, err := decodeOpaque(m.Opaque, fmt1)
	if err != nil {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	body, ok := smElement(els, smDataIDSupported)
	offered, ok2 := parseSMSupported(body)
	if !ok || !ok2 {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	var smv uint16
	for _, o := range offered {
		if slices.Contains(securedMsgVersions, o) && o > smv {
			smv = o
		}
	}
	if smv == 0 {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	var curve ecdh.Curve
	switch r.c.dhe {
	case DHESECP256R1:
		curve = ecdh.P256()
	case DHESECP384R1:
		curve = ecdh.P384()
	default:
		curve = ecdh.P521()
	}
	peer, err := curve.NewPublicKey(append([]byte{4}, m.Exchange...))
	if err != nil {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	priv, err := curve.GenerateKey(r.cfg.Rand)
	if err != nil {
		return r.errRsp(ErrorCodeUnspecified, 0)
	}
	shared, err := priv.ECDH(peer)
	if err != nil {
		return r.errRsp(ErrorCodeInvalidRequest, 0)
	}
	var rspID uint16
	for cand := uint16(0xFFFF); cand > 0; cand-- {
		if _, used := r.c.sessions[uint32(cand)<<16|uint32(m.ReqSessionID)]; !used {
			rspID = cand
			break
		}
	}
	id := uint32(rspID)<<16 | uint32(m.ReqSessionID)
	inClear := r.cfg.Session.HandshakeInClear && r.c.reqFlags&CapHandshakeInClear != 0
	rsp := &keyExchangeRsp{Version: v, HeartbeatPeriod: r.heartbeatPeriod(), RspSessionID: rspID,
		Exchange: priv.PublicKey().Bytes()[1:], Opaque: marshalOpaque(fmt1, []opaqueElement{smSelectionElement(smv)}),
		Signature: make([]byte, r.c.asym.SignatureSize())}
	if _, err := io.ReadFull(r.cfg.Rand, rsp.Random[:]); err != nil {
		return r.errRsp(ErrorCodeUnspecified, 0)
	}
	if m.SummaryType != SummaryNone {
		rsp.SummaryHash = r.summaryHash(m.SummaryType)
	}
	full := rsp.marshal()
	unsigned := full[:len(full)-len(rsp.Signature)]
	ct, _ := hashOf(r.c.hash, slot.chainBuf)
	th := r.c.tr.keyExchange(r.c.hash, r.c.multiKey, ct, m.raw, unsigned)
	sig, err := signTranscript(r.cfg.Rand, v, r.c.asym, r.c.hash, ctxKeyExchange, slot.key.Signer, th.sum())
	if err != nil {
		return r.errRsp(ErrorCodeUnspecified, 0)
	}
	copy(full[len(unsigned):], sig)
	th.add(sig)
	th1 := th.sum()
	suite := secured.Suite{Version: uint8(v), Hash: r.c.hash.CryptoHash(), AEAD: secured.AEAD(r.c.aead)}
	hs, err := secured.NewHandshakeSecret(suite, shared)
	if err != nil {
		return r.errRsp(ErrorCodeUnspecified, 0)
	}
	hk, err := hs.HandshakeKeys(th1)
	if err != nil {
		return r.errRsp(ErrorCodeUnspecified, 0)
	}
	sec, err := secured.NewSession(id, secured.RoleResponder, hk)
	if err != nil {
		return r.errRsp(ErrorCodeUnspecified, 0)
	}
	if !inClear {
		vd := hk.ResponderVerifyData(th1)
		th.add(vd)
		if r.cfg.Session.Faults.BadVerifyData {
			vd = slices.Clone(vd)
			vd[0] ^= 0x01
		}
		full = append(full, vd...)
	}
	if r.c.sessions == nil {
		r.c.sessions = map[uint32]*rspSession{}
	}
	r.c.sessions[id] = &rspSession{id: id, sec: sec, hk: hk, th: th, inClear: inClear, hbPeriod: rsp.HeartbeatPeriod, last: r.now()}
	return r.send(RequestKeyExchange, full)
}

// finishClear answers a FINISH sent in the clear: it belongs to the one
// in-the-clear session whose handshake is open. Any other FINISH outside a
// session is refused as sessionOnly says (SessionRequired in 1.2+).
func (r *Responder) finishClear(req []byte) []byte {
	for _, s := range r.c.sessions {
		if s.inClear && !s.finished {
			s.last = r.now()
			rsp, after := r.finish(s, req)
			if after != nil {
				after()
			}
			return rsp
		}
	}
	return r.sessionOnly(RequestFinish)
}

// finish answers FINISH (DSP0274 §10.17). after, when not nil, switches to
// the data keys and must run once the response is sealed (or sent).
func (r *Responder) finish(s *rspSession, req []byte) (rsp []byte, after func()) {
	hsz := r.c.hash.Size()
	m, ok := rspDecode(req, func(b []byte) (*finishReq, error) { return decodeFinishReq(b, hsz) })
	if !ok || s.finished {
		return r.errRsp(ErrorCodeInvalidRequest, 0), nil
	}
	if err := s.hk.CheckRequesterVerifyData(s.th.sum(m.raw[:hdrLen]), m.VerifyData); err != nil {
		r.endSession(s)
		return r.errRsp(ErrorCodeDecryptError, 0), nil
	}
	s.th.add(m.raw)
	fr := &finishRsp{Version: r.c.version}
	b := fr.marshal()
	if s.inClear {
		vd := s.hk.ResponderVerifyData(s.th.sum(b))
		b = append(b, vd...)
		s.th.add(b)
		if r.cfg.Session.Faults.BadVerifyData {
			b = slices.Clone(b)
			b[hdrLen] ^= 0x01
		}
	} else {
		s.th.add(b)
	}
	th2 := s.th.sum()
	s.finished = true
	return b, func() {
		if err := s.sec.EnterDataPhase(th2); err != nil {
			r.endSession(s)
		}
	}
}

// RespondSecured answers one secured message (the payload of a DOE
// secured-CMA object, padding allowed) and returns the secured response. A
// record that does not open kills its session and is answered with a plain
// ERROR DecryptError; a record for no session returns ErrNoSession.
func (r *Responder) RespondSecured(ctx context.Context, rec []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireSessions()
	id, ok := secured.PeekSessionID(rec)
	s := r.c.sessions[id]
	if !ok || s == nil {
		return nil, fmt.Errorf("%w %#08x", ErrNoSession, id)
	}
	req, err := s.sec.Open(rec)
	if err != nil {
		r.log.DebugContext(ctx, "spdm responder: record does not open", "session", fmt.Sprintf("%#08x", id), "err", err)
		r.endSession(s)
		return r.errRsp(ErrorCodeDecryptError, 0), nil
	}
	s.last = r.now()
	rsp, after, err := r.respondInSession(ctx, s, req)
	if err != nil {
		return nil, err
	}
	f := r.cfg.Session.Faults
	if s.sec.Phase() == secured.PhaseEnded || s.sec.Phase() == secured.PhaseDead {
		return rsp, nil // the handshake failed: the ERROR goes out in the clear
	}
	out, err := s.sec.Seal(rsp)
	if err != nil {
		r.endSession(s)
		return nil, err
	}
	if after != nil {
		after()
	}
	if s.finished && s.sec.Phase() != secured.PhaseHandshake && RequestCode(req[1]) != RequestFinish {
		if f.BadTag {
			out[len(out)-1] ^= 0x01
		}
		if f.WrongSessionID {
			out[0] ^= 0x01
		}
	}
	return out, nil
}

// respondInSession dispatches one request received inside session s.
func (r *Responder) respondInSession(ctx context.Context, s *rspSession, req []byte) ([]byte, func(), error) {
	if len(req) < hdrLen {
		return r.errRsp(ErrorCodeInvalidRequest, 0), nil, nil
	}
	code := RequestCode(req[1])
	if Version(req[0]) != r.c.version {
		return r.errRsp(ErrorCodeVersionMismatch, 0), nil, nil
	}
	if !s.finished {
		if code != RequestFinish || s.inClear {
			return r.errRsp(ErrorCodeUnexpectedRequest, 0), nil, nil
		}
		rsp, after := r.finish(s, req)
		return rsp, after, nil
	}
	if code != RequestGetMeasurements {
		s.l1 = nil
	}
	if rsp := r.tooLarge(req); rsp != nil {
		return rsp, nil, nil
	}
	switch code {
	case RequestChunkGet:
		return r.chunkGet(req), nil, nil
	case RequestGetMeasurements:
		saved := r.c.tr.l
		r.c.tr.l = s.l1
		rsp := r.getMeasurements(req)
		s.l1, r.c.tr.l = r.c.tr.l, saved
		return rsp, nil, nil
	case RequestVendorDefined:
		rsp, err := r.vendorDefined(context.WithValue(ctx, sessionCtxKey{}, s.id), req)
		return rsp, nil, err
	case RequestGetDigests, RequestGetCertificate:
		// Allowed in a session (DSP0274 1.2.0 Table 8); they are not part
		// of M1, which covers the exchanges outside sessions only.
		saved := r.c.tr
		var rsp []byte
		if code == RequestGetDigests {
			rsp = r.getDigests(req)
		} else {
			rsp = r.getCertificate(req)
		}
		r.c.tr = saved
		return rsp, nil, nil
	case RequestGetKeyPairInfo:
		return r.getKeyPairInfo(req), nil, nil
	case RequestHeartbeat:
		if r.sessionFlags(r.c.version)&CapHBeat == 0 {
			return r.errRsp(ErrorCodeUnsupportedRequest, uint8(code)), nil, nil
		}
		if _, ok := rspDecode(req, func(b []byte) (*simpleMsg, error) { return decodeSimple("HEARTBEAT", uint8(code), b) }); !ok {
			return r.errRsp(ErrorCodeInvalidRequest, 0), nil, nil
		}
		return (&simpleMsg{Version: r.c.version, Code: uint8(ResponseHeartbeatAck)}).marshal(), nil, nil
	case RequestKeyUpdate:
		if r.sessionFlags(r.c.version)&CapKeyUpd == 0 {
			return r.errRsp(ErrorCodeUnsupportedRequest, uint8(code)), nil, nil
		}
		return r.keyUpdate(s, req)
	case RequestEndSession:
		if _, ok := rspDecode(req, func(b []byte) (*simpleMsg, error) { return decodeSimple("END_SESSION", uint8(code), b) }); !ok {
			return r.errRsp(ErrorCodeInvalidRequest, 0), nil, nil
		}
		return (&simpleMsg{Version: r.c.version, Code: uint8(ResponseEndSessionAck)}).marshal(), func() { r.endSession(s) }, nil
	case RequestGetVersion, RequestGetCapabilities, RequestNegotiateAlgorithms, RequestChallenge,
		RequestKeyExchange, RequestFinish, RequestPSKExchange, RequestPSKFinish, RequestRespondIfReady:
		// Known requests that are not allowed (or not in this state) inside
		// a session: UnexpectedRequest (DSP0274 1.2.0 Table 8 and §10.9).
		return r.errRsp(ErrorCodeUnexpectedRequest, 0), nil, nil
	}
	return r.errRsp(ErrorCodeUnsupportedRequest, uint8(code)), nil, nil
}

// keyUpdate answers KEY_UPDATE (DSP0274 §10.19): the receive key switches
// now (the next request, VerifyNewKey, comes under it); for UpdateAllKeys
// the send key switches too, before the ACK (as libspdm does).
func (r *Responder) keyUpdate(s *rspSession, req []byte) ([]byte, func(), error) {
	m, ok := rspDecode(req, func(b []byte) (*simpleMsg, error) { return decodeSimple("KEY_UPDATE", uint8(RequestKeyUpdate), b) })
	if !ok {
		return r.errRsp(ErrorCodeInvalidRequest, 0), nil, nil
	}
	op := KeyUpdateOp(m.Param1)
	ack := (&simpleMsg{Version: r.c.version, Code: uint8(ResponseKeyUpdateAck), Param1: m.Param1, Param2: m.Param2}).marshal()
	switch op {
	case KeyUpdateKey, KeyUpdateAllKeys:
		n := 1
		if r.cfg.Session.Faults.KeyUpdateMismatch {
			n = 2
		}
		for range n {
			if err := s.sec.UpdateKey(secured.Request); err != nil {
				return r.errRsp(ErrorCodeUnspecified, 0), nil, nil
			}
		}
		if op == KeyUpdateAllKeys {
			// The ACK already goes out under the new response key.
			if err := s.sec.UpdateKey(secured.Response); err != nil {
				return r.errRsp(ErrorCodeUnspecified, 0), nil, nil
			}
		}
		return ack, nil, nil
	case KeyUpdateVerifyNewKey:
		return ack, nil, nil
	}
	return r.errRsp(ErrorCodeInvalidRequest, 0), nil, nil
}

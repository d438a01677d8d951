package spdm

import (
	"context"
	"crypto"
	"crypto/rand"
	"io"
	"log/slog"
	"slices"
	"sync"
)

// ResponderKey is one signing identity of a responder: a key and its
// certificate chain in a slot. After ALGORITHMS the responder provisions
// each slot with the first of its keys that can sign with the negotiated
// asymmetric algorithm; slots without one are not provisioned.
type ResponderKey struct {
	Slot   uint8         // certificate slot 0..7
	Asym   AsymAlgo      // the algorithms this key signs with (one RSA key serves RSASSA and RSA-PSS)
	Chain  [][]byte      // DER certificates, root first, leaf last
	Signer crypto.Signer // the leaf's private key
	// Multi-key connections (1.3, ResponderConfig.MultiKey): KeyPairID of
	// the key (0 = the number of distinct public keys among the Keys up to
	// and including the first entry with this public key, so the IDs of
	// distinct keys are 1, 2, ...) and the messages it may sign (0 = KEY_EXCHANGE_RSP,
	// CHALLENGE_AUTH and MEASUREMENTS). The certificate model is DeviceCert.
	KeyPairID uint8
	KeyUsage  uint16
}

// ResponderMeasurement is one measurement a responder reports: Value is what
// was measured. It is reported as its digest under the negotiated measurement
// hash, or as a raw bit stream when Raw is set, when the requester asks for
// raw bit streams (1.2+), or when the measurement hash is "raw bit stream only".
type ResponderMeasurement struct {
	Index uint8 // 1..0xFE
	Type  uint8 // DMTF value type [6:0]
	Raw   bool
	Value []byte
}

// ResponderFaults make a responder lie in ways only cryptography reveals.
// Message-level faults (truncation, oversize, wrong codes) belong to the
// transport wrapper: see package emu.
type ResponderFaults struct {
	// BadSignature flips a bit of every CHALLENGE_AUTH and MEASUREMENTS signature.
	BadSignature bool
	// WrongNonce signs CHALLENGE_AUTH and MEASUREMENTS over a transcript that
	// carries another requester nonce, as a replayed response would; in 1.3
	// it also echoes a different RequesterContext.
	WrongNonce bool
	// WrongCertChainHash puts the hash of another chain in CHALLENGE_AUTH
	// (and signs it, so only the hash comparison can catch it).
	WrongCertChainHash bool
	// Busy answers each new request with ERROR Busy this many times before
	// serving it; a negative value answers Busy forever.
	Busy int
	// NotReady answers CHALLENGE and GET_MEASUREMENTS with ERROR
	// ResponseNotReady and serves the response on the RESPOND_IF_READY after
	// this many; a negative value is never ready.
	NotReady int
}

// ResponderConfig configures a Responder. Zero values pick defaults.
type ResponderConfig struct {
	// Versions offered in VERSION; nil = 1.0, 1.1, 1.2, 1.3.
	Versions []Version
	// Keys are the signing identities; at least one is needed for CERT_CAP.
	Keys []ResponderKey
	// PublicKeyOnly makes Keys pre-provisioned public keys (DSP0274
	// PUB_KEY_ID_CAP, 1.1+) instead of certificate slots: the responder
	// advertises PUB_KEY_ID_CAP and not CERT_CAP, has no slots (GET_DIGESTS
	// and GET_CERTIFICATE are unsupported) and signs CHALLENGE_AUTH and
	// KEY_EXCHANGE_RSP for SlotID 0xFF and MEASUREMENTS for SlotIDParam 0xF
	// with the first key of the negotiated algorithm. Chains are ignored.
	PublicKeyOnly bool
	// MultiKey is the MULTI_KEY_CAP advertised at 1.3 (not with
	// PublicKeyOnly): MultiKeyOnly or MultiKeyNegotiated. In a multi-key
	// connection DIGESTS carries each slot's KeyPairID, CertificateInfo and
	// KeyUsageMask, a slot signs only what its KeyUsage allows, and the
	// DIGESTS response joins the KEY_EXCHANGE transcript (multikey.go).
	MultiKey MultiKeyCap
	// Asym restricts the asymmetric algorithms the responder selects; 0 =
	// every algorithm of Keys.
	Asym AsymAlgo
	// Hash is the set of base hashes the responder selects from; 0 = SHA-256,
	// SHA-384 and SHA-512.
	Hash HashAlgo
	// MeasHash is the measurement hash (one bit); 0 = the hash of the same
	// family and size as the negotiated base hash.
	MeasHash MeasHashAlgo
	// Measurements returns the current measurements; it is called for every
	// GET_MEASUREMENTS and CHALLENGE with a summary hash. nil = no MEAS_CAP.
	Measurements func() []ResponderMeasurement
	// CTExponent advertises the crypto timeout 2^CTExponent µs; 0 = 20 (~1 s).
	CTExponent uint8
	// DataTransferSize and MaxSPDMmsgSize (1.2+); 0 = 4096 and 65536.
	DataTransferSize, MaxSPDMmsgSize uint32
	// NoChunk withholds CHUNK_CAP (1.2+): large responses are then refused
	// with ResponseTooLarge (certificate portions are shortened instead).
	NoChunk bool
	// VendorDefined answers VENDOR_DEFINED_REQUEST: it receives the
	// StandardID, VendorID and payload and returns the response payload. nil
	// = UnsupportedRequest.
	VendorDefined func(ctx context.Context, standardID uint16, vendorID, payload []byte) ([]byte, error)
	// Rand supplies nonces and signature randomness; nil = crypto/rand.
	Rand io.Reader
	// Faults injects lies (tests and the software device only).
	Faults ResponderFaults
	// Session enables secure sessions (responder_session.go).
	Session ResponderSessionConfig
	// Logger receives debug records of traffic; nil = discard.
	Logger *slog.Logger
}

// Responder is the device side of SPDM 1.0–1.3 authentication: VERSION,
// CAPABILITIES, ALGORITHMS, DIGESTS, CERTIFICATE, CHALLENGE_AUTH,
// MEASUREMENTS, RESPOND_IF_READY, CHUNK_GET and VENDOR_DEFINED. It keeps the
// same transcripts a requester does (VCA, M1, L1) and signs them with the
// 1.2+ prefix rules. It is safe for concurrent use, but one Responder serves
// one connection: GET_VERSION restarts it.
type Responder struct {
	cfg ResponderConfig
	log *slog.Logger
	mu  sync.Mutex
	c   rspConn
}

// rspStage is how far the VCA sequence has come.
type rspStage int

const (
	rspStageNone rspStage = iota
	rspStageVersion
	rspStageCapabilities
	rspStageNegotiated
)

// rspConn is the per-connection state, reset by GET_VERSION.
type rspConn struct {
	stage       rspStage
	reqVersion  Version // of the request being answered
	reqCode     uint8
	version     Version
	reqFlags    uint32
	reqDTS      uint32 // requester DataTransferSize (1.2+), 0 = unlimited
	reqMaxMsg   uint32
	chunk       bool // both sides have CHUNK_CAP
	asym        AsymAlgo
	hash        HashAlgo
	measHash    MeasHashAlgo
	measSpec    uint8
	slots       [maxSlots]*rspSlot // provisioned slots for the negotiated algorithms
	slotMask    uint8
	tr          transcript // A, B, L1 and D outside sessions (transcript.go)
	lastRecord  map[uint8][]byte
	busyReq     []byte
	busyCount   int
	pending     *rspPending
	large       *rspLarge
	token       uint8
	largeHandle uint8

	// Sessions (responder_session.go).
	otherParams uint8
	dhe         DHEAlgo
	aead        AEADAlgo
	keySchedule KeySchedule
	sessions    map[uint32]*rspSession

	// Multi-key connection (1.3): MULTI_KEY_CONN_RSP (message D is in tr).
	multiKey bool

	// PublicKeyOnly: the provisioned key; chainBuf is its DER SubjectPublicKeyInfo.
	pubKey *rspSlot
}

// rspSlot is a provisioned slot: its key and chain buffer under the
// negotiated hash.
type rspSlot struct {
	key      *ResponderKey
	chainBuf []byte
}

// slot returns provisioned slot n, or nil. With PublicKeyOnly the only
// slot is the provisioned key: SlotID 0xFF (0xF in SlotIDParam).
func (r *Responder) slot(n uint8) *rspSlot {
	if r.cfg.PublicKeyOnly {
		if n == 0xFF || n == 0x0F {
			return r.c.pubKey
		}
		return nil
	}
	if int(n) >= len(r.c.slots) {
		return nil
	}
	return r.c.slots[n]
}

// rspPending is a response held back behind ResponseNotReady.
type rspPending struct {
	code  RequestCode
	token uint8
	rsp   []byte
	left  int // RESPOND_IF_READY answers still to refuse; <0 forever
}

// rspLarge is a response being fetched with CHUNK_GET.
type rspLarge struct {
	handle uint8
	data   []byte
	off    int
	seq    uint16
}

// Defaults.
const (
	rspDefaultCTExponent = 20
	rspDefaultDTS        = 4096
	rspDefaultMaxMsg     = 65536
	rspRDExponent        = 10 // ResponseNotReady: retry after 2^10 µs
	rspRDTM              = 8
)

// NewResponder returns a responder for cfg.
func NewResponder(cfg ResponderConfig) *Responder {
	if cfg.Versions == nil {
		cfg.Versions = []Version{Version10, Version11, Version12, Version13}
	}
	if cfg.Hash == 0 {
		cfg.Hash = HashSHA256 | HashSHA384 | HashSHA512
	}
	if cfg.CTExponent == 0 {
		cfg.CTExponent = rspDefaultCTExponent
	}
	if cfg.DataTransferSize == 0 {
		cfg.DataTransferSize = rspDefaultDTS
	}
	if cfg.MaxSPDMmsgSize == 0 {
		cfg.MaxSPDMmsgSize = max(rspDefaultMaxMsg, cfg.DataTransferSize)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Asym == 0 {
		for _, k := range cfg.Keys {
			cfg.Asym |= k.Asym
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Responder{cfg: cfg, log: log}
}

// Respond answers one SPDM request message. req may carry 0–3 bytes of DOE
// zero padding. Protocol problems are answered with ERROR messages; the
// error result is reserved for a cancelled ctx or a failing vendor hook.
func (r *Responder) Respond(ctx context.Context, req []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireSessions()
	rsp, err := r.respond(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(req) >= 2 {
		r.log.DebugContext(ctx, "spdm responder", "req", RequestCode(req[1]), "len", len(req), "rsp", ResponseCode(rsp[1]), "rsplen", len(rsp))
	}
	return rsp, nil
}

// Reset drops all connection state, as a device reset would.
func (r *Responder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endAllSessions()
	r.c = rspConn{}
}

func (r *Responder) respond(ctx context.Context, req []byte) ([]byte, error) {
	if len(req) < hdrLen {
		return r.errRsp(ErrorCodeInvalidRequest, 0), nil
	}
	code := RequestCode(req[1])
	r.c.reqVersion, r.c.reqCode = Version(req[0]), req[1]
	if rsp := r.busy(req); rsp != nil {
		return rsp, nil
	}
	if code != RequestGetVersion && code != RequestRespondIfReady && code != RequestChunkGet {
		// Any other request abandons a held-back or chunked response.
		r.c.pending, r.c.large = nil, nil
	}
	if code != RequestGetMeasurements && code != RequestRespondIfReady && code != RequestChunkGet {
		r.c.tr.resetL() // L1 covers consecutive GET_MEASUREMENTS only
	}
	switch code {
	case RequestGetVersion:
		return r.getVersion(req), nil
	case RequestRespondIfReady:
		return r.respondIfReady(req), nil
	}
	if r.c.stage == rspStageNone {
		return r.errRsp(ErrorCodeUnexpectedRequest, 0), nil
	}
	if Version(req[0]) != r.c.version && !(code == RequestGetCapabilities && r.c.stage == rspStageVersion) {
		return r.errRsp(ErrorCodeVersionMismatch, 0), nil
	}
	switch code {
	case RequestGetCapabilities:
		return r.getCapabilities(req), nil
	case RequestNegotiateAlgorithms:
		return r.negotiateAlgorithms(req), nil
	}
	if r.c.stage != rspStageNegotiated {
		return r.errRsp(ErrorCodeUnexpectedRequest, 0), nil
	}
	if rsp := r.tooLarge(req); rsp != nil {
		return rsp, nil
	}
	switch code {
	case RequestGetDigests:
		return r.getDigests(req), nil
	case RequestGetCertificate:
		return r.getCertificate(req), nil
	case RequestChallenge:
		return r.challenge(req), nil
	case RequestGetMeasurements:
		return r.getMeasurements(req), nil
	case RequestChunkGet:
		return r.chunkGet(req), nil
	case RequestVendorDefined:
		return r.vendorDefined(ctx, req)
	case RequestKeyExchange:
		return r.keyExchange(req), nil
	case RequestFinish:
		return r.finishClear(req), nil
	case RequestGetKeyPairInfo:
		return r.getKeyPairInfo(req), nil
	case RequestHeartbeat, RequestKeyUpdate, RequestEndSession:
		return r.sessionOnly(code), nil
	}
	return r.errRsp(ErrorCodeUnsupportedRequest, uint8(code)), nil
}

// tooLarge refuses a request larger than this responder takes in one
// message (1.2+): its DataTransferSize, as it has no CHUNK_SEND, and never
// more than MaxSPDMmsgSize. DSP0274 1.2.0 §10.4 (DataTransferSize), ERROR
// code RequestTooLarge (Table 57). DOE zero padding (up to 3 bytes) is not
// counted.
func (r *Responder) tooLarge(req []byte) []byte {
	if r.c.version < Version12 {
		return nil
	}
	n := len(req)
	for pad := 0; pad < 3 && n > hdrLen && req[n-1] == 0; pad++ {
		n--
	}
	if uint32(n) > r.cfg.DataTransferSize || uint32(n) > r.cfg.MaxSPDMmsgSize {
		return r.errRsp(ErrorCodeRequestTooLarge, 0)
	}
	return nil
}

// sessionOnly answers HEARTBEAT, KEY_UPDATE and END_SESSION received
// outside a session: UnsupportedRequest when the responder does not
// advertise the capability the request needs (HBEAT_CAP, KEY_UPD_CAP,
// KEY_EX_CAP); otherwise SessionRequired in 1.2+ (DSP0274 1.2.0 Table 57:
// "the request is valid only within a session") and UnexpectedRequest in
// 1.1, which has no SessionRequired code.
func (r *Responder) sessionOnly(code RequestCode) []byte {
	need := CapKeyEx
	switch code {
	case RequestHeartbeat:
		need = CapHBeat
	case RequestKeyUpdate:
		need = CapKeyUpd
	}
	if r.rspFlags(r.c.version)&need == 0 {
		return r.errRsp(ErrorCodeUnsupportedRequest, uint8(code))
	}
	if r.c.version >= Version12 {
		return r.errRsp(ErrorCodeSessionRequired, 0)
	}
	return r.errRsp(ErrorCodeUnexpectedRequest, 0)
}

// busy implements Faults.Busy: the same request is refused until the count
// is used up; a new request starts a new count.
func (r *Responder) busy(req []byte) []byte {
	n := r.cfg.Faults.Busy
	if n == 0 || RequestCode(req[1]) == RequestRespondIfReady {
		return nil
	}
	if string(req) != string(r.c.busyReq) {
		r.c.busyReq, r.c.busyCount = append([]byte(nil), req...), 0
	}
	if n > 0 && r.c.busyCount >= n {
		return nil
	}
	r.c.busyCount++
	return r.errRsp(ErrorCodeBusy, 0)
}

// rspVersion is the version ERROR responses carry: the negotiated one after
// CAPABILITIES; before, the request's own version when it is one we offer
// (an ERROR to GET_CAPABILITIES speaks the version asked), else 1.0.
func (r *Responder) rspVersion() Version {
	if r.c.stage >= rspStageCapabilities {
		return r.c.version
	}
	if r.c.reqVersion != Version10 && slices.Contains(r.cfg.Versions, r.c.reqVersion) && RequestCode(r.c.reqCode) != RequestGetVersion {
		return r.c.reqVersion
	}
	return Version10
}

func (r *Responder) errRsp(code ErrorCode, data uint8) []byte {
	return (&errorRsp{Version: r.rspVersion(), Code: code, Data: data}).marshal()
}

// decodeReq decodes a request, tolerating DOE zero padding.
func rspDecode[T any](b []byte, dec func([]byte) (T, error)) (T, bool) {
	m, err := decodePadded(b, dec)
	return m, err == nil
}

// vendorDefined answers VENDOR_DEFINED_REQUEST (DSP0274 §10.15) through the
// configured hook.
func (r *Responder) vendorDefined(ctx context.Context, req []byte) ([]byte, error) {
	m, ok := rspDecode(req, decodeVendorDefinedReq)
	if !ok {
		return r.errRsp(ErrorCodeInvalidRequest, 0), nil
	}
	if r.cfg.VendorDefined == nil {
		return r.errRsp(ErrorCodeUnsupportedRequest, uint8(RequestVendorDefined)), nil
	}
	payload, err := r.cfg.VendorDefined(ctx, m.StandardID, m.VendorID, m.Payload)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return r.errRsp(ErrorCodeUnspecified, 0), nil
	}
	if len(payload) > 0xFFFF {
		return r.errRsp(ErrorCodeResponseTooLarge, 0), nil
	}
	rsp := &vendorDefined{Version: r.c.version, StandardID: m.StandardID, VendorID: m.VendorID, Payload: payload}
	return r.send(RequestVendorDefined, rsp.marshalResponse()), nil
}

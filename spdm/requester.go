package spdm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Transport carries one SPDM request and returns the response. For DOE the
// response may carry 0–3 zero pad bytes after the SPDM message; the
// requester removes them using the message's own length fields.
// *doe.Exchanger satisfies it (declared here, the consumer; STYLE §2.6).
type Transport interface {
	Exchange(ctx context.Context, req []byte) ([]byte, error)
}

// ChainCache stores certificate chain buffers keyed by their digest (the
// DIGESTS value: negotiated hash of the whole SPDM cert chain buffer). A hit
// costs no GET_CERTIFICATE. Implementations must be safe for concurrent use
// if shared between requesters.
type ChainCache interface {
	Get(hash HashAlgo, digest []byte) ([]byte, bool)
	Put(hash HashAlgo, digest []byte, chain []byte)
}

// Timeouts bound waits. Zero fields take the defaults in brackets.
type Timeouts struct {
	Transport       time.Duration // per-exchange transport allowance added to ST1/CT [1s]
	ST1             time.Duration // response time for non-cryptographic requests [100ms]
	MaxCT           time.Duration // largest CT (2^CTExponent µs) accepted from a responder [2^23 µs, PCIe CMA]
	BusyRetries     int           // retries after ERROR Busy [3]
	BusyBackoff     time.Duration // first backoff after Busy, doubled each time [10ms]
	NotReadyRetries int           // RESPOND_IF_READY rounds after ResponseNotReady [8]
	MaxNotReadyWait time.Duration // longest single wait a responder may ask for [10s]
}

// Options configure a Requester. Zero fields take defaults.
type Options struct {
	// Rand supplies, in order of the calls: for CHALLENGE the 32-byte nonce
	// then (1.3) the 8-byte RequesterContext; for GET_MEASUREMENTS the nonce
	// (signed only) then (1.3) the RequesterContext. [crypto/rand]
	Rand   io.Reader
	Now    func() time.Time // certificate validity [time.Now]
	Roots  []*x509.Certificate
	Logger *slog.Logger // [discard]

	MinVersion, MaxVersion Version  // [1.0, 1.3]
	AsymAlgos              AsymAlgo // offered and allowed, masked to AsymVerifiable [AsymVerifiable]
	HashAlgos              HashAlgo // offered and allowed, masked to HashSupported [HashSupported]

	ChainCache ChainCache // optional
	Timeouts   Timeouts

	// Wire details of what we advertise. The defaults follow the Linux CMA
	// requester; tests set them to reproduce a recorded requester exactly.
	CapabilityFlags  uint32      // [CapCert|CapChal]
	CTExponent       uint8       // [20 when CapabilityFlags is zero, else as given]
	DataTransferSize uint32      // [1048568, the DOE maximum payload]
	MaxSPDMmsgSize   uint32      // [DataTransferSize; always DataTransferSize without CapChunk]
	DHEAlgos         DHEAlgo     // AlgStruct offers (1.1+); all zero → no AlgStruct tables
	AEADAlgos        AEADAlgo    //
	ReqAsymAlgos     AsymAlgo    //
	KeySchedules     KeySchedule //
	// MultiKeyConn asks a 1.3 responder whose MULTI_KEY_CAP is 10b
	// (negotiated) for a multi-key connection; a 01b responder is always
	// multi-key, a 00b one never (DSP0274 1.3.0 Table 32).
	MultiKeyConn bool
	// ResponderPublicKey is the responder's pre-provisioned public key
	// (DSP0274 PUB_KEY_ID_CAP): CHALLENGE, signed GET_MEASUREMENTS and
	// KEY_EXCHANGE with slot SlotProvisioned are verified with it instead
	// of a certificate chain. nil = no provisioned key.
	ResponderPublicKey crypto.PublicKey
	// SupportedAlgorithms asks a 1.3 responder for its supported-algorithms
	// block in CAPABILITIES (GET_CAPABILITIES Param1 bit 0); it needs
	// CapChunk in CapabilityFlags and is ignored without it.
	SupportedAlgorithms bool
	MELSpec             uint8 // 1.3: MELspecification offered
}

// Negotiated is the frozen outcome of VCA. It holds no references and is
// copied on return, so it cannot change after Negotiate.
type Negotiated struct {
	Version          Version
	RequesterCaps    uint32
	Caps             uint32 // responder capability flags (CapabilityNames)
	CTExponent       uint8
	DataTransferSize uint32 // responder's (1.2+; 0 before)
	MaxSPDMmsgSize   uint32
	// MultiKey is MULTI_KEY_CONN_RSP (1.3): the responder's slots may hold
	// different keys, DIGESTS says which key each slot has and what it may
	// sign (Digests.KeyPairID, CertInfo, KeyUsageMask), and the requester
	// verifies a slot's signature only for what its KeyUsageMask allows.
	MultiKey bool
	// Supported is the responder's 1.3 supported-algorithms block, when
	// asked for (Options.SupportedAlgorithms) and sent (HasSupported).
	Supported    SupportedAlgorithms
	HasSupported bool
	Algorithms
}

// Algorithms are the ALGORITHMS selections (one bit each, or zero when not used).
type Algorithms struct {
	MeasSpec    uint8
	OtherParams uint8
	BaseAsym    AsymAlgo
	BaseHash    HashAlgo
	MeasHash    MeasHashAlgo
	DHE         DHEAlgo
	AEAD        AEADAlgo
	ReqBaseAsym AsymAlgo
	KeySchedule KeySchedule
}

// CT is the responder's cryptographic timeout 2^CTExponent µs.
func (n Negotiated) CT() time.Duration {
	return time.Duration(1<<min(n.CTExponent, 40)) * time.Microsecond
}

// Stats count traffic on one connection (since NewRequester), bytes as the
// transport carried them (DOE padding included, DOE header not).
type Stats struct {
	RoundTrips int
	BytesSent  int
	BytesRecv  int
}

// Requester is the SPDM requester for one responder. It is not safe for
// concurrent use.
type Requester struct {
	t   Transport
	o   Options
	log *slog.Logger

	err   error // sticky: see Negotiate
	neg   *Negotiated
	stats Stats

	tr     transcript // A, B, L1/L2 and D (transcript.go)
	lastRq RequestCode

	digests *Digests
	chains  map[uint8]*CertChain
	handle  uint8

	sessions int                            // KEY_EXCHANGEs sent (picks ReqSessionID)
	dheHook  func(DHEAlgo) (*dheKey, error) // tests: replace the ephemeral DHE key
}

// NewRequester returns a Requester over t. opts may be nil.
func NewRequester(t Transport, opts *Options) *Requester {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MinVersion == 0 {
		o.MinVersion = Version10
	}
	if o.MaxVersion == 0 {
		o.MaxVersion = Version13
	}
	if o.AsymAlgos == 0 {
		o.AsymAlgos = AsymVerifiable
	}
	if o.HashAlgos == 0 {
		o.HashAlgos = HashSupported
	}
	// Never offer what we could not verify: Negotiate fails if nothing is left.
	o.AsymAlgos &= AsymVerifiable
	o.HashAlgos &= HashSupported
	if o.CapabilityFlags == 0 { // wire details not set: use the defaults as a group
		o.CapabilityFlags = CapCert | CapChal
		o.CTExponent = 20
	}
	if o.DataTransferSize == 0 {
		o.DataTransferSize = 1048568
	}
	if o.MaxSPDMmsgSize == 0 || o.CapabilityFlags&CapChunk == 0 {
		// Without CHUNK_CAP the two must be equal (DSP0274 1.2.0 §10.4);
		// responders refuse anything else with InvalidRequest.
		o.MaxSPDMmsgSize = o.DataTransferSize
	}
	tm := &o.Timeouts
	setDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setDur(&tm.Transport, time.Second)
	setDur(&tm.ST1, 100*time.Millisecond)
	setDur(&tm.MaxCT, (1<<23)*time.Microsecond)
	setDur(&tm.BusyBackoff, 10*time.Millisecond)
	setDur(&tm.MaxNotReadyWait, 10*time.Second)
	if tm.BusyRetries == 0 {
		tm.BusyRetries = 3
	}
	if tm.NotReadyRetries == 0 {
		tm.NotReadyRetries = 8
	}
	return &Requester{t: t, o: o, log: o.Logger, chains: map[uint8]*CertChain{}}
}

// Stats returns the traffic counters.
func (r *Requester) Stats() Stats { return r.stats }

// Negotiated returns the VCA outcome, if Negotiate succeeded.
func (r *Requester) Negotiated() (Negotiated, bool) {
	if r.neg == nil {
		return Negotiated{}, false
	}
	return *r.neg, true
}

// VCA returns a copy of the VCA transcript (message A).
func (r *Requester) VCA() []byte { return bytes.Clone(r.tr.vca()) }

// Err returns the sticky error, if any.
func (r *Requester) Err() error { return r.err }

// fail records err as sticky unless it is a responder ERROR (those leave the
// connection usable) and returns it.
func (r *Requester) fail(err error) error {
	var re *ResponderError
	if err != nil && !errors.As(err, &re) {
		r.err = err
	}
	return err
}

func protoErr(req RequestCode, format string, a ...any) error {
	return &ProtocolError{Request: req, Reason: fmt.Sprintf(format, a...)}
}

// ready checks the preconditions of a post-VCA step.
func (r *Requester) ready(req RequestCode) error {
	if r.err != nil {
		return r.err
	}
	if r.neg == nil {
		return protoErr(req, "called before Negotiate")
	}
	return nil
}

// readRand fills b from Options.Rand.
func (r *Requester) readRand(b []byte) error {
	if _, err := io.ReadFull(r.o.Rand, b); err != nil {
		return fmt.Errorf("spdm: reading randomness: %w", err)
	}
	return nil
}

// timeout is the per-exchange budget: transport allowance + ST1 or CT.
func (r *Requester) timeout(crypto bool) time.Duration {
	d := r.o.Timeouts.ST1
	if crypto && r.neg != nil {
		d = max(d, r.neg.CT())
	}
	return r.o.Timeouts.Transport + d
}

// roundTrip sends one message and returns the response with the DOE pad
// still attached. It counts traffic and bounds the wait.
func (r *Requester) roundTrip(ctx context.Context, req []byte, crypto bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout(crypto))
	defer cancel()
	r.stats.RoundTrips++
	r.stats.BytesSent += len(req)
	rsp, err := r.t.Exchange(ctx, req)
	r.stats.BytesRecv += len(rsp)
	if err != nil {
		return nil, fmt.Errorf("spdm: %s: transport: %w", RequestCode(req[1]), err)
	}
	r.log.DebugContext(ctx, "spdm exchange", "req", RequestCode(req[1]).String(), "len", len(req), "rsp_len", len(rsp))
	if len(rsp) < hdrLen {
		return nil, &DecodeError{Msg: "response", Field: "header", Offset: 0, Reason: "shorter than 4 bytes"}
	}
	return rsp, nil
}

// exchange sends req (code rc) and returns the final response bytes (pad
// still attached; callers decode with decodePadded), handling Busy,
// ResponseNotReady, LargeResponse and, for large requests, CHUNK_SEND. The
// returned response has the code rc answers; an ERROR becomes a
// *ResponderError. RequestResynch is returned as a *ResponderError too; the
// public steps restart VCA once on it.
func (r *Requester) exchange(ctx context.Context, req []byte, crypto bool) ([]byte, error) {
	rc := RequestCode(req[1])
	if rc != RequestGetMeasurements {
		r.tr.resetL() // L1/L2 reset on any other request
	}
	r.lastRq = rc
	backoff := r.o.Timeouts.BusyBackoff
	busy, notReady, large := 0, 0, 0
	send := func() ([]byte, error) { return r.send(ctx, req, crypto) }
	rsp, err := send()
	for {
		if err != nil {
			return nil, err
		}
		if rsp[0] != req[0] {
			return nil, protoErr(rc, "response version 0x%02x, request 0x%02x", rsp[0], req[0])
		}
		if ResponseCode(rsp[1]) != ResponseError {
			if ResponseCode(rsp[1]) != rc.Response() {
				return nil, protoErr(rc, "response code %s does not answer the request", ResponseCode(rsp[1]))
			}
			return rsp, nil
		}
		em, derr := decodePadded(rsp, decodeErrorRsp)
		if derr != nil {
			return nil, derr
		}
		switch em.Code {
		case ErrorCodeBusy:
			if busy >= r.o.Timeouts.BusyRetries {
				return nil, r.respErr(rc, em)
			}
			busy++
			if err := sleepCtx(ctx, backoff); err != nil {
				return nil, fmt.Errorf("spdm: %s: waiting after Busy: %w", rc, err)
			}
			backoff *= 2
			rsp, err = send()
		case ErrorCodeResponseNotReady:
			if notReady >= r.o.Timeouts.NotReadyRetries {
				return nil, protoErr(rc, "still not ready after %d RESPOND_IF_READY", notReady)
			}
			notReady++
			if em.ReqCode != uint8(rc) {
				return nil, protoErr(rc, "ResponseNotReady names request 0x%02x", em.ReqCode)
			}
			if em.RDExponent > 31 || em.RDTM == 0 {
				return nil, protoErr(rc, "ResponseNotReady RDExponent %d RDTM %d out of range", em.RDExponent, em.RDTM)
			}
			wait := time.Duration(1<<em.RDExponent) * time.Microsecond
			if wait > r.o.Timeouts.MaxNotReadyWait {
				return nil, protoErr(rc, "ResponseNotReady asks to wait %v", wait)
			}
			if err := sleepCtx(ctx, wait); err != nil {
				return nil, fmt.Errorf("spdm: %s: waiting for ResponseNotReady: %w", rc, err)
			}
			riy := (&respondIfReadyReq{Version: Version(req[0]), ReqCode: uint8(rc), Token: em.Token}).marshal()
			rsp, err = r.roundTrip(ctx, riy, crypto)
		case ErrorCodeLargeResponse:
			if Version(req[0]) < Version12 || len(em.Ext) != 1 {
				return nil, protoErr(rc, "LargeResponse before 1.2 or without a handle")
			}
			if large++; large > 1 {
				return nil, protoErr(rc, "the reassembled large response is another LargeResponse")
			}
			rsp, err = r.chunkGet(ctx, Version(req[0]), em.Ext[0])
		default:
			return nil, r.respErr(rc, em)
		}
	}
}

func (r *Requester) respErr(rc RequestCode, em *errorRsp) error {
	return &ResponderError{Request: rc, Code: em.Code, Data: em.Data, Extended: bytes.Clone(em.Ext)}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// send transmits req, splitting it with CHUNK_SEND when it exceeds the
// responder's DataTransferSize (1.2+, both sides CHUNK_CAP).
func (r *Requester) send(ctx context.Context, req []byte, crypto bool) ([]byte, error) {
	n := r.neg
	if n == nil || n.DataTransferSize == 0 || uint32(len(req)) <= n.DataTransferSize {
		return r.roundTrip(ctx, req, crypto)
	}
	rc := RequestCode(req[1])
	if n.Version < Version12 || n.Caps&CapChunk == 0 || r.o.CapabilityFlags&CapChunk == 0 {
		return nil, protoErr(rc, "request of %d bytes exceeds DataTransferSize %d and chunking is not negotiated", len(req), n.DataTransferSize)
	}
	if uint32(len(req)) > n.MaxSPDMmsgSize {
		return nil, protoErr(rc, "request of %d bytes exceeds MaxSPDMmsgSize %d", len(req), n.MaxSPDMmsgSize)
	}
	r.handle++
	h := r.handle
	for seq, off := uint16(0), 0; ; seq++ {
		room := int(n.DataTransferSize) - 12
		if seq == 0 {
			room -= 4
		}
		end := min(len(req), off+room)
		cs := &chunkSendReq{Version: n.Version, Last: end == len(req), Handle: h, Seq: seq, Chunk: req[off:end]}
		if seq == 0 {
			cs.LargeSize = uint32(len(req))
		}
		rsp, err := r.roundTrip(ctx, cs.marshal(), crypto)
		if err != nil {
			return nil, err
		}
		if ResponseCode(rsp[1]) == ResponseError {
			return rsp, nil // the ERROR answers the large request
		}
		ack, err := decodePadded(rsp, decodeChunkSendAckRsp)
		if err != nil {
			return nil, err
		}
		if ack.Version != n.Version || ack.Handle != h || ack.Seq != seq {
			return nil, protoErr(RequestChunkSend, "CHUNK_SEND_ACK version %s handle %d seq %d, want %s %d %d", ack.Version, ack.Handle, ack.Seq, n.Version, h, seq)
		}
		if ack.EarlyError {
			if len(ack.Response) < hdrLen || ResponseCode(ack.Response[1]) != ResponseError {
				return nil, protoErr(RequestChunkSend, "early error without an ERROR message")
			}
			return ack.Response, nil
		}
		if cs.Last {
			if len(ack.Response) < hdrLen {
				return nil, protoErr(RequestChunkSend, "last CHUNK_SEND_ACK carries no response")
			}
			return ack.Response, nil
		}
		if len(ack.Response) != 0 {
			return nil, protoErr(RequestChunkSend, "CHUNK_SEND_ACK before the last chunk carries a response")
		}
		off = end
	}
}

// chunkGet reassembles a large response with CHUNK_GET.
func (r *Requester) chunkGet(ctx context.Context, v Version, handle uint8) ([]byte, error) {
	if r.neg == nil || r.neg.Caps&CapChunk == 0 || r.o.CapabilityFlags&CapChunk == 0 {
		return nil, protoErr(RequestChunkGet, "LargeResponse without negotiated chunking")
	}
	var out []byte
	var total uint32
	for seq := uint16(0); ; seq++ {
		rsp, err := r.roundTrip(ctx, (&chunkGetReq{Version: v, Handle: handle, Seq: seq}).marshal(), false)
		if err != nil {
			return nil, err
		}
		if rsp[0] != uint8(v) || ResponseCode(rsp[1]) != ResponseChunkResponse {
			return nil, protoErr(RequestChunkGet, "answered with %s", ResponseCode(rsp[1]))
		}
		c, err := decodePadded(rsp, decodeChunkResponseRsp)
		if err != nil {
			return nil, err
		}
		if c.Handle != handle || c.Seq != seq {
			return nil, protoErr(RequestChunkGet, "CHUNK_RESPONSE handle %d seq %d, want %d %d", c.Handle, c.Seq, handle, seq)
		}
		if seq == 0 {
			total = c.LargeSize
			if total > r.o.MaxSPDMmsgSize {
				return nil, protoErr(RequestChunkGet, "large response of %d bytes exceeds our MaxSPDMmsgSize", total)
			}
			out = make([]byte, 0, total)
		}
		if uint64(len(out))+uint64(len(c.Chunk)) > uint64(total) {
			return nil, protoErr(RequestChunkGet, "chunks exceed LargeMessageSize %d", total)
		}
		out = append(out, c.Chunk...)
		if c.Last {
			if uint32(len(out)) != total || len(out) < hdrLen {
				return nil, protoErr(RequestChunkGet, "reassembled %d bytes, LargeMessageSize %d", len(out), total)
			}
			return out, nil
		}
		if seq == 0xFFFF {
			return nil, protoErr(RequestChunkGet, "too many chunks")
		}
	}
}

// step runs fn, restarting VCA once if the responder asks for resynch (the
// new negotiation must equal the old one, else the connection fails), and
// applies the sticky-error rule.
func (r *Requester) step(ctx context.Context, fn func() error) error {
	err := fn()
	if errors.Is(err, ErrorCodeRequestResynch) {
		r.log.InfoContext(ctx, "spdm responder requested resynch; restarting VCA")
		var before *Negotiated
		if r.neg != nil {
			b := *r.neg
			before = &b
		}
		n, err2 := r.Negotiate(ctx)
		if err2 != nil {
			return err2
		}
		// The caller recorded (and may have judged) the first negotiation: a
		// responder may not use a resynch to switch version or algorithms.
		if before != nil && n != *before {
			return r.fail(protoErr(RequestGetVersion, "after RequestResynch the responder negotiated %s %s/%s, before %s %s/%s",
				n.Version, n.BaseAsym, n.BaseHash, before.Version, before.BaseAsym, before.BaseHash))
		}
		err = fn()
	}
	return r.fail(err)
}

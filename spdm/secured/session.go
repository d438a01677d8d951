package secured

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// Role says which side of the session this end is.
type Role uint8

const (
	RoleRequester Role = iota + 1
	RoleResponder
)

func (r Role) String() string {
	switch r {
	case RoleRequester:
		return "requester"
	case RoleResponder:
		return "responder"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Direction names a key direction: Request keys protect requester→responder
// records, Response keys responder→requester records.
type Direction uint8

const (
	Request Direction = iota
	Response
)

func (d Direction) String() string {
	if d == Request {
		return "request"
	}
	return "response"
}

// Phase is the state of a Session.
type Phase uint8

const (
	// PhaseHandshake: records use the handshake keys (FINISH/FINISH_RSP when
	// the handshake is not in the clear).
	PhaseHandshake Phase = iota + 1
	// PhaseData: records use the data keys (after FINISH_RSP).
	PhaseData
	// PhaseEnded: Close was called (END_SESSION); no more records.
	PhaseEnded
	// PhaseDead: a record failed; the session is unusable (Err says why).
	PhaseDead
)

func (p Phase) String() string {
	switch p {
	case PhaseHandshake:
		return "handshake"
	case PhaseData:
		return "data"
	case PhaseEnded:
		return "ended"
	case PhaseDead:
		return "dead"
	}
	return fmt.Sprintf("Phase(%d)", uint8(p))
}

// Reason says why a session died.
type Reason uint8

const (
	ReasonMalformed         Reason = iota + 1 // record framing wrong (short, bad Length, trailing bytes, AppDataLength)
	ReasonWrongSessionID                      // record carries another session's ID
	ReasonAuthFailed                          // AEAD tag check failed: forged, corrupted, replayed or reordered record
	ReasonSequenceExhausted                   // the sequence number would wrap: KEY_UPDATE was due
	ReasonEnded                               // the session was closed
)

func (r Reason) String() string {
	switch r {
	case ReasonMalformed:
		return "malformed record"
	case ReasonWrongSessionID:
		return "wrong session ID"
	case ReasonAuthFailed:
		return "authentication failed (bad tag, or a replayed or reordered record)"
	case ReasonSequenceExhausted:
		return "sequence number exhausted"
	case ReasonEnded:
		return "session ended"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// ErrSessionDead matches (errors.Is) every *Error: the session is unusable.
var ErrSessionDead = errors.New("secured: session dead")

// Error is the typed failure of a Seal or Open. It is sticky: once a session
// has failed, every later call returns the same *Error.
type Error struct {
	SessionID uint32
	Op        string // "seal" or "open"
	Dir       Direction
	Seq       uint64 // sequence number the record was expected to have
	Reason    Reason
	Detail    string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("secured: session %#08x dead: %s %s record seq %d: %v", e.SessionID, e.Op, e.Dir, e.Seq, e.Reason)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is makes errors.Is(err, ErrSessionDead) true.
func (e *Error) Is(target error) bool { return target == ErrSessionDead }

// Record layout on DOE (DSP0277, PCI DOE binding): SessionID(4) ‖ Length(2) ‖
// AEAD(AppDataLength(2) ‖ SPDM message) ‖ tag(16). No sequence number and no
// random padding travel on DOE; Length counts the ciphertext and the tag.
const (
	headerSize = 6
	// Overhead is the record size minus the SPDM message size.
	Overhead = headerSize + 2 + TagSize
	// MaxMessageSize is the largest SPDM message one record can carry.
	MaxMessageSize = math.MaxUint16 - 2 - TagSize
	// maxDOEPad is the DOE dword padding allowed after Length.
	maxDOEPad = 3
)

// Record is a decoded (still sealed) secured message.
type Record struct {
	SessionID uint32
	Header    []byte // the 6 bytes of SessionID ‖ Length: the AAD
	Sealed    []byte // ciphertext ‖ tag, Length bytes
}

// DecodeError describes a record whose framing is wrong.
type DecodeError struct {
	Field  string
	Offset int
	Msg    string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("secured: decode record: %s at offset %d: %s", e.Field, e.Offset, e.Msg)
}

// ParseRecord splits a secured message as received in a DOE data object
// payload. Up to 3 zero bytes of DOE padding may follow the record; anything
// else after Length is rejected.
func ParseRecord(b []byte) (*Record, error) {
	s := wire.String(b)
	var id uint32
	var n uint16
	var sealed []byte
	if !s.ReadU32(&id) || !s.ReadU16(&n) {
		return nil, &DecodeError{Field: "header", Offset: len(b) - s.Len(), Msg: fmt.Sprintf("need %d bytes, have %d", headerSize, len(b))}
	}
	if int(n) < 2+TagSize {
		return nil, &DecodeError{Field: "Length", Offset: 4, Msg: fmt.Sprintf("%d is below the minimum %d", n, 2+TagSize)}
	}
	if !s.ReadBytes(&sealed, int(n)) {
		return nil, &DecodeError{Field: "Length", Offset: 4, Msg: fmt.Sprintf("%d exceeds the %d bytes present", n, len(b)-headerSize)}
	}
	if s.Len() > maxDOEPad || !wire.Zero(s) {
		return nil, &DecodeError{Field: "padding", Offset: headerSize + int(n), Msg: fmt.Sprintf("%d trailing bytes (DOE padding is at most 3 zero bytes)", s.Len())}
	}
	return &Record{SessionID: id, Header: b[:headerSize:headerSize], Sealed: sealed}, nil
}

// Encode returns the record bytes without DOE padding.
func (r *Record) Encode() []byte {
	b := wire.NewBuilder(make([]byte, 0, headerSize+len(r.Sealed)))
	b.AddU32(r.SessionID).AddU16(uint16(len(r.Sealed))).AddBytes(r.Sealed)
	return b.Bytes()
}

// PeekSessionID returns the session ID of a secured message, so that an owner
// of several sessions can route it. It checks nothing else.
func PeekSessionID(b []byte) (uint32, bool) {
	if len(b) < 4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b), true
}

// channel is one direction's live keys.
type channel struct {
	keys trafficKeys
	aead cipher.AEAD
	seq  uint64
}

func newChannel(a AEAD, k trafficKeys) (*channel, error) {
	var c cipher.AEAD
	var err error
	switch a {
	case AES128GCM, AES256GCM:
		var blk cipher.Block
		if blk, err = aes.NewCipher(k.key); err == nil {
			c, err = cipher.NewGCM(blk)
		}
	case ChaCha20Poly1305:
		c, err = chacha20poly1305.New(k.key)
	default:
		err = fmt.Errorf("%w: %v", ErrUnsupportedSuite, a)
	}
	if err != nil {
		return nil, err
	}
	return &channel{keys: k, aead: c}, nil
}

// nonce is IV XOR the sequence number as u64 little-endian in bytes 0..7.
func (c *channel) nonce() []byte {
	n := c.keys.iv
	var seq [8]byte
	binary.LittleEndian.PutUint64(seq[:], c.seq)
	for i := range seq {
		n[i] ^= seq[i]
	}
	return n[:]
}

// Session is one SPDM secure session, usable by both sides. It holds the
// keys for both directions and the per-direction sequence numbers, which
// start at 0 for the handshake keys, again for the data keys and after each
// key update. A Session is safe for concurrent use; records of one direction
// must still be sealed and opened in wire order.
type Session struct {
	mu        sync.Mutex
	id        uint32
	role      Role
	suite     Suite
	phase     Phase
	handshake *HandshakeKeys
	data      *DataKeys
	ch        [2]*channel // indexed by Direction
	err       *Error
}

// NewSession starts a session in the handshake phase with the handshake keys.
// id is the full session ID (RspSessionID<<16 | ReqSessionID).
func NewSession(id uint32, role Role, hk *HandshakeKeys) (*Session, error) {
	if role != RoleRequester && role != RoleResponder {
		return nil, fmt.Errorf("secured: invalid role %v", role)
	}
	s := &Session{id: id, role: role, suite: hk.Suite(), phase: PhaseHandshake, handshake: hk}
	if err := s.install(hk.req, hk.rsp); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Session) install(req, rsp trafficKeys) error {
	r, err := newChannel(s.suite.AEAD, req)
	if err != nil {
		return err
	}
	p, err := newChannel(s.suite.AEAD, rsp)
	if err != nil {
		return err
	}
	s.ch[Request], s.ch[Response] = r, p
	return nil
}

// ID returns the session ID.
func (s *Session) ID() uint32 { return s.id }

// Role returns which side this end is.
func (s *Session) Role() Role { return s.role }

// Suite returns the negotiated suite.
func (s *Session) Suite() Suite { return s.suite }

// Phase returns the current phase.
func (s *Session) Phase() Phase {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phase
}

// Err returns the error that killed the session, or nil.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		return nil
	}
	return s.err
}

// Handshake returns the handshake keys, for verify data (FINISH, FINISH_RSP),
// or nil once the session is closed or dead.
func (s *Session) Handshake() *HandshakeKeys {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handshake
}

// Sequence returns the next sequence number of direction d.
func (s *Session) Sequence(d Direction) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch[d&1].seq
}

// Remaining returns how many more records direction d can carry before a key
// update is mandatory.
func (s *Session) Remaining(d Direction) uint64 {
	return math.MaxUint64 - s.Sequence(d)
}

// EnterDataPhase derives the data keys from TH2 and switches both directions
// to them, with sequence numbers back at 0. Call it after FINISH_RSP has been
// sent (responder) or received and verified (requester).
func (s *Session) EnterDataPhase(th2Hash []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.phase != PhaseHandshake {
		return fmt.Errorf("secured: session %#08x: data keys requested in phase %v", s.id, s.phase)
	}
	dk, err := s.handshake.MasterSecret().DataKeys(th2Hash)
	if err != nil {
		return err
	}
	if err := s.install(dk.req, dk.rsp); err != nil {
		return err
	}
	s.data, s.phase = dk, PhaseData
	return nil
}

// ExportMasterSecret returns the export master secret (data phase only).
func (s *Session) ExportMasterSecret() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data == nil {
		return nil, errors.New("secured: no export master secret before the data phase")
	}
	return s.data.ExportMasterSecret(), nil
}

// UpdateKey replaces direction d's data secret by Expand(secret, "traffic
// upd") and restarts its sequence number at 0 (KEY_UPDATE, DSP0274). The SPDM
// layer calls it at the point the protocol switches keys: for UpdateKey the
// request direction, for UpdateAllKeys both; each side switches the direction
// it receives on when it processes KEY_UPDATE, and the direction it sends on
// after the message protected by the old key.
func (s *Session) UpdateKey(d Direction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.phase != PhaseData {
		return fmt.Errorf("secured: session %#08x: key update in phase %v", s.id, s.phase)
	}
	c, err := newChannel(s.suite.AEAD, s.suite.next(s.ch[d&1].keys))
	if err != nil {
		return err
	}
	s.ch[d&1] = c
	return nil
}

// Close ends the session (END_SESSION) and drops its keys. Later Seal/Open
// calls fail with ReasonEnded.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == PhaseEnded || s.phase == PhaseDead {
		return
	}
	s.phase = PhaseEnded
	s.ch = [2]*channel{}
	s.handshake, s.data = nil, nil
}

func (s *Session) txDir() Direction {
	if s.role == RoleRequester {
		return Request
	}
	return Response
}

// fail records a fatal error (locked).
func (s *Session) fail(op string, d Direction, r Reason, detail string) error {
	var seq uint64
	if c := s.ch[d&1]; c != nil {
		seq = c.seq
	}
	s.err = &Error{SessionID: s.id, Op: op, Dir: d, Seq: seq, Reason: r, Detail: detail}
	s.phase = PhaseDead
	s.ch = [2]*channel{}
	s.handshake, s.data = nil, nil
	return s.err
}

func (s *Session) usable(op string, d Direction) error {
	if s.err != nil {
		return s.err
	}
	if s.phase == PhaseEnded {
		return &Error{SessionID: s.id, Op: op, Dir: d, Reason: ReasonEnded}
	}
	if s.ch[d&1].seq == math.MaxUint64 {
		return s.fail(op, d, ReasonSequenceExhausted, "a key update was required before this record")
	}
	return nil
}

// Seal protects one SPDM message for sending in this end's direction and
// returns the record (without DOE padding).
func (s *Session) Seal(msg []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.txDir()
	if err := s.usable("seal", d); err != nil {
		return nil, err
	}
	if len(msg) > MaxMessageSize {
		return nil, fmt.Errorf("secured: message of %d bytes exceeds the record maximum %d", len(msg), MaxMessageSize)
	}
	c := s.ch[d]
	n := 2 + len(msg) + TagSize
	out := make([]byte, headerSize, headerSize+n)
	binary.LittleEndian.PutUint32(out, s.id)
	binary.LittleEndian.PutUint16(out[4:], uint16(n))
	pt := make([]byte, 2, 2+len(msg))
	binary.LittleEndian.PutUint16(pt, uint16(len(msg)))
	pt = append(pt, msg...)
	out = c.aead.Seal(out, c.nonce(), pt, out[:headerSize])
	c.seq++
	return out, nil
}

// Open authenticates and decrypts one record received from the peer and
// returns the SPDM message. Any failure kills the session.
func (s *Session) Open(rec []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := 1 - s.txDir()
	if err := s.usable("open", d); err != nil {
		return nil, err
	}
	r, err := ParseRecord(rec)
	if err != nil {
		return nil, s.fail("open", d, ReasonMalformed, err.Error())
	}
	if r.SessionID != s.id {
		return nil, s.fail("open", d, ReasonWrongSessionID, fmt.Sprintf("got %#08x", r.SessionID))
	}
	c := s.ch[d]
	pt, err := c.aead.Open(nil, c.nonce(), r.Sealed, r.Header)
	if err != nil {
		return nil, s.fail("open", d, ReasonAuthFailed, err.Error())
	}
	ps := wire.String(pt)
	var n uint16
	var msg []byte
	if !ps.ReadU16(&n) || !ps.ReadBytes(&msg, int(n)) || !ps.Empty() {
		return nil, s.fail("open", d, ReasonMalformed, fmt.Sprintf("AppDataLength %d does not match the %d decrypted bytes (no random padding on DOE)", n, len(pt)-2))
	}
	c.seq++
	return msg, nil
}

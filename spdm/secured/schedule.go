package secured

import (
	"crypto"
	"crypto/hkdf"
	"crypto/hmac"
	"errors"
	"fmt"
	"hash"

	_ "crypto/sha256" // registers SHA-256 for crypto.Hash
	_ "crypto/sha3"   // registers SHA3-* for crypto.Hash
	_ "crypto/sha512" // registers SHA-384/512 for crypto.Hash
)

// HKDF labels, DSP0274 "Key schedule" (SPEC-FACTS §2.12).
const (
	labelReqHS      = "req hs data"
	labelRspHS      = "rsp hs data"
	labelReqApp     = "req app data"
	labelRspApp     = "rsp app data"
	labelFinished   = "finished"
	labelDerived    = "derived"
	labelExpMaster  = "exp master"
	labelKey        = "key"
	labelIV         = "iv"
	labelTrafficUpd = "traffic upd"
)

// IVSize is the AEAD nonce size of every supported AEAD (DSP0277).
const IVSize = 12

// TagSize is the AEAD tag size of every supported AEAD.
const TagSize = 16

// AEAD is an SPDM AEAD cipher suite, with the bit values of the ALGORITHMS
// AlgStruct of type 3 (DSP0274 "NEGOTIATE_ALGORITHMS").
type AEAD uint16

const (
	AES128GCM        AEAD = 1 << 0
	AES256GCM        AEAD = 1 << 1
	ChaCha20Poly1305 AEAD = 1 << 2
)

// KeySize returns the key length in bytes, or 0 for an unsupported value.
func (a AEAD) KeySize() int {
	switch a {
	case AES128GCM:
		return 16
	case AES256GCM, ChaCha20Poly1305:
		return 32
	}
	return 0
}

func (a AEAD) String() string {
	switch a {
	case AES128GCM:
		return "AES-128-GCM"
	case AES256GCM:
		return "AES-256-GCM"
	case ChaCha20Poly1305:
		return "ChaCha20-Poly1305"
	}
	return fmt.Sprintf("AEAD(%#04x)", uint16(a))
}

// Suite is what the key schedule needs from the negotiation.
type Suite struct {
	// Version is the negotiated SPDM version byte (major<<4 | minor), 0x11..0x1F.
	// It selects the "spdm1.X " BinConcat label (not the secured-message version).
	Version uint8
	// Hash is the negotiated BaseHashAlgo (SHA-256/384/512, SHA3-256/384/512).
	Hash crypto.Hash
	// AEAD is the negotiated AEAD suite.
	AEAD AEAD
}

// ErrUnsupportedSuite is returned for a Suite the schedule cannot run.
var ErrUnsupportedSuite = errors.New("secured: unsupported suite")

func (s Suite) validate() error {
	if s.Version>>4 != 1 || s.Version&0x0f < 1 {
		return fmt.Errorf("%w: SPDM version %#02x has no sessions (need 1.1 or later)", ErrUnsupportedSuite, s.Version)
	}
	switch s.Hash {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA3_256, crypto.SHA3_384, crypto.SHA3_512:
	default:
		return fmt.Errorf("%w: hash %v", ErrUnsupportedSuite, s.Hash)
	}
	if s.AEAD.KeySize() == 0 {
		return fmt.Errorf("%w: %v", ErrUnsupportedSuite, s.AEAD)
	}
	return nil
}

func (s Suite) newHash() hash.Hash { return s.Hash.New() }

// binConcat is DSP0274's BinConcat(Length, Version, Label, Context):
// u16 little-endian output length ‖ "spdm1.X " ‖ label ‖ context.
func (s Suite) binConcat(length int, label string, context []byte) string {
	b := make([]byte, 0, 2+8+len(label)+len(context))
	b = append(b, byte(length), byte(length>>8))
	b = append(b, "spdm1."...)
	b = append(b, '0'+s.Version&0x0f, ' ')
	b = append(b, label...)
	b = append(b, context...)
	return string(b)
}

func (s Suite) expand(secret []byte, label string, context []byte, n int) []byte {
	out, err := hkdf.Expand(s.newHash, secret, s.binConcat(n, label, context), n)
	if err != nil {
		// Only possible when n exceeds 255*H, which our fixed sizes never do.
		panic("secured: hkdf expand: " + err.Error())
	}
	return out
}

func (s Suite) extract(ikm, salt []byte) []byte {
	out, err := hkdf.Extract(s.newHash, ikm, salt)
	if err != nil {
		panic("secured: hkdf extract: " + err.Error())
	}
	return out
}

func (s Suite) checkHash(name string, th []byte) error {
	if len(th) != s.Hash.Size() {
		return fmt.Errorf("secured: %s is %d bytes, want %d for %v", name, len(th), s.Hash.Size(), s.Hash)
	}
	return nil
}

// trafficKeys are one direction's traffic secret with its key and IV.
type trafficKeys struct {
	secret []byte
	key    []byte
	iv     [IVSize]byte
}

func (s Suite) traffic(secret []byte) trafficKeys {
	t := trafficKeys{secret: secret, key: s.expand(secret, labelKey, nil, s.AEAD.KeySize())}
	copy(t.iv[:], s.expand(secret, labelIV, nil, IVSize))
	return t
}

// next is the KEY_UPDATE derivation: secret' = Expand(secret, "traffic upd", H).
func (s Suite) next(t trafficKeys) trafficKeys {
	return s.traffic(s.expand(t.secret, labelTrafficUpd, nil, s.Hash.Size()))
}

// HandshakeSecret is the first stage: HKDF-Extract(0^H, shared secret).
type HandshakeSecret struct {
	suite  Suite
	secret []byte
}

// NewHandshakeSecret starts the schedule from the DHE shared secret (for
// ECDHE, the X coordinate) or the PSK. SPDM 1.1/1.2 use a zero salt.
func NewHandshakeSecret(s Suite, shared []byte) (*HandshakeSecret, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if len(shared) == 0 {
		return nil, errors.New("secured: empty shared secret")
	}
	salt := make([]byte, s.Hash.Size())
	return &HandshakeSecret{suite: s, secret: s.extract(shared, salt)}, nil
}

// HandshakeKeys is the second stage: the per-direction handshake secrets,
// finished keys and handshake traffic keys, bound to TH1.
type HandshakeKeys struct {
	hs          *HandshakeSecret
	req, rsp    trafficKeys
	reqFinished []byte
	rspFinished []byte
}

// HandshakeKeys derives the handshake secrets from the TH1 transcript hash.
func (h *HandshakeSecret) HandshakeKeys(th1Hash []byte) (*HandshakeKeys, error) {
	s := h.suite
	if err := s.checkHash("TH1 hash", th1Hash); err != nil {
		return nil, err
	}
	n := s.Hash.Size()
	req := s.expand(h.secret, labelReqHS, th1Hash, n)
	rsp := s.expand(h.secret, labelRspHS, th1Hash, n)
	return &HandshakeKeys{
		hs:          h,
		req:         s.traffic(req),
		rsp:         s.traffic(rsp),
		reqFinished: s.expand(req, labelFinished, nil, n),
		rspFinished: s.expand(rsp, labelFinished, nil, n),
	}, nil
}

// Suite returns the suite the schedule runs with.
func (k *HandshakeKeys) Suite() Suite { return k.hs.suite }

// ResponderVerifyData is HMAC(response finished key, transcriptHash), as
// carried in KEY_EXCHANGE_RSP / FINISH_RSP / PSK_EXCHANGE_RSP.
func (k *HandshakeKeys) ResponderVerifyData(transcriptHash []byte) []byte {
	return k.mac(k.rspFinished, transcriptHash)
}

// RequesterVerifyData is HMAC(request finished key, transcriptHash), as
// carried in FINISH / PSK_FINISH.
func (k *HandshakeKeys) RequesterVerifyData(transcriptHash []byte) []byte {
	return k.mac(k.reqFinished, transcriptHash)
}

// ErrVerifyData is wrapped by CheckResponderVerifyData / CheckRequesterVerifyData.
var ErrVerifyData = errors.New("secured: verify data mismatch")

// CheckResponderVerifyData compares got with ResponderVerifyData in constant time.
func (k *HandshakeKeys) CheckResponderVerifyData(transcriptHash, got []byte) error {
	if !hmac.Equal(k.ResponderVerifyData(transcriptHash), got) {
		return fmt.Errorf("%w: ResponderVerifyData", ErrVerifyData)
	}
	return nil
}

// CheckRequesterVerifyData compares got with RequesterVerifyData in constant time.
func (k *HandshakeKeys) CheckRequesterVerifyData(transcriptHash, got []byte) error {
	if !hmac.Equal(k.RequesterVerifyData(transcriptHash), got) {
		return fmt.Errorf("%w: RequesterVerifyData", ErrVerifyData)
	}
	return nil
}

func (k *HandshakeKeys) mac(key, th []byte) []byte {
	m := hmac.New(k.hs.suite.newHash, key)
	m.Write(th)
	return m.Sum(nil)
}

// MasterSecret is the third stage: HKDF-Extract(Expand(HS, "derived"), 0^H).
type MasterSecret struct {
	suite  Suite
	secret []byte
}

// MasterSecret derives the master secret. It hangs off HandshakeKeys (not
// HandshakeSecret) so that TH1 is always processed first.
func (k *HandshakeKeys) MasterSecret() *MasterSecret {
	s := k.hs.suite
	n := s.Hash.Size()
	salt := s.expand(k.hs.secret, labelDerived, nil, n)
	return &MasterSecret{suite: s, secret: s.extract(make([]byte, n), salt)}
}

// DataKeys is the last stage: data traffic keys and the export master secret,
// bound to TH2.
type DataKeys struct {
	suite        Suite
	req, rsp     trafficKeys
	exportMaster []byte
}

// DataKeys derives the data secrets from the TH2 transcript hash.
func (m *MasterSecret) DataKeys(th2Hash []byte) (*DataKeys, error) {
	s := m.suite
	if err := s.checkHash("TH2 hash", th2Hash); err != nil {
		return nil, err
	}
	n := s.Hash.Size()
	return &DataKeys{
		suite:        s,
		req:          s.traffic(s.expand(m.secret, labelReqApp, th2Hash, n)),
		rsp:          s.traffic(s.expand(m.secret, labelRspApp, th2Hash, n)),
		exportMaster: s.expand(m.secret, labelExpMaster, th2Hash, n),
	}, nil
}

// ExportMasterSecret returns a copy of the export master secret (DSP0274), for
// protocols that derive their own keys from the session.
func (d *DataKeys) ExportMasterSecret() []byte { return append([]byte(nil), d.exportMaster...) }

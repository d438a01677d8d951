package attest

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// DefaultTimeout bounds a whole attestation when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Options configure one attestation. The zero value (or nil) attests with
// no trust anchors (every chain is then reported unverified), the lowest
// provisioned slot, no chain cache, a 30 s deadline and crypto/rand.
type Options struct {
	Roots []*x509.Certificate // trust anchors (from policy or --trust-anchor)
	// ResponderPublicKey is the responder's pre-provisioned public key
	// (DSP0274 PUB_KEY_ID_CAP): CHALLENGE and MEASUREMENTS then use SlotID
	// 0xFF and are verified with it, no certificate is read, and the
	// responder must advertise PUB_KEY_ID_CAP. Only the algorithms that key
	// signs with are offered. nil = certificate slots.
	ResponderPublicKey crypto.PublicKey
	Slot               *uint8          // slot for CHALLENGE/MEASUREMENTS; nil = lowest provisioned slot whose chain verifies
	ChainCache         spdm.ChainCache // shared across attestations; nil = none
	Timeout            time.Duration   // whole attestation; 0 = 30 s
	// Negotiation floors (from policy); empty = all we support. Names as
	// Evidence reports them: "1.2", "ecdsa-p384", "sha-384".
	MinVersion           string
	AsymAlgos, HashAlgos []string
	Now                  func() time.Time // certificate validity and timings [time.Now]
	Rand                 io.Reader        // nonces [crypto/rand]
	Logger               *slog.Logger     // [discard]
	DOE                  *doe.Options     // mailbox tuning; nil = defaults

	// Session runs the measurements inside an SPDM secure session
	// (KEY_EXCHANGE with the verified slot's key) and fills
	// Evidence.Session; TDISP also reads the TDI's state (and its report,
	// when locked) inside that session into Evidence.TDISP (implies Session).
	Session, TDISP bool
	// SecuredTransport is the secured-CMA channel for Transport (the
	// socket's type-2 exchanger); Function finds it in the mailbox.
	SecuredTransport spdm.Transport
	// TDISPInterface is the function whose TDI is read with Transport
	// (Function uses its own BDF).
	TDISPInterface pci.BDF
}

// NewChainCache returns an in-memory chain cache (keyed by digest) to share
// across attestations in Options.ChainCache.
func NewChainCache() spdm.ChainCache { return &spdm.MapChainCache{} }

// SleepingDOE are mailbox options that wait for Data Object Ready by
// sleeping, never spinning: for many mailboxes in flight at once.
func SleepingDOE() *doe.Options { return &doe.Options{Spin: -1} }

// Function attests one PCI function through its DOE mailbox. The caller holds the
// per-function lock (pci.LockFunction). It never decides: every problem is recorded in
// Evidence.Failure (Kind one of attest.Fail*) and the Evidence is still returned. The error
// is non-nil only when the function itself cannot be read (no such device / removed:
// errors.Is(err, pci.ErrNoDevice|pci.ErrDeviceRemoved)), and then Evidence is nil.
func Function(ctx context.Context, sys *pci.System, bdf pci.BDF, o *Options) (*Evidence, error) {
	ev, _, err := attestFunction(ctx, sys, bdf, o, false)
	return ev, err
}

// FunctionSession is Function with a secure session (Options.Session is
// implied) that outlives the attestation: when the evidence has no Failure,
// the session in which it was gathered (in-session measurements, TDI state
// with Options.TDISP) is returned open in Held, with the function's config
// space, so that the caller can act on the very device it attested (lock
// its TDI: tdisp.Broker.Adopt). The caller holds the per-function lock, and
// ends the session and closes Held when done (Held.End). With a Failure, or
// an error, Held is nil and nothing stays open.
func FunctionSession(ctx context.Context, sys *pci.System, bdf pci.BDF, o *Options) (*Evidence, *Held, error) {
	oo := Options{}
	if o != nil {
		oo = *o
	}
	oo.Session = true
	return attestFunction(ctx, sys, bdf, &oo, true)
}

// Held is the open secure session of a FunctionSession attestation.
type Held struct {
	Session *spdm.Session
	close   func() error
}

// Close closes the function's config space the session runs over. Call it
// after the session ended (END_SESSION, or dead).
func (h *Held) Close() {
	if h.close != nil {
		_ = h.close()
		h.close = nil
	}
}

// End ends the session (END_SESSION) and closes the config space.
func (h *Held) End(ctx context.Context) error {
	var err error
	if h.Session.Err() == nil {
		err = h.Session.End(ctx)
	}
	h.Close()
	return err
}

// Transport attests a responder behind an already-open SPDM transport (spdm-socket), with
// the identity the caller supplies (flag, or CMA SAN of the leaf when id has zero IDs).
func Transport(ctx context.Context, t spdm.Transport, id Identity, o *Options) (*Evidence, error) {
	return attestTransport(ctx, t, id, o)
}

// Digest is SHA-256 over the canonical JSON of the evidence (what the TPM records):
// encoding/json of the Evidence as defined here (struct field order, no
// indentation, HTML escaping off).
func (e *Evidence) Digest() []byte {
	b, err := e.CanonicalJSON()
	if err != nil {
		// Evidence holds only JSON-encodable plain data; a failure here is a
		// programming error, still give a digest that cannot collide with a
		// real encoding.
		s := sha256.Sum256([]byte("vfio-gate: unencodable evidence: " + err.Error()))
		return s[:]
	}
	s := sha256.Sum256(b)
	return s[:]
}

// CanonicalJSON is the byte string Digest hashes.
func (e *Evidence) CanonicalJSON() ([]byte, error) {
	var buf jsonBuf
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	b := buf.b
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	return b, nil
}

type jsonBuf struct{ b []byte }

func (j *jsonBuf) Write(p []byte) (int, error) { j.b = append(j.b, p...); return len(p), nil }

package attest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/target"
)

// run is the state of one attestation.
type run struct {
	o   Options
	log *slog.Logger
	ev  *Evidence
	t0  time.Time
	tdi pci.BDF // function whose TDI Options.TDISP reads
	// keep: leave the secure session open when the attestation succeeded
	// (FunctionSession); held is that session.
	keep bool
	held *spdm.Session
}

func newRun(o *Options) *run {
	r := &run{}
	if o != nil {
		r.o = *o
	}
	if r.o.Timeout <= 0 {
		r.o.Timeout = DefaultTimeout
	}
	if r.o.Now == nil {
		r.o.Now = time.Now
	}
	r.log = r.o.Logger
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.t0 = r.o.Now()
	r.ev = &Evidence{Started: r.t0, Chains: []ChainState{}, Measurements: []MeasurementBlock{}, DOE: []Mailbox{}}
	return r
}

// fail records the first failure; later ones are logged only. It returns
// false so steps can `return r.fail(...)`.
func (r *run) fail(step string, kind Kind, format string, a ...any) bool {
	msg := fmt.Sprintf(format, a...)
	if r.ev.Failure == nil {
		r.ev.Failure = &Failure{Step: step, Kind: kind, Message: msg}
	} else {
		r.log.Debug("further failure", "step", step, "kind", kind, "msg", msg)
	}
	return false
}

// failErr records err at step with its classified kind.
func (r *run) failErr(step string, err error) bool {
	return r.fail(step, Classify(err), "%v", err)
}

// timed runs fn and records its duration under step.
func (r *run) timed(step string, fn func() bool) bool {
	s := r.o.Now()
	ok := fn()
	r.ev.Timings = append(r.ev.Timings, Timing{Step: step, Duration: r.o.Now().Sub(s)})
	return ok
}

func (r *run) finish() *Evidence {
	r.ev.Duration = r.o.Now().Sub(r.t0)
	return r.ev
}

// attestFunction is Function; with keep (FunctionSession) a successful
// attestation leaves its secure session open and returns it in Held.
func attestFunction(ctx context.Context, sys *pci.System, bdf pci.BDF, o *Options, keep bool) (*Evidence, *Held, error) {
	r := newRun(o)
	r.keep = keep
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()

	f, err := sys.Function(bdf)
	if err != nil {
		return nil, nil, err
	}
	ev := r.ev
	ev.Identity = Identity{
		BDF: bdf.String(), VendorID: f.VendorID, DeviceID: f.DeviceID,
		SubsystemVendorID: f.SubsystemVendorID, SubsystemID: f.SubsystemDeviceID,
		Class: f.Class, Revision: f.Revision, Driver: f.Driver, IOMMUGroup: f.IOMMUGroup,
	}
	defer r.finish()

	// Read-only first: identity and capabilities never need a write.
	cfg, closer, err := f.OpenConfigReadOnly()
	if err != nil {
		if errors.Is(err, pci.ErrDeviceRemoved) || errors.Is(err, pci.ErrNoDevice) {
			return nil, nil, err
		}
		r.failErr("config", err)
		return r.finish(), nil, nil
	}
	caps, err := pci.ExtCapabilities(cfg)
	if err == nil {
		if offs := pci.FindExt(caps, pci.ExtCapIDDSN); len(offs) > 0 {
			if dsn, ok, derr := f.DSN(cfg); derr == nil && ok {
				ev.Identity.DSN = &dsn
			} else if derr != nil {
				err = derr
			}
		}
	}
	closer.Close()
	if err != nil {
		r.failErr("capabilities", err)
		return r.finish(), nil, nil
	}
	offs := pci.FindExt(caps, pci.ExtCapIDDOE)
	if len(offs) == 0 {
		r.fail("doe-discovery", FailNoDOE, "the function has no DOE extended capability")
		return r.finish(), nil, nil
	}
	for _, off := range offs {
		ev.DOE = append(ev.DOE, Mailbox{Offset: off, Features: []string{}})
	}
	var conn *target.Conn
	r.timed("doe-discovery", func() bool {
		conn, err = (&target.PCI{System: sys, BDF: bdf, DOE: r.o.DOE}).Open(ctx)
		return err == nil
	})
	if err != nil {
		var oe *target.OpenError
		switch {
		case errors.As(err, &oe) && oe.Step == target.StepPolicy:
			r.fail("doe-discovery", blockedKind(err), "%v", err)
		case errors.As(err, &oe) && oe.Step == target.StepDOE:
			r.failErr("doe-discovery", err)
		default:
			r.failErr("config", err)
		}
		return r.finish(), nil, nil
	}
	defer func() {
		if r.held == nil {
			conn.Close()
		}
	}()
	for _, mb := range conn.Mailboxes {
		if mb.Err != nil {
			r.log.Debug("discovery failed", "bdf", bdf.String(), "offset", mb.Offset(), "err", mb.Err)
			continue
		}
		names := make([]string, 0, len(mb.Features))
		for _, ft := range mb.Features {
			names = append(names, ft.Name())
		}
		for i := range ev.DOE {
			if ev.DOE[i].Offset == mb.Offset() {
				ev.DOE[i].Features = names
			}
		}
	}
	if conn.CMA == nil {
		if conn.DiscoveryErr != nil {
			// A mailbox we could not list might be the CMA one: never
			// conclude "no CMA" from a failed discovery.
			r.failErr("doe-discovery", conn.DiscoveryErr)
		} else {
			r.fail("doe-discovery", FailNoCMA, "no DOE mailbox offers CMA-SPDM (features: %s)", featureList(ev.DOE))
		}
		return r.finish(), nil, nil
	}
	ev.HasCMA = true
	var sec spdm.Transport
	if conn.Secured != nil {
		sec = conn.Secured
	}
	r.tdi = bdf
	r.spdm(ctx, conn.CMA, sec)
	if r.held != nil && ev.Failure != nil {
		// A failure recorded after the session was kept (the deadline).
		if err := r.held.End(ctx); err != nil {
			r.log.Debug("END_SESSION", "err", err)
		}
		r.held = nil
	}
	if r.held != nil {
		// The mailbox stays open for the session: Held.Close closes it.
		return r.finish(), &Held{Session: r.held, close: conn.Close}, nil
	}
	return r.finish(), nil, nil
}

func featureList(mbs []Mailbox) string {
	var all []string
	for _, m := range mbs {
		all = append(all, m.Features...)
	}
	if len(all) == 0 {
		return "none"
	}
	return strings.Join(all, ", ")
}

func attestTransport(ctx context.Context, t spdm.Transport, id Identity, o *Options) (*Evidence, error) {
	if t == nil {
		return nil, errors.New("attest: nil transport")
	}
	r := newRun(o)
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	r.ev.Identity = id
	r.ev.HasCMA = true // the transport is the CMA-SPDM channel itself
	r.tdi = r.o.TDISPInterface
	r.spdm(ctx, t, r.o.SecuredTransport)
	// Identity from the leaf's CMA SAN when the caller gave none, and only
	// from a leaf that verified to an anchor: an unverified leaf is anyone's
	// claim, and the identity chooses the policy rule.
	if id.VendorID == 0 && id.DeviceID == 0 {
		if c := r.ev.usedChain(); c != nil && c.Verified && c.CMASAN != nil {
			s := c.CMASAN
			r.ev.Identity.VendorID, r.ev.Identity.DeviceID = s.VendorID, s.DeviceID
			r.ev.Identity.Class, r.ev.Identity.Revision = s.Class, s.Revision
			if s.SubsystemVendorID != nil {
				r.ev.Identity.SubsystemVendorID = *s.SubsystemVendorID
			}
			if s.SubsystemID != nil {
				r.ev.Identity.SubsystemID = *s.SubsystemID
			}
			r.ev.Identity.DSN = s.DSN
			r.ev.Identity.FromCMASAN = true
		}
	}
	return r.finish(), nil
}

// usedChain is the chain of the slot the signatures were checked with.
func (e *Evidence) usedChain() *ChainState {
	for i := range e.Chains {
		if e.Chains[i].Slot == e.Bundle.Slot {
			return &e.Chains[i]
		}
	}
	return nil
}

// spdm runs the SPDM flow over t and fills the evidence. Every problem is
// recorded as a Failure.
func (r *run) spdm(ctx context.Context, t, sec spdm.Transport) {
	ev := r.ev
	ro, err := r.requesterOptions()
	if err != nil {
		r.fail("version", FailProtocol, "%v", err)
		return
	}
	req := spdm.NewRequester(t, ro)
	defer func() {
		st := req.Stats()
		ev.RoundTrips, ev.BytesSent, ev.BytesRecv = st.RoundTrips, st.BytesSent, st.BytesRecv
		if ctx.Err() != nil && ev.Failure == nil {
			r.failErr("spdm", ctx.Err())
		}
	}()
	neg, ok := r.negotiate(ctx, req)
	if !ok {
		return
	}
	var slot uint8
	if r.o.ResponderPublicKey != nil {
		slot, ok = r.provisionedKey()
	} else {
		slot, ok = r.certificates(ctx, req)
	}
	if !ok {
		return
	}
	if neg.Caps&spdm.CapChal != 0 && !r.challenge(ctx, req, neg, slot) {
		return
	}

	measure := req.Measurements
	if r.o.Session || r.o.TDISP {
		ss := r.session(ctx, req, sec, slot)
		if ss == nil {
			return
		}
		defer func() {
			if r.keep && ev.Failure == nil && ss.Err() == nil {
				r.held = ss // FunctionSession: the caller ends it
				return
			}
			if err := ss.End(ctx); err != nil {
				r.log.Debug("END_SESSION", "err", err)
			}
		}()
		measure = ss.Measurements
		if r.o.TDISP && !r.tdisp(ctx, ss) {
			return
		}
	}
	if neg.Caps&spdm.CapMeasMask != 0 {
		r.measurements(ctx, req, measure, neg, slot)
	}
}

// negotiate runs VCA and records version, capabilities and algorithms.
// A responder without CERT_CAP cannot prove an identity: a failure.
func (r *run) negotiate(ctx context.Context, req *spdm.Requester) (spdm.Negotiated, bool) {
	ev := r.ev
	var neg spdm.Negotiated
	var err error
	if !r.timed("version", func() bool {
		neg, err = req.Negotiate(ctx)
		return err == nil || r.failErr("version", err)
	}) {
		return neg, false
	}
	ev.Version = neg.Version.String()
	ev.Capabilities = spdm.CapabilityNames(neg.Caps)
	ev.Algorithms = Algorithms{
		BaseAsym: AsymName(neg.BaseAsym), BaseHash: neg.BaseHash.String(),
		MeasurementHash: measHashName(neg.MeasHash),
	}
	if neg.DHE != 0 {
		ev.Algorithms.DHE = neg.DHE.String()
	}
	if neg.AEAD != 0 {
		ev.Algorithms.AEAD = neg.AEAD.String()
	}
	if r.o.ResponderPublicKey != nil {
		if neg.Caps&spdm.CapPubKeyID == 0 {
			return neg, r.fail("digests", FailProtocol, "a provisioned public key was given but the responder does not advertise PUB_KEY_ID_CAP")
		}
		return neg, true
	}
	if neg.Caps&spdm.CapCert == 0 {
		return neg, r.fail("digests", FailProtocol, "the responder does not advertise CERT_CAP: it cannot prove an identity")
	}
	return neg, true
}

// provisionedKey stands in for certificates when Options.ResponderPublicKey
// is set: SlotID 0xFF, and the bundle keeps the DER SubjectPublicKeyInfo,
// whose hash is what the transcripts carry instead of a chain's.
func (r *run) provisionedKey() (uint8, bool) {
	der, err := x509.MarshalPKIXPublicKey(r.o.ResponderPublicKey)
	if err != nil {
		return 0, r.fail("certificate", FailProtocol, "provisioned public key: %v", err)
	}
	r.ev.Bundle.Slot = spdm.SlotProvisioned
	r.ev.Bundle.CertChainBuffer = der
	return spdm.SlotProvisioned, true
}

// certificates reads DIGESTS and every provisioned slot's chain, verifies
// each against the anchors, and picks the slot whose key signs: requested,
// or the lowest verified, or the lowest provisioned (its chain failure is
// then the verdict). false: attestation stops.
func (r *run) certificates(ctx context.Context, req *spdm.Requester) (uint8, bool) {
	ev := r.ev
	var digs *spdm.Digests
	var err error
	if !r.timed("digests", func() bool {
		digs, err = req.Digests(ctx)
		return err == nil || r.failErr("digests", err)
	}) {
		return 0, false
	}
	slots := digs.Slots()
	if len(slots) == 0 {
		return 0, r.fail("digests", FailProtocol, "the responder has no provisioned certificate slot")
	}
	reports := map[uint8]*spdm.ChainReport{}
	chains := map[uint8]*spdm.CertChain{}
	if !r.timed("certificate", func() bool {
		for _, s := range slots {
			cc, err := req.Certificate(ctx, s)
			if err != nil {
				cs := ChainState{Slot: s, Digest: hex.EncodeToString(digs.Digests[s]), Error: err.Error(),
					ErrorKind: ChainErrorMalformed, Certificates: []CertInfo{}}
				ev.Chains = append(ev.Chains, cs)
				return r.failErr("certificate", err)
			}
			chains[s] = cc
			rep, verr := req.VerifyChain(s)
			reports[s] = rep
			ev.Chains = append(ev.Chains, r.chainState(s, cc, rep, verr))
		}
		return true
	}) {
		return 0, false
	}
	var slot uint8
	switch {
	case r.o.Slot != nil:
		slot = *r.o.Slot
		if chains[slot] == nil {
			return 0, r.fail("certificate", FailChain, "slot %d is not provisioned (provisioned: %v)", slot, slots)
		}
	default:
		slot = slots[0]
		for _, s := range slots {
			if reports[s] != nil && reports[s].Verified {
				slot = s
				break
			}
		}
	}
	ev.Bundle.Slot = slot
	ev.Bundle.CertChainBuffer = slices.Clone(chains[slot].Buffer)
	if cs := ev.usedChain(); cs != nil && !cs.Verified {
		r.fail("certificate", FailChain, "slot %d: %s", slot, cs.Error)
	}
	return slot, true
}

// challenge runs CHALLENGE with the slot's key (with a measurement summary
// when the responder measures) and keeps what an offline verifier needs.
// false: attestation stops.
func (r *run) challenge(ctx context.Context, req *spdm.Requester, neg spdm.Negotiated, slot uint8) bool {
	ev := r.ev
	summary := spdm.SummaryNone
	if neg.Caps&spdm.CapMeasMask != 0 {
		summary = spdm.SummaryAll
	}
	var ch *spdm.ChallengeResult
	if !r.timed("challenge", func() bool {
		var err error
		ch, err = req.Challenge(ctx, slot, summary)
		if ch != nil {
			ev.Bundle.ChallengeTranscript = slices.Clone(ch.Transcript)
			ev.Bundle.ChallengeSignature = slices.Clone(ch.Signature)
			ev.Bundle.ChallengeNonce = slices.Clone(ch.Nonce)
			ev.Bundle.ChallengeResponderNonce = slices.Clone(ch.ResponderNonce)
			ev.Bundle.MeasurementSummaryHash = slices.Clone(ch.SummaryHash)
		}
		return err == nil || r.failErr("challenge", err)
	}) {
		return false
	}
	ev.ChallengeVerified = ch.Verified
	if !ch.Verified {
		r.fail("challenge", FailSignature, "CHALLENGE_AUTH signature did not verify")
	}
	return true
}

// measurements reads every measurement block (signed when the responder
// signs), one by one when it refuses "all" outside a session.
func (r *run) measurements(ctx context.Context, req *spdm.Requester, measure func(context.Context, spdm.MeasOpts) (*spdm.MeasurementsResult, error),
	neg spdm.Negotiated, slot uint8) {
	ev := r.ev
	signed := neg.Caps&spdm.CapMeasMask == spdm.CapMeasSig
	r.timed("measurements", func() bool {
		mo := spdm.MeasOpts{Index: 0xFF, Signed: signed, Slot: slot}
		res, err := measure(ctx, mo)
		blocks := []spdm.MeasurementBlock(nil)
		if err != nil && needsOneByOne(err) && !(r.o.Session || r.o.TDISP) {
			r.log.Debug("GET_MEASUREMENTS all refused, reading one by one", "err", err)
			ev.MeasurementsOneByOne = true
			blocks, res, err = req.MeasurementsOneByOne(ctx, spdm.MeasOpts{Signed: signed, Slot: slot})
		} else if res != nil {
			blocks = res.Blocks
		}
		if err != nil {
			return r.failErr("measurements", err)
		}
		for _, b := range blocks {
			ev.Measurements = append(ev.Measurements, measBlock(b))
		}
		if res != nil {
			ev.Bundle.MeasurementTranscript = slices.Clone(res.Transcript)
			ev.Bundle.MeasurementSignature = slices.Clone(res.Signature)
			ev.Bundle.MeasurementNonce = slices.Clone(res.Nonce)
			ev.Bundle.MeasurementResponderNonce = slices.Clone(res.ResponderNonce)
			ev.MeasurementsSignatureVerified = signed && res.Signed && res.Verified
		}
		if signed && !ev.MeasurementsSignatureVerified {
			return r.fail("measurements", FailSignature, "the MEASUREMENTS signature did not verify")
		}
		return true
	})
}

// needsOneByOne: the device refused "all measurements" in a way that a
// device needing single-index requests does.
func needsOneByOne(err error) bool {
	var re *spdm.ResponderError
	if errors.As(err, &re) {
		switch re.Code {
		case spdm.ErrorCodeInvalidRequest, spdm.ErrorCodeUnsupportedRequest, spdm.ErrorCodeResponseTooLarge:
			return true
		}
	}
	return false
}

func measBlock(b spdm.MeasurementBlock) MeasurementBlock {
	if !b.DMTF {
		return MeasurementBlock{Index: b.Index, Spec: b.Spec, TypeName: "non-dmtf", Value: slices.Clone(b.Raw)}
	}
	return MeasurementBlock{Index: b.Index, Type: b.Type, TypeName: b.TypeName(), Raw: b.RawBitStream,
		Value: slices.Clone(b.Value), Spec: b.Spec}
}

func (r *run) chainState(slot uint8, cc *spdm.CertChain, rep *spdm.ChainReport, verr error) ChainState {
	cs := ChainState{Slot: slot, Digest: hex.EncodeToString(cc.Digest), Certificates: []CertInfo{}}
	for _, der := range cc.Certs {
		cs.Chain = append(cs.Chain, slices.Clone(der))
	}
	var certs []*x509.Certificate
	if rep != nil {
		certs = rep.Certs
		cs.Verified = rep.Verified && verr == nil
		if len(rep.AnchorSHA256) > 0 {
			cs.AnchorSHA256 = hex.EncodeToString(rep.AnchorSHA256)
		}
		cs.DeviceInfo = rep.DeviceInfo
		if rep.CMASAN != nil {
			cs.CMASAN = r.cmaSAN(rep.CMASAN)
		} else if rep.CMASANError != nil {
			cs.CMASANError = rep.CMASANError.Error()
		}
	}
	for _, c := range certs {
		sum := sha256.Sum256(c.Raw)
		cs.Certificates = append(cs.Certificates, CertInfo{Subject: c.Subject.String(), Issuer: c.Issuer.String(),
			NotAfter: c.NotAfter.UTC(), SHA256: hex.EncodeToString(sum[:])})
	}
	if !cs.Verified {
		if verr == nil {
			verr = errors.New("chain did not verify")
		}
		cs.Error = verr.Error()
		cs.ErrorKind = ChainErrorMalformed
		var ce *spdm.ChainError
		if errors.As(verr, &ce) && ce.Kind != "" {
			cs.ErrorKind = ce.Kind
		} else if rep != nil && rep.Err != nil && rep.Err.Kind != "" {
			cs.ErrorKind = rep.Err.Kind
		}
		if len(r.o.Roots) == 0 {
			cs.Error = "no trust anchor given: " + cs.Error
		}
	}
	return cs
}

func (r *run) cmaSAN(s *spdm.CMASAN) *CMASAN {
	out := &CMASAN{Raw: s.Raw, VendorID: s.VendorID, DeviceID: s.DeviceID, Class: s.Class, Revision: s.Revision,
		SubsystemVendorID: s.SubsystemVendorID, SubsystemID: s.SubsystemID, DSN: s.DSN}
	id := r.ev.Identity
	if id.VendorID == 0 && id.DeviceID == 0 {
		return out // real IDs unknown: nothing to compare
	}
	// A PCI function's identity is fully known from sysfs; an operator's
	// --pci-id for a socket device gives vendor and device only, so fields
	// it leaves zero are not compared there.
	full := id.BDF != ""
	m := s.VendorID == id.VendorID && s.DeviceID == id.DeviceID
	if full || id.Class != 0 || id.Revision != 0 {
		m = m && s.Class == id.Class && s.Revision == id.Revision
	}
	if s.SubsystemVendorID != nil && (full || id.SubsystemVendorID != 0) {
		m = m && *s.SubsystemVendorID == id.SubsystemVendorID
	}
	if s.SubsystemID != nil && (full || id.SubsystemID != 0) {
		m = m && *s.SubsystemID == id.SubsystemID
	}
	if s.DSN != nil && (full || id.DSN != nil) {
		m = m && id.DSN != nil && *id.DSN == *s.DSN
	}
	out.MatchesIdentity = &m
	return out
}

// requesterOptions turns the floors into spdm.Options.
func (r *run) requesterOptions() (*spdm.Options, error) {
	ro := &spdm.Options{Rand: r.o.Rand, Now: r.o.Now, Roots: r.o.Roots, Logger: r.log, ChainCache: r.o.ChainCache,
		ResponderPublicKey: r.o.ResponderPublicKey}
	if r.o.Session || r.o.TDISP {
		spdm.EnableSessions(ro, false)
	}
	if r.o.MinVersion != "" {
		v, err := ParseVersion(r.o.MinVersion)
		if err != nil {
			return nil, err
		}
		ro.MinVersion = v
	}
	for _, n := range r.o.AsymAlgos {
		a, err := ParseAsym(n)
		if err != nil {
			return nil, err
		}
		ro.AsymAlgos |= a
	}
	for _, n := range r.o.HashAlgos {
		h, err := ParseHash(n)
		if err != nil {
			return nil, err
		}
		ro.HashAlgos |= h
	}
	if r.o.ResponderPublicKey != nil {
		// Offer only what the provisioned key signs with, so that the
		// responder selects an algorithm it can be verified with.
		ka := spdm.AsymForPublicKey(r.o.ResponderPublicKey)
		if ka == 0 {
			return nil, fmt.Errorf("provisioned public key of type %T is not supported", r.o.ResponderPublicKey)
		}
		if ro.AsymAlgos == 0 {
			ro.AsymAlgos = ka
		} else if ro.AsymAlgos &= ka; ro.AsymAlgos == 0 {
			return nil, errors.New("the provisioned public key signs with none of the allowed algorithms")
		}
	}
	return ro, nil
}

package emu

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/doe/socket"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// DefaultIdentity is the identity of the software function when Config
// leaves it zero: QEMU's NVMe controller IDs, with a serial number.
var DefaultIdentity = Identity{
	Vendor: 0x1b36, Device: 0x0010, Class: 0x010802, Revision: 0x02,
	SubVendor: 0x1af4, SubDevice: 0x1100, DSN: 0x00c0ffee00001234,
}

// Config describes a software device. Zero values pick defaults.
type Config struct {
	// BDF is where the function pretends to live (for sysfs fixtures).
	BDF pci.BDF
	// Identity is the config-space identity (and the CMA SAN); zero = DefaultIdentity.
	Identity Identity
	// Profile names the personality ("good", "tampered", a fault name); "" = "good".
	Profile string
	// Versions offered in VERSION; nil = 1.0–1.3.
	Versions []spdm.Version
	// Algorithms the device signs with; one chain is built per key type they
	// need. 0 = every algorithm the package can sign with.
	Algorithms spdm.AsymAlgo
	// Hash and MeasHash restrict the base and measurement hash (0 = defaults
	// of spdm.ResponderConfig).
	Hash     spdm.HashAlgo
	MeasHash spdm.MeasHashAlgo
	// Slots is the number of provisioned certificate slots (0..Slots-1),
	// 1..8; 0 = 1. Slot n > 0 holds a reissued leaf of the slot-0 chain.
	Slots int
	// Faults are added to the profile's.
	Faults []Fault
	// Measurements, if non-nil, replace the profile's measurement set (a
	// low SVN, an active debug mode, ...).
	Measurements []Measurement
	// Latency delays every response: Data Object Ready comes this long after
	// Go on the DOE model, and the socket handler sleeps as long.
	Latency time.Duration
	// DataTransferSize and MaxSPDMmsgSize of the responder (1.2+); 0 = defaults.
	DataTransferSize, MaxSPDMmsgSize uint32
	// Session configures secure sessions and the TDISP interface (session.go).
	Session SessionConfig
	// VendorDefined answers VENDOR_DEFINED_REQUEST; nil = TDISP inside a
	// secure session (session.go).
	VendorDefined func(ctx context.Context, standardID uint16, vendorID, payload []byte) ([]byte, error)
	// Now is the clock for certificate validity; nil = time.Now.
	Now func() time.Time
	// FreshKeys generates new keys instead of the published test keys.
	FreshKeys bool
	// PKI, when set, replaces the generated chains with operator-supplied
	// keys and chains (LoadPKIDir, LoadKeyChain); Slots then comes from it,
	// and Algorithms (0 = all its keys sign) selects among its key types.
	// Faults that need a generated chain (expired-leaf, wrong-root,
	// san-mismatch, no-san) are refused with it.
	PKI *PKI
	// PublicKeyOnly presents the slot-0 keys as pre-provisioned public keys
	// (PUB_KEY_ID_CAP, SlotID 0xFF) instead of certificate chains; see
	// spdm.ResponderConfig.PublicKeyOnly.
	PublicKeyOnly bool
	// MultiKey is the MULTI_KEY_CAP the device advertises at SPDM 1.3
	// (spdm.MultiKeyOnly or spdm.MultiKeyNegotiated; 0 = none): DIGESTS then
	// names each slot's key pair and what it may sign. Not with PublicKeyOnly.
	MultiKey spdm.MultiKeyCap
	// Rand feeds the responder's nonces and signatures; nil = crypto/rand.
	Rand io.Reader
	// Logger receives debug records; nil = discard.
	Logger *slog.Logger
}

// Device is a whole emulated PCIe function: a 4 KiB config space
// (pci.ConfigSpace) with a DOE mailbox (doe.Model) whose CMA feature is
// served by an SPDM responder. It is safe for concurrent use.
type Device struct {
	cfg       Config
	profile   Profile
	faults    map[Fault]bool
	chains    []*Chain   // slot 0
	slots     [][]*Chain // all slots
	responder *spdm.Responder
	model     *doe.Model
	config    *ConfigSpace
	tdi       *tdiState
	bar0      atomic.Uint64

	mu       sync.Mutex
	measGen  int
	requests int
}

// asymKeyTypes maps signature algorithms to the key type that signs them.
var asymKeyTypes = []struct {
	asym spdm.AsymAlgo
	key  KeyType
}{
	{spdm.AsymECDSAP256, KeyECDSAP256},
	{spdm.AsymECDSAP384, KeyECDSAP384},
	{spdm.AsymECDSAP521, KeyECDSAP521},
	{spdm.AsymRSASSA2048 | spdm.AsymRSAPSS2048, KeyRSA2048},
	{spdm.AsymRSASSA3072 | spdm.AsymRSAPSS3072, KeyRSA3072},
	{spdm.AsymRSASSA4096 | spdm.AsymRSAPSS4096, KeyRSA4096},
	{spdm.AsymEd25519, KeyEd25519},
}

// AllAlgorithms is every signature algorithm the software device can use.
const AllAlgorithms = spdm.AsymECDSAP256 | spdm.AsymECDSAP384 | spdm.AsymECDSAP521 |
	spdm.AsymRSASSA2048 | spdm.AsymRSAPSS2048 | spdm.AsymRSASSA3072 | spdm.AsymRSAPSS3072 |
	spdm.AsymRSASSA4096 | spdm.AsymRSAPSS4096 | spdm.AsymEd25519

// New builds a software device: its certificate chains (one per key type
// its algorithms need), measurements, responder, DOE model and config space.
func New(cfg Config) (*Device, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	prof, err := LookupProfile(cfg.Profile)
	if err != nil {
		return nil, err
	}
	d := &Device{cfg: cfg, profile: prof, faults: map[Fault]bool{}}
	if err := d.setFaults(); err != nil {
		return nil, err
	}
	keys, err := d.responderKeys()
	if err != nil {
		return nil, err
	}
	sc, err := d.sessionConfig()
	if err != nil {
		return nil, err
	}
	d.responder = spdm.NewResponder(spdm.ResponderConfig{
		Versions: cfg.Versions, Keys: keys, PublicKeyOnly: cfg.PublicKeyOnly, MultiKey: cfg.MultiKey, Asym: cfg.Algorithms, Hash: cfg.Hash, MeasHash: cfg.MeasHash,
		Measurements: d.measurements, DataTransferSize: cfg.DataTransferSize, MaxSPDMmsgSize: cfg.MaxSPDMmsgSize,
		VendorDefined: d.vendorDefined, Faults: d.responderFaults(), Rand: cfg.Rand, Logger: cfg.Logger, Session: sc,
	})
	d.model = doe.NewModel(d.Features(), d.handle)
	if cfg.Latency > 0 {
		d.model.SetFault(doe.Fault{Latency: cfg.Latency})
	}
	d.config = NewConfigSpace(cfg.Identity, d.model)
	d.config.onLockedWrite = d.lockedConfigWrite
	return d, nil
}

// withDefaults fills in the defaults (identity, profile "good", every
// algorithm, one slot, time.Now) and refuses a configuration the device
// cannot serve.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Identity == (Identity{}) {
		cfg.Identity = DefaultIdentity
	}
	if cfg.Profile == "" {
		cfg.Profile = "good"
	}
	if cfg.Algorithms == 0 {
		cfg.Algorithms = AllAlgorithms
	}
	if cfg.Algorithms&^AllAlgorithms != 0 {
		return cfg, fmt.Errorf("emu: cannot sign with %s", cfg.Algorithms&^AllAlgorithms)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Slots == 0 {
		cfg.Slots = 1
	}
	if cfg.Slots < 1 || cfg.Slots > 8 {
		return cfg, fmt.Errorf("emu: %d certificate slots (want 1..8)", cfg.Slots)
	}
	if cfg.MultiKey > spdm.MultiKeyNegotiated || (cfg.MultiKey != 0 && cfg.PublicKeyOnly) {
		// DSP0274 1.3.0: MULTI_KEY_CAP is reserved 11b, and excludes PUB_KEY_ID_CAP.
		return cfg, fmt.Errorf("emu: MULTI_KEY_CAP %d with PublicKeyOnly %v", cfg.MultiKey, cfg.PublicKeyOnly)
	}
	if cfg.Measurements != nil {
		cfg.Measurements = cloneMeasurements(cfg.Measurements) // the caller may reuse its slice
	}
	return cfg, nil
}

// setFaults enables the profile's faults and the configured ones.
func (d *Device) setFaults() error {
	for _, f := range append(slices.Clone(d.profile.Faults), d.cfg.Faults...) {
		if _, ok := faultNames[f]; !ok {
			return fmt.Errorf("emu: unknown fault %d", int(f))
		}
		d.faults[f] = true
	}
	return nil
}

// responderKeys builds the device's chains (operator-supplied, or one
// generated chain per key type its algorithms need), reissued into every
// further slot, and returns them as the responder's keys.
func (d *Device) responderKeys() ([]spdm.ResponderKey, error) {
	cfg := d.cfg
	opts := ChainOptions{Identity: cfg.Identity, Now: cfg.Now(), FreshKeys: cfg.FreshKeys,
		ExpiredLeaf: d.faults[FaultExpiredLeaf], WrongRoot: d.faults[FaultWrongRoot],
		SANMismatch: d.faults[FaultSANMismatch], NoSAN: d.faults[FaultNoSAN]}
	var keys []spdm.ResponderKey
	if cfg.PKI != nil {
		var err error
		if keys, err = d.operatorKeys(opts); err != nil {
			return nil, err
		}
	}
	for _, ak := range asymKeyTypes {
		if cfg.PKI != nil {
			break
		}
		if cfg.Algorithms&ak.asym == 0 {
			continue
		}
		c, err := NewChain(ak.key, opts)
		if err != nil {
			return nil, err
		}
		d.chains = append(d.chains, c)
		keys = append(keys, spdm.ResponderKey{Asym: ak.asym & cfg.Algorithms, Chain: c.DER(), Signer: c.LeafKey})
	}
	if cfg.PKI == nil {
		d.slots = [][]*Chain{d.chains}
	}
	for s := len(d.slots); s < cfg.Slots; s++ {
		var sc []*Chain
		for i, c := range d.chains {
			rc, err := c.Reissue()
			if err != nil {
				return nil, err
			}
			sc = append(sc, rc)
			keys = append(keys, spdm.ResponderKey{Slot: uint8(s), Asym: keys[i].Asym, Chain: rc.DER(), Signer: rc.LeafKey})
		}
		d.slots = append(d.slots, sc)
	}
	return keys, nil
}

// responderFaults are the faults the SPDM responder itself plays.
func (d *Device) responderFaults() spdm.ResponderFaults {
	rf := spdm.ResponderFaults{
		BadSignature:       d.faults[FaultBadSignature],
		WrongNonce:         d.faults[FaultWrongNonce],
		WrongCertChainHash: d.faults[FaultWrongCertChainHash],
	}
	switch {
	case d.faults[FaultBusyStorm]:
		rf.Busy = -1
	case d.faults[FaultBusyOnce]:
		rf.Busy = 1
	}
	switch {
	case d.faults[FaultNotReadyForever]:
		rf.NotReady = -1
	case d.faults[FaultNotReadyOnce]:
		rf.NotReady = 1
	}
	return rf
}

// sessionConfig is the responder's secure-session configuration (zero when
// sessions are disabled); it creates the TDI unless TDISP is off.
func (d *Device) sessionConfig() (spdm.ResponderSessionConfig, error) {
	cs := d.cfg.Session
	if cs.Disabled {
		return spdm.ResponderSessionConfig{}, nil
	}
	sc := spdm.ResponderSessionConfig{DHE: cs.DHE, AEAD: cs.AEAD, HandshakeInClear: cs.HandshakeInClear,
		HeartbeatPeriod: cs.HeartbeatPeriod, NoHeartbeat: cs.NoHeartbeat, NoKeyUpdate: cs.NoKeyUpdate,
		Ended: d.sessionEnded,
		Faults: spdm.ResponderSessionFaults{BadVerifyData: d.faults[FaultBadVerifyData], BadTag: d.faults[FaultBadTag],
			WrongSessionID: d.faults[FaultWrongSessionID], KeyUpdateMismatch: d.faults[FaultKeyUpdateMismatch]}}
	if sc.DHE == 0 {
		sc.DHE = spdm.DHESECP256R1 | spdm.DHESECP384R1
	}
	switch {
	case sc.NoHeartbeat:
		sc.HeartbeatPeriod = 0
	case sc.HeartbeatPeriod == 0:
		sc.HeartbeatPeriod = DefaultHeartbeatPeriod
	}
	if !cs.NoTDISP {
		var err error
		if d.tdi, err = d.newTDI(); err != nil {
			return sc, err
		}
	}
	return sc, nil
}

// measurements is the responder's measurement source.
func (d *Device) measurements() []spdm.ResponderMeasurement {
	ms := GoodMeasurements()
	if d.profile.Tampered {
		ms = TamperedMeasurements()
	}
	if d.cfg.Measurements != nil {
		ms = cloneMeasurements(d.cfg.Measurements)
	}
	if d.faults[FaultChangingMeasurements] {
		d.mu.Lock()
		d.measGen++
		gen := d.measGen
		d.mu.Unlock()
		for i := range ms {
			if ms[i].Index == 2 {
				ms[i].Value = fmt.Appendf(ms[i].Value, " (run %d)", gen)
			}
		}
	}
	out := make([]spdm.ResponderMeasurement, len(ms))
	for i, m := range ms {
		out[i] = spdm.ResponderMeasurement{Index: m.Index, Type: m.Type, Raw: m.Raw, Value: m.Value}
	}
	return out
}

// ErrUnsupportedFeature is returned (and turns into the DOE Error bit) for
// objects of a feature the device does not serve.
var ErrUnsupportedFeature = errors.New("emu: unsupported DOE feature")

// handle serves one DOE object for the model (synchronously, no latency).
func (d *Device) handle(f doe.Feature, req []byte) ([]byte, error) {
	return d.serve(context.Background(), f, req)
}

func (d *Device) serve(ctx context.Context, f doe.Feature, req []byte) ([]byte, error) {
	if f == doe.FeatureSecuredCMA && !d.cfg.Session.Disabled {
		d.mu.Lock()
		d.requests++
		d.mu.Unlock()
		return d.responder.RespondSecured(ctx, req)
	}
	if f != doe.FeatureCMA {
		return nil, fmt.Errorf("%w %s", ErrUnsupportedFeature, f)
	}
	d.mu.Lock()
	d.requests++
	d.mu.Unlock()
	rsp, err := d.responder.Respond(ctx, req)
	if err != nil {
		return nil, err
	}
	return d.mangle(req, rsp), nil
}

// mangle applies the message-level faults to a response.
func (d *Device) mangle(req, rsp []byte) []byte {
	if len(req) < 2 || len(rsp) < 2 {
		return rsp
	}
	code, rc := spdm.RequestCode(req[1]), spdm.ResponseCode(rsp[1])
	switch {
	case d.faults[FaultTruncated] && (rc == spdm.ResponseChallengeAuth || rc == spdm.ResponseMeasurements):
		return rsp[:max(4, len(rsp)-7)]
	case d.faults[FaultOversize] && rc == spdm.ResponseDigests:
		return append(slices.Clone(rsp), bytes.Repeat([]byte{0xA5}, 4096)...)
	case d.faults[FaultWrongResponseCode] && code == spdm.RequestGetDigests && rc == spdm.ResponseDigests:
		out := slices.Clone(rsp)
		out[1] = byte(spdm.ResponseCertificate)
		return out
	}
	return rsp
}

// Handler serves the device's DOE features over another transport (the
// spdm-socket server): it applies Config.Latency by sleeping.
func (d *Device) Handler() doe.Handler {
	return func(f doe.Feature, req []byte) ([]byte, error) {
		if d.cfg.Latency > 0 {
			time.Sleep(d.cfg.Latency)
		}
		return d.serve(context.Background(), f, req)
	}
}

// Features is the DOE feature list after Discovery: CMA-SPDM and (unless
// sessions are disabled) secured CMA-SPDM.
func (d *Device) Features() []doe.Feature {
	if d.cfg.Session.Disabled {
		return []doe.Feature{doe.FeatureCMA}
	}
	return []doe.Feature{doe.FeatureCMA, doe.FeatureSecuredCMA}
}

// ReadAt reads config space (pci.ConfigSpace).
func (d *Device) ReadAt(p []byte, off int64) (int, error) { return d.config.ReadAt(p, off) }

// WriteAt writes config space (pci.ConfigSpace).
func (d *Device) WriteAt(p []byte, off int64) (int, error) { return d.config.WriteAt(p, off) }

// ConfigSpace is the function's config space.
func (d *Device) ConfigSpace() *ConfigSpace { return d.config }

// Model is the DOE mailbox model behind the config space (for fault injection).
func (d *Device) Model() *doe.Model { return d.model }

// Responder is the SPDM responder behind the CMA feature.
func (d *Device) Responder() *spdm.Responder { return d.responder }

// BDF is the configured address.
func (d *Device) BDF() pci.BDF { return d.cfg.BDF }

// Identity is the function's identity.
func (d *Device) Identity() Identity { return d.cfg.Identity }

// Profile is the device's profile.
func (d *Device) Profile() Profile { return d.profile }

// Chains are the device's slot-0 certificate chains, one per key type.
func (d *Device) Chains() []*Chain { return slices.Clone(d.chains) }

// SlotChains are the chains of certificate slot n (nil if not provisioned).
func (d *Device) SlotChains(n int) []*Chain {
	if n < 0 || n >= len(d.slots) {
		return nil
	}
	return slices.Clone(d.slots[n])
}

// Anchors are the published root CAs (what a verifier should trust): one
// per distinct root over all slots.
func (d *Device) Anchors() []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(d.chains))
	for _, slot := range d.slots {
		for _, c := range slot {
			if !slices.ContainsFunc(out, func(a *x509.Certificate) bool { return a.Equal(c.Anchor) }) {
				out = append(out, c.Anchor)
			}
		}
	}
	return out
}

// PublicKeysPEM are the slot-0 leaf public keys (PEM "PUBLIC KEY",
// SubjectPublicKeyInfo), one per key type: with PublicKeyOnly, what a
// requester is provisioned with (attest --responder-public-key).
func (d *Device) PublicKeysPEM() ([]byte, error) {
	var b []byte
	for _, c := range d.chains {
		der, err := x509.MarshalPKIXPublicKey(c.LeafKey.Public())
		if err != nil {
			return nil, fmt.Errorf("emu: %s public key: %w", c.Type, err)
		}
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return b, nil
}

// Serve answers spdm-socket requesters on ln (socket.Server with d's
// features and handler) until ctx ends, which is the normal way to stop:
// nil. Any other end is an error.
func (d *Device) Serve(ctx context.Context, ln net.Listener, log *slog.Logger) error {
	err := (&socket.Server{Features: d.Features(), Handler: d.Handler(), Logger: log}).Serve(ctx, ln)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// AnchorsPEM is Anchors in PEM, one CERTIFICATE block per root.
func (d *Device) AnchorsPEM() []byte {
	var b []byte
	for _, a := range d.Anchors() {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Raw})...)
	}
	return b
}

// operatorKeys takes the device's chains from cfg.PKI: every slot, each
// chain whose key type signs one of cfg.Algorithms.
func (d *Device) operatorKeys(opts ChainOptions) ([]spdm.ResponderKey, error) {
	cfg := d.cfg
	if opts.ExpiredLeaf || opts.WrongRoot || opts.SANMismatch || opts.NoSAN {
		return nil, errors.New("emu: the expired-leaf, wrong-root, san-mismatch and no-san faults need generated chains, not --pki")
	}
	if cfg.Slots > 1 && cfg.Slots != len(cfg.PKI.Slots) {
		return nil, fmt.Errorf("emu: %d slots asked, the supplied PKI has %d", cfg.Slots, len(cfg.PKI.Slots))
	}
	var keys []spdm.ResponderKey
	for n, slot := range cfg.PKI.Slots {
		var kept []*Chain
		for _, c := range slot {
			asym := KeyTypeAlgorithms(c.Type) & cfg.Algorithms
			if asym == 0 {
				continue
			}
			kept = append(kept, c)
			keys = append(keys, spdm.ResponderKey{Slot: uint8(n), Asym: asym, Chain: c.DER(), Signer: c.LeafKey})
		}
		d.slots = append(d.slots, kept)
	}
	d.chains = d.slots[0]
	if len(d.chains) == 0 {
		return nil, fmt.Errorf("emu: no supplied key signs with %s", cfg.Algorithms)
	}
	return keys, nil
}

// Requests counts SPDM requests served so far.
func (d *Device) Requests() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests
}

// Reset drops the SPDM connection state, as a function-level reset would.
func (d *Device) Reset() { d.responder.Reset() }

// directTransport carries SPDM to the device's responder without the DOE
// registers, padding responses to DW as DOE does.
type directTransport struct{ d *Device }

// Exchange implements spdm.Transport.
func (t directTransport) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	if len(req)%4 != 0 {
		req = append(slices.Clone(req), make([]byte, 4-len(req)%4)...)
	}
	rsp, err := t.d.serve(ctx, doe.FeatureCMA, req)
	if err != nil {
		return nil, err
	}
	if len(rsp)%4 != 0 {
		rsp = append(rsp, make([]byte, 4-len(rsp)%4)...)
	}
	return rsp, nil
}

// DirectSecured returns an spdm.Transport to the device's secured-CMA
// feature that skips the DOE register model.
func (d *Device) DirectSecured() spdm.Transport { return directSecured{d} }

type directSecured struct{ d *Device }

// Exchange implements spdm.Transport.
func (t directSecured) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	return t.d.serve(ctx, doe.FeatureSecuredCMA, req)
}

// Direct returns an spdm.Transport to the device's CMA responder that
// skips the DOE register model (faults still apply; Latency does not).
func (d *Device) Direct() spdm.Transport { return directTransport{d} }

// FunctionID is the identity in the form spdm compares a CMA SAN with
// (spdm.CMASANFor, (*spdm.CMASAN).Matches).
func (id Identity) FunctionID() spdm.FunctionID {
	f := spdm.FunctionID{VendorID: id.Vendor, DeviceID: id.Device, Class: id.Class, Revision: id.Revision,
		SubsystemVendorID: &id.SubVendor, SubsystemID: &id.SubDevice}
	if id.DSN != 0 {
		dsn := id.DSN
		f.DSN = &dsn
	}
	return f
}

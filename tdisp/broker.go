package tdisp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// OwnedSession is what the Broker needs from a secure session. *spdm.Session
// implements it.
type OwnedSession interface {
	Session
	Heartbeat(ctx context.Context) error
	KeyUpdate(ctx context.Context, op spdm.KeyUpdateOp) error
	End(ctx context.Context) error
	// Remaining is how many records either direction can still carry
	// before a key update is mandatory.
	Remaining() uint64
	Info() spdm.SessionInfo
	// Err is non-nil once the session is dead or ended.
	Err() error
}

// OpenFunc establishes a fresh, authenticated secure session with the
// function at bdf (for DOE: mailbox, per-function lock, VCA, certificate,
// chain verification, KEY_EXCHANGE). release frees what the session holds
// (mailbox, lock) and is called after the session ended.
type OpenFunc func(ctx context.Context, bdf pci.BDF) (s OwnedSession, release func(), err error)

// BrokerConfig configures a Broker. Open and Journal are required.
type BrokerConfig struct {
	Open    OpenFunc
	Journal *Journal
	// KeyUpdateBelow: a KEY_UPDATE (UpdateAllKeys) is sent when Remaining
	// drops below this many records; 0 = 1<<32.
	KeyUpdateBelow uint64
	// KeyUpdateEvery also renews the keys after this long; 0 = never.
	KeyUpdateEvery time.Duration
	// IdleCheck is how often a session without a heartbeat period is
	// checked (key update, liveness); 0 = 1 minute.
	IdleCheck time.Duration
	// Timeout bounds each background exchange; 0 = 10 s.
	Timeout time.Duration
	// Lost is called (from the keeper goroutine) when a held session dies:
	// the TDI is then ERROR on the device and its VM must not keep using it.
	Lost   func(bdf pci.BDF, owner string, err error)
	Logger *slog.Logger
}

// Held describes one TDI the Broker holds.
type Held struct {
	BDF        pci.BDF
	Owner      string
	State      State // as tracked
	SessionID  uint32
	Heartbeats int
	KeyUpdates int
	Err        error     // the session died
	Since      time.Time // when it was locked
}

// Broker is the long-lived owner of TDIs and their secure sessions (one
// per TDI): a TDI stays bound to the session that locked it, so the Broker
// keeps each session alive with HEARTBEAT at half the negotiated period and
// KEY_UPDATE before the sequence numbers run out, records every lock/start
// in the Journal, and ends sessions cleanly on Stop. After a restart,
// Recover re-establishes a session with every journalled TDI no longer
// owned and stops it. All methods are safe for concurrent use; operations
// on one TDI are serialised.
type Broker struct {
	cfg BrokerConfig
	log *slog.Logger

	mu   sync.Mutex
	tdis map[pci.BDF]*owned
	wg   sync.WaitGroup
}

type owned struct {
	mu      sync.Mutex
	bdf     pci.BDF
	owner   string
	sess    OwnedSession
	release func()
	client  *Client
	nonce   [NonceSize]byte
	hb, ku  int
	err     error
	stop    chan struct{}
	lastKU  time.Time
	since   time.Time // locked at
}

// Errors of the Broker.
var (
	ErrNotHeld     = errors.New("tdisp: broker: TDI not held")
	ErrAlreadyHeld = errors.New("tdisp: broker: TDI already held")
)

// NewBroker returns a Broker.
func NewBroker(cfg BrokerConfig) (*Broker, error) {
	if cfg.Open == nil || cfg.Journal == nil {
		return nil, errors.New("tdisp: broker: Open and Journal are required")
	}
	if cfg.KeyUpdateBelow == 0 {
		cfg.KeyUpdateBelow = 1 << 32
	}
	if cfg.IdleCheck == 0 {
		cfg.IdleCheck = time.Minute
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Broker{cfg: cfg, log: log, tdis: map[pci.BDF]*owned{}}, nil
}

func (b *Broker) record(o *owned, st State) error {
	id, _ := InterfaceIDFor(o.bdf)
	return b.cfg.Journal.Record(JournalEntry{BDF: o.bdf.String(), Interface: id, Owner: o.owner, State: st, SessionID: o.sess.Info().ID})
}

// Lock opens a session with bdf, locks its TDI for owner and reads the
// report. The session is then kept alive until Stop (or Close). On any
// failure after LOCK the TDI is stopped again and the session ended.
func (b *Broker) Lock(ctx context.Context, bdf pci.BDF, owner string, p LockParams) (*InterfaceReport, []byte, error) {
	return b.lock(ctx, bdf, owner, p, nil, func() (OwnedSession, func(), error) {
		s, release, err := b.cfg.Open(ctx, bdf)
		if err != nil {
			return nil, nil, fmt.Errorf("tdisp: broker: session with %s: %w", bdf, err)
		}
		return s, release, nil
	})
}

// Adopt is Lock inside a session the caller already established with bdf
// (the one it attested the device in: attest.FunctionSession), so that the
// TDI is locked by the very session whose evidence the caller evaluates.
// The Broker owns s and release from the call on, whatever the outcome: on
// failure the session is ended and release called.
func (b *Broker) Adopt(ctx context.Context, bdf pci.BDF, owner string, s OwnedSession, release func(), p LockParams) (*InterfaceReport, []byte, error) {
	if s == nil || release == nil {
		if release != nil {
			release()
		}
		return nil, nil, errors.New("tdisp: broker: Adopt needs a session and its release")
	}
	abandon := func() {
		if s.Err() == nil {
			if err := s.End(ctx); err != nil {
				b.log.WarnContext(ctx, "tdisp broker: END_SESSION of a refused session", "bdf", bdf.String(), "err", err)
			}
		}
		release()
	}
	return b.lock(ctx, bdf, owner, p, abandon, func() (OwnedSession, func(), error) { return s, release, nil })
}

// lock reserves bdf, takes the session open gives, locks the TDI for owner
// and reads the report. abandon (nil: nothing to give up) frees an adopted
// session when bdf is refused before open.
func (b *Broker) lock(ctx context.Context, bdf pci.BDF, owner string, p LockParams, abandon func(), open func() (OwnedSession, func(), error)) (*InterfaceReport, []byte, error) {
	refuse := func(err error) (*InterfaceReport, []byte, error) {
		if abandon != nil {
			abandon()
		}
		return nil, nil, err
	}
	id, err := InterfaceIDFor(bdf)
	if err != nil {
		return refuse(err)
	}
	b.mu.Lock()
	if _, ok := b.tdis[bdf]; ok {
		b.mu.Unlock()
		return refuse(fmt.Errorf("%w: %s", ErrAlreadyHeld, bdf))
	}
	o := &owned{bdf: bdf, owner: owner, stop: make(chan struct{})}
	b.tdis[bdf] = o // reserve
	b.mu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	drop := func() {
		b.mu.Lock()
		delete(b.tdis, bdf)
		b.mu.Unlock()
	}
	s, release, err := open()
	if err != nil {
		drop()
		return nil, nil, err
	}
	o.sess, o.release, o.lastKU = s, release, time.Now()
	o.client = NewClient(s, id, &ClientOptions{Logger: b.log})
	fail := func(err error, locked bool) (*InterfaceReport, []byte, error) {
		if locked {
			if serr := o.client.Stop(ctx); serr != nil {
				b.log.WarnContext(ctx, "tdisp broker: STOP after a failed lock", "bdf", bdf.String(), "err", serr)
			} else {
				_ = b.cfg.Journal.Remove(bdf.String())
			}
		}
		b.end(ctx, o)
		drop()
		return nil, nil, err
	}
	if _, err := o.client.GetVersion(ctx); err != nil {
		return fail(err, false)
	}
	if st, err := o.client.State(ctx); err != nil || st != StateConfigUnlocked {
		if err == nil {
			err = &TransitionError{From: st, Request: MsgLockInterface}
		}
		return fail(err, false)
	}
	nonce, err := o.client.Lock(ctx, p)
	if err != nil {
		return fail(err, false)
	}
	o.nonce, o.since = nonce, time.Now()
	if err := b.record(o, StateConfigLocked); err != nil {
		return fail(err, true)
	}
	rep, raw, err := o.client.Report(ctx)
	if err != nil {
		return fail(err, true)
	}
	b.wg.Add(1)
	go b.keep(o)
	b.log.InfoContext(ctx, "tdisp broker: locked", "bdf", bdf.String(), "owner", owner, "session", fmt.Sprintf("%#08x", s.Info().ID))
	return rep, raw, nil
}

func (b *Broker) get(bdf pci.BDF) (*owned, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o := b.tdis[bdf]
	if o == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotHeld, bdf)
	}
	return o, nil
}

// Start moves the held TDI to RUN with the nonce LOCK returned.
func (b *Broker) Start(ctx context.Context, bdf pci.BDF) error {
	o, err := b.get(bdf)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	if err := o.client.Start(ctx, o.nonce); err != nil {
		return err
	}
	return b.record(o, StateRun)
}

// State asks the device for the held TDI's state.
func (b *Broker) State(ctx context.Context, bdf pci.BDF) (State, error) {
	o, err := b.get(bdf)
	if err != nil {
		return 0, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return 0, o.err
	}
	return o.client.State(ctx)
}

// Stop stops the TDI (CONFIG_UNLOCKED), ends its session, removes it from
// the journal and releases it. Stop of a TDI whose session died still ends
// the bookkeeping: the device has moved it to ERROR and the next owner's
// STOP (or Recover) unlocks it; the journal entry is kept for that.
func (b *Broker) Stop(ctx context.Context, bdf pci.BDF) error {
	o, err := b.get(bdf)
	if err != nil {
		return err
	}
	o.mu.Lock()
	var serr error
	if o.err == nil {
		if serr = o.client.Stop(ctx); serr == nil {
			serr = b.cfg.Journal.Remove(bdf.String())
		}
	} else {
		serr = o.err
	}
	b.end(ctx, o)
	o.mu.Unlock()
	b.mu.Lock()
	delete(b.tdis, bdf)
	b.mu.Unlock()
	return serr
}

// end stops the keeper and ends the session (o.mu held).
func (b *Broker) end(ctx context.Context, o *owned) {
	select {
	case <-o.stop:
	default:
		close(o.stop)
	}
	if o.sess != nil && o.sess.Err() == nil {
		if err := o.sess.End(ctx); err != nil {
			b.log.WarnContext(ctx, "tdisp broker: END_SESSION", "bdf", o.bdf.String(), "err", err)
		}
	}
	if o.release != nil {
		o.release()
		o.release = nil
	}
}

// Held lists the TDIs held, sorted by BDF.
func (b *Broker) Held() []Held {
	b.mu.Lock()
	os := make([]*owned, 0, len(b.tdis))
	for _, o := range b.tdis {
		os = append(os, o)
	}
	b.mu.Unlock()
	var out []Held
	for _, o := range os {
		o.mu.Lock()
		if o.client != nil {
			st, _ := o.client.Tracked()
			out = append(out, Held{BDF: o.bdf, Owner: o.owner, State: st, SessionID: o.sess.Info().ID, Heartbeats: o.hb, KeyUpdates: o.ku,
				Err: o.err, Since: o.since})
		}
		o.mu.Unlock()
	}
	slices.SortFunc(out, func(x, y Held) int { return pci.CompareBDF(x.BDF, y.BDF) })
	return out
}

// keep is the per-TDI keeper: HEARTBEAT at half the negotiated period
// (IdleCheck without one), KEY_UPDATE when the records or KeyUpdateEvery
// run out.
func (b *Broker) keep(o *owned) {
	defer b.wg.Done()
	every := b.cfg.IdleCheck
	if p := o.sess.Info().HeartbeatPeriod; p > 0 {
		every = p / 2
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
		if err := b.tick(o); err != nil {
			if b.cfg.Lost != nil {
				b.cfg.Lost(o.bdf, o.owner, err) // without o.mu: Lost may call Stop
			}
			return
		}
	}
}

// tick does one keep-alive round; an error when the session is dead.
func (b *Broker) tick(o *owned) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-o.stop:
		return nil
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	var err error
	info := o.sess.Info()
	if !info.CanKeyUpdate {
		if o.sess.Remaining() == 0 {
			err = errors.New("sequence numbers exhausted and KEY_UPDATE not negotiated")
		}
	} else if o.sess.Remaining() < b.cfg.KeyUpdateBelow || (b.cfg.KeyUpdateEvery > 0 && time.Since(o.lastKU) >= b.cfg.KeyUpdateEvery) {
		if err = o.sess.KeyUpdate(ctx, spdm.KeyUpdateAllKeys); err == nil {
			o.ku++
			o.lastKU = time.Now()
		}
	}
	if err == nil && info.CanHeartbeat {
		if err = o.sess.Heartbeat(ctx); err == nil {
			o.hb++
		}
	} else if err == nil {
		err = o.sess.Err() // no heartbeat negotiated: only notice a session already dead
	}
	if err == nil {
		return nil
	}
	o.err = fmt.Errorf("tdisp: broker: session of %s lost: %w", o.bdf, err)
	b.log.Error("tdisp broker: session lost; the TDI is in ERROR on the device", "bdf", o.bdf.String(), "owner", o.owner, "err", err)
	_ = b.record(o, StateError)
	return o.err
}

// RecoverResult is what Recover did with one journal entry.
type RecoverResult struct {
	Entry  JournalEntry
	Action string // "stopped", "kept" (still owned), "failed"
	State  State  // device-reported state before STOP
	Err    error
}

// Recover runs at start-up, before any Lock: the sessions of the previous
// run are gone, so every journalled TDI is locked to a dead session (the
// device has moved it to ERROR, or will). Entries whose owner owned() no
// longer claims are re-established, stopped and removed from the journal;
// entries still owned are kept (their owner must release them: TDISP cannot
// rebind a TDI to a new session without STOP and a new LOCK) and returned
// with Action "kept". A journal that cannot be read is an error: treat every
// TDI as possibly locked (fail closed).
func (b *Broker) Recover(ctx context.Context, ownedFn func(owner string) bool) ([]RecoverResult, error) {
	es, err := b.cfg.Journal.Entries()
	if err != nil {
		return nil, err
	}
	var out []RecoverResult
	var errs []error
	for _, e := range es {
		if ownedFn != nil && ownedFn(e.Owner) {
			out = append(out, RecoverResult{Entry: e, Action: "kept", State: e.State})
			continue
		}
		st, err := b.stopOrphan(ctx, e)
		r := RecoverResult{Entry: e, Action: "stopped", State: st, Err: err}
		if err != nil {
			r.Action = "failed"
			errs = append(errs, err)
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

func (b *Broker) stopOrphan(ctx context.Context, e JournalEntry) (State, error) {
	bdf, err := pci.ParseBDF(e.BDF)
	if err != nil {
		return 0, err
	}
	s, release, err := b.cfg.Open(ctx, bdf)
	if err != nil {
		return 0, fmt.Errorf("tdisp: recover %s: %w", e.BDF, err)
	}
	defer release()
	defer func() { _ = s.End(ctx) }()
	c := NewClient(s, e.Interface, &ClientOptions{Logger: b.log})
	if _, err := c.GetVersion(ctx); err != nil {
		return 0, fmt.Errorf("tdisp: recover %s: %w", e.BDF, err)
	}
	st, err := c.State(ctx)
	if err != nil {
		return 0, fmt.Errorf("tdisp: recover %s: %w", e.BDF, err)
	}
	if st != StateConfigUnlocked {
		if err := c.Stop(ctx); err != nil {
			return st, fmt.Errorf("tdisp: recover %s: STOP: %w", e.BDF, err)
		}
	}
	b.log.InfoContext(ctx, "tdisp broker: recovered orphan", "bdf", e.BDF, "owner", e.Owner, "was", st.String())
	return st, b.cfg.Journal.Remove(e.BDF)
}

// Close ends every held session (END_SESSION) and waits for the keepers.
// Journal entries stay: the TDIs are now bound to ended sessions (ERROR on
// the device) and the next Recover stops them. Call Stop first for a clean
// release.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	os := make([]*owned, 0, len(b.tdis))
	for _, o := range b.tdis {
		os = append(os, o)
	}
	b.tdis = map[pci.BDF]*owned{}
	b.mu.Unlock()
	for _, o := range os {
		o.mu.Lock()
		b.end(ctx, o)
		o.mu.Unlock()
	}
	b.wg.Wait()
	return nil
}

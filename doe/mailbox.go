package doe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vfio-gate/vfio-gate/pci"
)

// DOE capability registers, offsets from the capability (PCIe r6.0 §7.9.24,
// Linux PCI_DOE_*).
const (
	RegCap     uint16 = 0x04 // DOE Capabilities
	RegCtrl    uint16 = 0x08 // DOE Control
	RegStatus  uint16 = 0x0C // DOE Status
	RegWrite   uint16 = 0x10 // DOE Write Data Mailbox
	RegRead    uint16 = 0x14 // DOE Read Data Mailbox
	CapSize    uint16 = 0x18 // size of the register block
	CtrlAbort  uint32 = 1 << 0
	CtrlIntEn  uint32 = 1 << 1
	CtrlGo     uint32 = 1 << 31
	StatusBusy uint32 = 1 << 0
	StatusInt  uint32 = 1 << 1
	StatusErr  uint32 = 1 << 2
	StatusDOR  uint32 = 1 << 31 // Data Object Ready
)

// Defaults of Options.
const (
	DefaultTimeout = time.Second // PCIe r6.0 §6.30.2, Linux PCI_DOE_TIMEOUT
	DefaultPollMin = 2 * time.Microsecond
	DefaultPollMax = time.Millisecond
	DefaultSpin    = 2 * time.Millisecond
	// spinPollMax caps the poll interval while spinning, so a response is
	// noticed at most this late during the first Spin of a wait.
	spinPollMax = 32 * time.Microsecond
	// ctxCheckDW: how often (in DW) long transfers look at the context.
	ctxCheckDW = 1024
)

// Options tune a Mailbox. The zero value (or nil) gives the defaults.
type Options struct {
	// Timeout bounds each object, from the first register access to the
	// last DW read, and separately each abort. Default 1 s. The caller's
	// context may shorten it.
	Timeout time.Duration
	// MaxResponse caps the response payload in bytes; a longer header
	// Length is a *ProtocolError before anything is allocated. Default
	// (and maximum) MaxPayload.
	MaxResponse int
	// PollMin and PollMax bound the poll interval of Data Object Ready:
	// Status is read at once, then after PollMin, doubling up to PollMax.
	// Defaults 2 µs and 1 ms. PollMin == PollMax with Spin < 0 gives a
	// fixed interval (Linux doe.c polls every 7.8 ms).
	PollMin, PollMax time.Duration
	// Spin: during the first Spin of a wait, waits are done by yielding the
	// processor instead of sleeping, with the interval capped at 32 µs,
	// because OS timers are much coarser than DOE latencies (time.Sleep of
	// 2 µs often takes 50 µs to 1 ms). Default 2 ms; negative disables it.
	// Under testing/synctest spinning falls back to sleeping by itself.
	Spin time.Duration
	// Logger receives debug records (aborts, busy mailboxes). Nil discards.
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Timeout <= 0 {
		r.Timeout = DefaultTimeout
	}
	if r.MaxResponse <= 0 || r.MaxResponse > MaxPayload {
		r.MaxResponse = MaxPayload
	}
	if r.PollMin <= 0 {
		r.PollMin = DefaultPollMin
	}
	if r.PollMax <= 0 {
		r.PollMax = DefaultPollMax
	}
	r.PollMax = max(r.PollMax, r.PollMin)
	if r.Spin == 0 {
		r.Spin = DefaultSpin
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

// Stats counts a mailbox's activity since it was created.
type Stats struct {
	Reads     uint64 `json:"config_reads"`  // 4-byte config reads
	Writes    uint64 `json:"config_writes"` // 4-byte config writes
	Polls     uint64 `json:"polls"`         // Status reads while waiting for the device
	Exchanges uint64 `json:"exchanges"`     // objects exchanged successfully
	Failures  uint64 `json:"failures"`      // exchanges that returned an error
	Aborts    uint64 `json:"aborts"`        // aborts written
}

// Accesses is Reads + Writes.
func (s Stats) Accesses() uint64 { return s.Reads + s.Writes }

type counters struct {
	reads, writes, polls, exchanges, failures, aborts atomic.Uint64
}

// Mailbox is one DOE capability instance of a function. It is safe for
// concurrent use: exchanges are serialised by a mutex, one object at a time.
type Mailbox struct {
	cfg  pci.ConfigSpace
	off  uint16
	opts Options
	log  *slog.Logger

	mu sync.Mutex // held for a whole exchange or abort

	fmu        sync.Mutex
	features   []Feature
	discovered bool

	n counters
}

// New returns the mailbox whose DOE capability is at offset in cfg. Nothing
// is accessed until the first call.
func New(cfg pci.ConfigSpace, offset uint16, opts *Options) *Mailbox {
	o := opts.withDefaults()
	return &Mailbox{cfg: cfg, off: offset, opts: o, log: o.Logger.With("doe_offset", fmt.Sprintf("%#x", offset))}
}

// Find walks the extended capabilities of cfg and returns a mailbox for
// every DOE capability (ID 0x2E), in list order. ErrNoMailbox if there is
// none. If the capability list is malformed the mailboxes found before the
// damage are returned together with the error.
func Find(cfg pci.ConfigSpace, opts *Options) ([]*Mailbox, error) {
	caps, err := pci.ExtCapabilities(cfg)
	var mbs []*Mailbox
	for _, off := range pci.FindExt(caps, pci.ExtCapIDDOE) {
		mbs = append(mbs, New(cfg, off, opts))
	}
	if err != nil {
		return mbs, fmt.Errorf("doe: walking extended capabilities: %w", err)
	}
	if len(mbs) == 0 {
		return nil, ErrNoMailbox
	}
	return mbs, nil
}

// Offset returns the config-space offset of the DOE capability.
func (m *Mailbox) Offset() uint16 { return m.off }

// Stats returns the counters so far.
func (m *Mailbox) Stats() Stats {
	return Stats{
		Reads: m.n.reads.Load(), Writes: m.n.writes.Load(), Polls: m.n.polls.Load(),
		Exchanges: m.n.exchanges.Load(), Failures: m.n.failures.Load(), Aborts: m.n.aborts.Load(),
	}
}

// Discover lists the features of the mailbox (see the package function
// Discover) and caches them for Features and Supports.
func (m *Mailbox) Discover(ctx context.Context) ([]Feature, error) {
	fs, err := Discover(ctx, m)
	if err != nil {
		return nil, err
	}
	m.fmu.Lock()
	m.features, m.discovered = fs, true
	m.fmu.Unlock()
	return slices.Clone(fs), nil
}

// Features returns the features found by the last successful Discover, or
// nil if discovery has not succeeded yet.
func (m *Mailbox) Features() []Feature {
	m.fmu.Lock()
	defer m.fmu.Unlock()
	return slices.Clone(m.features)
}

// Supports reports whether the last successful Discover listed f.
func (m *Mailbox) Supports(f Feature) bool {
	m.fmu.Lock()
	defer m.fmu.Unlock()
	return slices.Contains(m.features, f)
}

// Exchanger returns an Exchanger bound to feature f of this mailbox.
func (m *Mailbox) Exchanger(f Feature) *Exchanger { return NewExchanger(m, f) }

func (m *Mailbox) read(reg uint16) (uint32, error) {
	m.n.reads.Add(1)
	return pci.ReadU32(m.cfg, int64(m.off)+int64(reg))
}

func (m *Mailbox) write(reg uint16, v uint32) error {
	m.n.writes.Add(1)
	return pci.WriteU32(m.cfg, int64(m.off)+int64(reg), v)
}

// Abort writes DOE Control Abort and waits, up to Options.Timeout (or ctx,
// if sooner), for the mailbox to be neither Busy nor in Error. It waits for
// a running exchange to end first.
func (m *Mailbox) Abort(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	return m.abort(ctx)
}

// abortAfter aborts with a fresh budget of Options.Timeout, detached from
// ctx's cancellation: the mailbox must be left clean even when the caller
// has given up.
func (m *Mailbox) abortAfter(ctx context.Context) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.Timeout)
	defer cancel()
	return m.abort(actx)
}

func (m *Mailbox) abort(ctx context.Context) error {
	m.n.aborts.Add(1)
	m.log.Debug("doe: aborting mailbox")
	if err := m.write(RegCtrl, CtrlAbort); err != nil {
		return err
	}
	st, err := m.waitFor(ctx, func(st uint32) bool { return st&(StatusBusy|StatusErr) == 0 })
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled) {
		switch {
		case st&StatusBusy != 0:
			return fmt.Errorf("%w (still Busy after abort: %w)", ErrMailboxBusy, err)
		case st&StatusErr != 0:
			return fmt.Errorf("%w (Error still set after abort: %w)", ErrMailboxError, err)
		}
	}
	return fmt.Errorf("doe: abort: %w", err)
}

// fail aborts the mailbox after cause and returns the error to report.
func (m *Mailbox) fail(ctx context.Context, cause error) error {
	if aerr := m.abortAfter(ctx); aerr != nil {
		return fmt.Errorf("%w; abort failed: %w", cause, aerr)
	}
	return fmt.Errorf("%w (%w)", cause, ErrAborted)
}

// Exchange sends req as one data object of feature f and returns the
// response payload, DW-padded (callers strip padding themselves, e.g. from
// SPDM message lengths). One object at a time per mailbox.
//
// Busy on entry: the mailbox is aborted once; if it stays Busy the result is
// ErrMailboxBusy. Error set by the device: abort, ErrMailboxError. No
// response within min(ctx, Options.Timeout): abort, ErrTimeout wrapping the
// context error. A malformed response (wrong vendor/type, length 0/short/
// over MaxResponse, more or fewer DW than announced, Data Object Ready
// dropped early): abort, *ProtocolError. Errors after which the mailbox
// was aborted also wrap ErrAborted.
func (m *Mailbox) Exchange(ctx context.Context, f Feature, req []byte) ([]byte, error) {
	if len(req) > MaxPayload {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(req))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	rsp, err := m.exchange(ctx, f, req)
	if err != nil {
		m.n.failures.Add(1)
		m.log.Debug("doe: exchange failed", "feature", f.Name(), "err", err)
		return nil, err
	}
	m.n.exchanges.Add(1)
	return rsp, nil
}

func (m *Mailbox) exchange(ctx context.Context, f Feature, req []byte) ([]byte, error) {
	if err := m.enter(ctx); err != nil {
		return nil, err
	}
	if err := m.send(ctx, f, req); err != nil {
		return nil, m.fail(ctx, err)
	}
	st, err := m.waitFor(ctx, func(st uint32) bool { return st&(StatusDOR|StatusErr) != 0 })
	if err != nil {
		return nil, m.fail(ctx, err)
	}
	if st&StatusErr != 0 {
		return nil, m.fail(ctx, ErrMailboxError)
	}
	rsp, err := m.receive(ctx, f)
	if err != nil {
		return nil, m.fail(ctx, err)
	}
	return rsp, nil
}

// enter checks that the mailbox is idle: Busy means another owner, so abort
// once and refuse if it stays Busy; a stale Error or response is aborted.
func (m *Mailbox) enter(ctx context.Context) error {
	st, err := m.read(RegStatus)
	if err != nil {
		return err
	}
	if st&(StatusBusy|StatusErr|StatusDOR) == 0 {
		return nil
	}
	if st&StatusBusy != 0 {
		m.log.Warn("doe: mailbox busy on entry: another entity may be using it; aborting once")
	}
	if err := m.abort(ctx); err != nil {
		if st&StatusBusy != 0 && !errors.Is(err, ErrMailboxBusy) {
			return fmt.Errorf("%w: %w", ErrMailboxBusy, err)
		}
		return err
	}
	return nil
}

// send writes the header and the DW-padded payload to the Write Data
// Mailbox, then sets Go.
func (m *Mailbox) send(ctx context.Context, f Feature, req []byte) error {
	n := payloadDWs(len(req))
	dw0, dw1 := headerDWs(f, n+2)
	if err := m.write(RegWrite, dw0); err != nil {
		return err
	}
	if err := m.write(RegWrite, dw1); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if i%ctxCheckDW == ctxCheckDW-1 && ctx.Err() != nil {
			return ctxErr(ctx)
		}
		var w [4]byte
		copy(w[:], req[4*i:])
		if err := m.write(RegWrite, uint32(w[0])|uint32(w[1])<<8|uint32(w[2])<<16|uint32(w[3])<<24); err != nil {
			return err
		}
	}
	return m.write(RegCtrl, CtrlGo)
}

// receive reads one response object: header, payload, with Data Object
// Ready checked before the last DW is popped and clear after it.
func (m *Mailbox) receive(ctx context.Context, f Feature) ([]byte, error) {
	var hdr [2]uint32
	for i := range hdr {
		v, err := m.read(RegRead)
		if err != nil {
			return nil, err
		}
		hdr[i] = v
		if i == 0 {
			if got := (Feature{Vendor: uint16(v), Type: uint8(v >> 16)}); got != f {
				return nil, protoErr("header", "response object is %s, request was %s", got.Name(), f.Name())
			}
		}
		if i == 1 {
			break // popped below, after the length check
		}
		if err := m.write(RegRead, 0); err != nil {
			return nil, err
		}
	}
	_, n, err := decodeHeader(hdr[0], hdr[1])
	if err != nil {
		return nil, err
	}
	if (n-2)*4 > m.opts.MaxResponse {
		return nil, protoErr("Length", "%d DW exceeds the %d-byte response limit", n, m.opts.MaxResponse)
	}
	rsp := make([]byte, 0, (n-2)*4)
	// DW index 1 (Length) is still unpopped; pop DW i-1 before reading DW i.
	for i := 1; i < n; i++ {
		if i > 1 {
			if i%ctxCheckDW == 0 && ctx.Err() != nil {
				return nil, ctxErr(ctx)
			}
			v, err := m.read(RegRead)
			if err != nil {
				return nil, err
			}
			rsp = append(rsp, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
		}
		if i == n-1 {
			st, err := m.read(RegStatus)
			if err != nil {
				return nil, err
			}
			if st&StatusDOR == 0 {
				return nil, protoErr("Data Object Ready", "cleared after %d of %d DW", i, n)
			}
		}
		if err := m.write(RegRead, 0); err != nil {
			return nil, err
		}
	}
	st, err := m.read(RegStatus)
	if err != nil {
		return nil, err
	}
	if st&StatusErr != 0 {
		return nil, ErrMailboxError
	}
	if st&StatusDOR != 0 {
		return nil, protoErr("Length", "device has more data than the %d DW its header announced", n)
	}
	return rsp, nil
}

// waitFor polls Status until done(status) holds: at once, then after
// PollMin, doubling up to PollMax (see Options.Spin). It returns the last
// status read, and ErrTimeout (or the cancellation) when ctx ends first.
func (m *Mailbox) waitFor(ctx context.Context, done func(uint32) bool) (uint32, error) {
	start := time.Now()
	interval := m.opts.PollMin
	for {
		m.n.polls.Add(1)
		st, err := m.read(RegStatus)
		if err != nil {
			return st, err
		}
		if done(st) {
			return st, nil
		}
		if ctx.Err() != nil {
			return st, ctxErr(ctx)
		}
		if m.opts.Spin > 0 && time.Since(start) < m.opts.Spin {
			interval = min(interval, spinPollMax)
			spin(ctx, interval)
		} else {
			sleep(ctx, interval)
		}
		interval = min(2*interval, m.opts.PollMax)
	}
}

// ctxErr wraps the end of ctx: ErrTimeout for a deadline.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return fmt.Errorf("doe: %w", err)
}

// spin waits d by yielding the processor. If the clock does not move at all
// (testing/synctest's bubble clock only moves when goroutines block), it
// sleeps instead.
func spin(ctx context.Context, d time.Duration) {
	t0 := time.Now()
	deadline := t0.Add(d)
	for i := 0; ; i++ {
		now := time.Now()
		if !now.Before(deadline) || ctx.Err() != nil {
			return
		}
		if i >= 64 && now.Equal(t0) {
			sleep(ctx, deadline.Sub(now))
			return
		}
		runtime.Gosched()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

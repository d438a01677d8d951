package target

import (
	"context"
	"errors"
	"fmt"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/doe/socket"
	"github.com/vfio-gate/vfio-gate/pci"
)

// Target is one device, not yet opened.
type Target interface {
	// Open takes what the device needs (lock, config space, connection),
	// discovers its features and returns the transports. Close the Conn.
	Open(ctx context.Context) (*Conn, error)
}

var (
	_ Target = (*PCI)(nil)
	_ Target = (*Socket)(nil)
)

// Conn is an opened device.
type Conn struct {
	// CMA carries SPDM (DOE CMA-SPDM); nil when no mailbox offers it.
	CMA *doe.Exchanger
	// Secured carries secured-SPDM records (DOE secured CMA-SPDM) of the
	// same mailbox as CMA; nil when it offers none.
	Secured *doe.Exchanger
	// Mailboxes are the function's DOE mailboxes in config-space order with
	// what discovery found (PCI targets only).
	Mailboxes []Mailbox
	// DiscoveryErr is the first discovery failure. When CMA is nil and this
	// is set, the mailbox that failed might be the CMA one: never conclude
	// "no CMA" from it.
	DiscoveryErr error

	closers []func() error
}

// Mailbox is one DOE mailbox and the result of its discovery.
type Mailbox struct {
	*doe.Mailbox
	Features []doe.Feature // nil when Err is set
	Err      error
}

// Close releases everything Open took, in reverse order.
func (c *Conn) Close() error {
	var errs []error
	for i := len(c.closers) - 1; i >= 0; i-- {
		errs = append(errs, c.closers[i]())
	}
	c.closers = nil
	return errors.Join(errs...)
}

// Offering is the first mailbox, in config-space order, whose discovery
// succeeded and listed f; nil when none did.
func (c *Conn) Offering(f doe.Feature) *doe.Mailbox {
	for _, m := range c.Mailboxes {
		if m.Err == nil && m.Supports(f) {
			return m.Mailbox
		}
	}
	return nil
}

// Step names where opening a target failed.
type Step string

// Steps of Open, in order.
const (
	StepLock     Step = "lock"          // the per-function lock
	StepFunction Step = "function"      // the function in sysfs
	StepPolicy   Step = "mailbox-owner" // pci.System.MayDriveDOE: who may touch the mailbox
	StepConfig   Step = "config"        // config space for writing
	StepDOE      Step = "doe"           // finding the DOE capabilities
	StepConnect  Step = "connect"       // dialling the socket peer
)

// OpenError says at which step Open failed; Err keeps the cause
// (pci.ErrLockdown, pci.ErrReadOnlyConfig, ...) for errors.Is.
type OpenError struct {
	Step Step
	Err  error
}

func (e *OpenError) Error() string { return e.Err.Error() }
func (e *OpenError) Unwrap() error { return e.Err }

func stepErr(s Step, err error) error { return &OpenError{Step: s, Err: err} }

// PCI is a PCI function reached through its DOE mailboxes in sysfs config space.
type PCI struct {
	System *pci.System
	BDF    pci.BDF
	// LockDir: Open takes the per-function lock there and Close drops it.
	// Empty: the caller already holds the lock (gate holds it across
	// attestation and bind).
	LockDir string
	// DOE are the mailbox options (polling, timeouts, logger); nil = defaults.
	DOE *doe.Options
	// Offsets restricts discovery to these mailboxes; nil = all.
	Offsets []uint16
}

// Open finds the function, takes the lock (with LockDir), refuses what MayDriveDOE refuses,
// opens config space for writing (a read-only one is an error wrapping
// pci.ErrReadOnlyConfig), finds the DOE mailboxes and discovers each. It
// picks the first mailbox that offers CMA and secured CMA, else the first
// that offers CMA.
func (p *PCI) Open(ctx context.Context) (*Conn, error) {
	c := &Conn{}
	conn, err := p.open(ctx, c)
	if err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return conn, nil
}

func (p *PCI) open(ctx context.Context, c *Conn) (*Conn, error) {
	// The function first: no lock file for one that does not exist (a
	// typo'd BDF); then again under the lock, which is what counts.
	if _, err := p.System.Function(p.BDF); err != nil {
		return nil, stepErr(StepFunction, err)
	}
	if p.LockDir != "" {
		unlock, err := pci.LockFunction(ctx, p.LockDir, p.BDF)
		if err != nil {
			return nil, stepErr(StepLock, err)
		}
		c.closers = append(c.closers, unlock)
	}
	f, err := p.System.Function(p.BDF)
	if err != nil {
		return nil, stepErr(StepFunction, err)
	}
	if err := p.System.MayDriveDOE(f); err != nil {
		return nil, stepErr(StepPolicy, err)
	}
	cfg, closer, err := f.OpenConfig()
	if err != nil {
		return nil, stepErr(StepConfig, err)
	}
	c.closers = append(c.closers, closer.Close)
	mbs, err := doe.Find(cfg, p.DOE)
	if err != nil && len(mbs) == 0 {
		return nil, stepErr(StepDOE, fmt.Errorf("%s: %w", p.BDF, err))
	}
	var cma *doe.Mailbox
	for _, mb := range mbs {
		if p.Offsets != nil && !contains(p.Offsets, mb.Offset()) {
			continue
		}
		m := Mailbox{Mailbox: mb}
		m.Features, m.Err = mb.Discover(ctx)
		if m.Err != nil {
			if errors.Is(m.Err, pci.ErrDeviceRemoved) {
				return nil, stepErr(StepDOE, m.Err)
			}
			if c.DiscoveryErr == nil {
				c.DiscoveryErr = m.Err
			}
		}
		c.Mailboxes = append(c.Mailboxes, m)
		if m.Err != nil || !mb.Supports(doe.FeatureCMA) {
			continue
		}
		if cma == nil || (!cma.Supports(doe.FeatureSecuredCMA) && mb.Supports(doe.FeatureSecuredCMA)) {
			cma = mb
		}
	}
	if cma != nil {
		c.CMA = cma.Exchanger(doe.FeatureCMA)
		if cma.Supports(doe.FeatureSecuredCMA) {
			c.Secured = cma.Exchanger(doe.FeatureSecuredCMA)
		}
	}
	return c, nil
}

func contains(s []uint16, v uint16) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Socket is an spdm-socket peer (DMTF spdm-emu, `vfio-gate emulate`, QEMU's
// external responder) at Addr (HOST:PORT). It offers CMA and secured CMA.
type Socket struct {
	Addr string
}

// Open dials the peer.
func (s *Socket) Open(ctx context.Context) (*Conn, error) {
	sc, err := socket.Dial(ctx, s.Addr)
	if err != nil {
		return nil, stepErr(StepConnect, err)
	}
	return &Conn{CMA: sc.Exchanger(doe.FeatureCMA), Secured: sc.Exchanger(doe.FeatureSecuredCMA),
		closers: []func() error{sc.Close}}, nil
}

// SysfsPCI is a PCI function of the sysfs tree at Root: Open opens the
// tree (pci.Open with Options) and then the function as PCI does; Close
// closes both.
type SysfsPCI struct {
	Root    string
	Options *pci.Options
	BDF     pci.BDF
	LockDir string       // as PCI.LockDir
	DOE     *doe.Options // as PCI.DOE
}

var _ Target = (*SysfsPCI)(nil)

// Open opens the sysfs tree (a failure is an *OpenError at StepFunction)
// and the function (PCI.Open).
func (s *SysfsPCI) Open(ctx context.Context) (*Conn, error) {
	sys, err := pci.Open(s.Root, s.Options)
	if err != nil {
		return nil, stepErr(StepFunction, err)
	}
	c, err := (&PCI{System: sys, BDF: s.BDF, LockDir: s.LockDir, DOE: s.DOE}).Open(ctx)
	if err != nil {
		if cerr := sys.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	// Closed last: the config space and the lock first.
	c.closers = append([]func() error{sys.Close}, c.closers...)
	return c, nil
}

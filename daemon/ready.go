package daemon

import (
	"context"
	"sync"
	"time"
)

// CodeStarting is the APIError code of a request that arrived while the
// daemon was still starting (recovering what an earlier run left) and did
// not become ready within Starting.Wait. Clients may retry (HTTP 503).
const CodeStarting = "starting"

// DefaultStartWait bounds how long one request waits for a starting daemon.
const DefaultStartWait = 90 * time.Second

// Starting serves the API while the daemon starts: the socket listens at
// once, and every request that needs the gate or the TDISP sessions waits
// (at most Wait, and never past its own context) until Ready is called.
// Status answers at once: with Ready false and what the daemon is doing
// while it starts. It also stamps the TPM in use into Status. Safe for
// concurrent use.
type Starting struct {
	// Backend answers once Ready has been called.
	Backend Backend
	// Wait bounds a request's wait for readiness; zero means DefaultStartWait.
	Wait time.Duration
	// TPM names the TPM the daemon records into (Status.TPM).
	TPM string
	// Policy is the policy path, for Status before readiness.
	Policy string
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time

	once    sync.Once
	ready   chan struct{}
	mu      sync.Mutex
	phase   string
	started time.Time
}

func (s *Starting) init() {
	s.once.Do(func() {
		s.ready = make(chan struct{})
		if s.Now == nil {
			s.Now = time.Now
		}
		s.started = s.Now()
		if s.phase == "" {
			s.phase = "starting"
		}
	})
}

// SetPhase says what the starting daemon is doing (Status.Phase).
func (s *Starting) SetPhase(p string) {
	s.init()
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
}

// Ready lets requests through; it is idempotent.
func (s *Starting) Ready() {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase = "ready"
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
}

// IsReady reports whether Ready was called.
func (s *Starting) IsReady() bool {
	s.init()
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// wait blocks until Ready, ctx's end or Wait, whichever comes first.
func (s *Starting) wait(ctx context.Context) error {
	s.init()
	select {
	case <-s.ready:
		return nil
	default:
	}
	d := s.Wait
	if d <= 0 {
		d = DefaultStartWait
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		s.mu.Lock()
		p := s.phase
		s.mu.Unlock()
		return &Error{Code: CodeStarting,
			Message: "the daemon is still starting (" + p + ") after " + d.String() + ": retry, or see journalctl -u vfio-gate"}
	}
}

// Check implements Backend.
func (s *Starting) Check(ctx context.Context, req CheckRequest) (*CheckResponse, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.Backend.Check(ctx, req)
}

// Bind implements Backend.
func (s *Starting) Bind(ctx context.Context, req CheckRequest) (*CheckResponse, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.Backend.Bind(ctx, req)
}

// Release implements Backend.
func (s *Starting) Release(ctx context.Context, req DomainRequest) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.Backend.Release(ctx, req)
}

// StartDomain implements Backend.
func (s *Starting) StartDomain(ctx context.Context, req DomainRequest) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.Backend.StartDomain(ctx, req)
}

// TDISPLock implements Backend.
func (s *Starting) TDISPLock(ctx context.Context, req TDIRequest) (*TDIStatus, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.Backend.TDISPLock(ctx, req)
}

// TDISPStart implements Backend.
func (s *Starting) TDISPStart(ctx context.Context, req TDIRequest) (*TDIStatus, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.Backend.TDISPStart(ctx, req)
}

// TDISPStop implements Backend.
func (s *Starting) TDISPStop(ctx context.Context, req TDIRequest) (*TDIStatus, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.Backend.TDISPStop(ctx, req)
}

// TDISPState implements Backend.
func (s *Starting) TDISPState(ctx context.Context, req TDIRequest) (*TDIStatus, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.Backend.TDISPState(ctx, req)
}

// Status implements Backend: at once, Ready false while starting.
func (s *Starting) Status(ctx context.Context) (*Status, error) {
	s.init()
	if !s.IsReady() {
		s.mu.Lock()
		p := s.phase
		s.mu.Unlock()
		return &Status{Started: s.started, Policy: s.Policy, Domains: map[string][]string{}, Devices: []DeviceStatus{},
			TDIs: []TDIStatus{}, Sessions: []SessionStatus{}, Decisions: []DeviceDecision{}, Released: []ReleaseRecord{},
			Reports: []Report{}, TDISP: "unknown while starting", TPM: s.TPM, Ready: false, Phase: p}, nil
	}
	st, err := s.Backend.Status(ctx)
	if err != nil {
		return nil, err
	}
	st.TPM, st.Ready, st.Phase = s.TPM, true, "ready"
	return st, nil
}

package spdm

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// fakeClock is a settable clock for ResponderSessionConfig.Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// TestResponderHeartbeatTimeout: with HeartbeatPeriod P > 0 in
// KEY_EXCHANGE_RSP, the responder ends a session whose requester sends
// nothing for more than 2 × P (DSP0274 HEARTBEAT; libspdm's responder
// watchdog is heartbeat_period * 2, reset by every session message).
// Request → expected outcome: HEARTBEAT within 2P → HEARTBEAT_ACK (and the
// timer restarts); HEARTBEAT after 2P of silence → no such session.
func TestResponderHeartbeatTimeout(t *testing.T) {
	ctx := context.Background()
	for _, inClear := range []bool{false, true} {
		clk := &fakeClock{t: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
		rig := newSessionRig(t, AsymECDSAP256, Version12, AEADAES256GCM, inClear, func(c *ResponderSessionConfig) {
			c.HeartbeatPeriod, c.Now = 1, clk.now
		})
		s, err := rig.open(t)
		if err != nil {
			t.Fatal(err)
		}
		if s.Info().HeartbeatPeriod != time.Second {
			t.Fatalf("HeartbeatPeriod %v, want 1s", s.Info().HeartbeatPeriod)
		}
		for i := range 3 {
			clk.advance(2 * time.Second) // exactly 2P: still alive
			if err := s.Heartbeat(ctx); err != nil {
				t.Fatalf("in-clear %v: heartbeat %d after 2P: %v", inClear, i, err)
			}
		}
		clk.advance(2*time.Second + time.Millisecond)
		err = s.Heartbeat(ctx)
		if !errors.Is(err, ErrNoSession) {
			t.Fatalf("in-clear %v: heartbeat after 2P+1ms of silence: %v, want ErrNoSession", inClear, err)
		}
		if !slices.Contains(rig.ended, s.ID()) {
			t.Fatalf("in-clear %v: Ended not called for %#x (ended %v)", inClear, s.ID(), rig.ended)
		}
		if len(rig.rsp.c.sessions) != 0 {
			t.Fatalf("in-clear %v: %d sessions left", inClear, len(rig.rsp.c.sessions))
		}
	}
}

// TestResponderHeartbeatTimeoutOtherTraffic: any message of the session
// restarts the timer, and an expired session is swept by a request
// outside it too (its slot is free for a new KEY_EXCHANGE).
func TestResponderHeartbeatTimeoutOtherTraffic(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
	rig := newSessionRig(t, AsymECDSAP256, Version13, AEADAES128GCM, false, func(c *ResponderSessionConfig) {
		c.HeartbeatPeriod, c.Now, c.MaxSessions = 5, clk.now, 1
	})
	s, err := rig.open(t)
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(9 * time.Second)
	if _, err := s.Measurements(ctx, MeasOpts{Index: 1}); err != nil {
		t.Fatalf("measurements within 2P: %v", err)
	}
	clk.advance(9 * time.Second)
	if _, err := s.VendorDefined(ctx, 3, []byte{1, 0}, []byte{7}); err != nil {
		t.Fatalf("vendor-defined within 2P of the last message: %v", err)
	}
	if _, err := rig.open(t); !errors.Is(err, ErrorCodeSessionLimitExceeded) {
		t.Fatalf("second session while the first lives: %v, want SessionLimitExceeded", err)
	}
	clk.advance(11 * time.Second)
	if _, err := rig.open(t); err != nil {
		t.Fatalf("KEY_EXCHANGE after the first session timed out: %v", err)
	}
	if !slices.Contains(rig.ended, s.ID()) {
		t.Fatalf("timed-out session %#x not ended", s.ID())
	}
}

// TestResponderNoHeartbeatNoTimeout: with HeartbeatPeriod 0 (heartbeat
// not used) a silent session never expires.
func TestResponderNoHeartbeatNoTimeout(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
	rig := newSessionRig(t, AsymECDSAP256, Version12, AEADAES256GCM, false, func(c *ResponderSessionConfig) {
		c.HeartbeatPeriod, c.Now = 0, clk.now
	})
	s, err := rig.open(t)
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(24 * time.Hour)
	if _, err := s.VendorDefined(context.Background(), 3, []byte{1, 0}, []byte{7}); err != nil {
		t.Fatalf("after a day of silence without heartbeat: %v", err)
	}
}

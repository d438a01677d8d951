package tdisp

import (
	"context"
	"fmt"
)

// CycleStep is one request of Cycle and the TDI state after it.
type CycleStep struct {
	Request string // LOCK_INTERFACE, ...
	State   State
	Err     error // nil when the request and the state query after it succeeded
}

// CycleResult is what Cycle did: every step, the interface report (nil
// when the report step did not run or failed) and the last state seen.
type CycleResult struct {
	Steps      []CycleStep
	Report     *InterfaceReport
	FinalState State
}

// Cycle runs the whole TDI lifecycle (lock → report → start → state →
// stop), asking the state after each step. It stops at the first failing
// step, after sending STOP_INTERFACE when the TDI is locked so that it is
// not left locked; the error names the failing step. Lab and CI use only.
func (c *Client) Cycle(ctx context.Context, lp LockParams) (*CycleResult, error) {
	res := &CycleResult{Steps: []CycleStep{}}
	var nonce [NonceSize]byte
	steps := []struct {
		name string
		do   func() error
	}{
		{"LOCK_INTERFACE", func() (err error) { nonce, err = c.Lock(ctx, lp); return err }},
		{"GET_DEVICE_INTERFACE_REPORT", func() (err error) { res.Report, _, err = c.Report(ctx); return err }},
		{"START_INTERFACE", func() error { return c.Start(ctx, nonce) }},
		{"GET_DEVICE_INTERFACE_STATE", func() error { _, err := c.State(ctx); return err }},
		{"STOP_INTERFACE", func() error { return c.Stop(ctx) }},
	}
	for i, s := range steps {
		err := s.do()
		st, serr := c.State(ctx)
		if err == nil {
			err = serr
		}
		res.Steps = append(res.Steps, CycleStep{Request: s.name, State: st, Err: err})
		res.FinalState = st
		if err == nil {
			continue
		}
		if i > 0 && i < len(steps)-1 { // locked: release it before giving up
			serr := c.Stop(ctx)
			st, _ := c.State(ctx)
			res.Steps = append(res.Steps, CycleStep{Request: "STOP_INTERFACE", State: st, Err: serr})
			res.FinalState = st
		}
		return res, fmt.Errorf("%s: %w", s.name, err)
	}
	return res, nil
}

package tdisp

import (
	"context"
	"fmt"
)

// NotLockedError is a request that needs a locked TDI (CONFIG_LOCKED or
// RUN) made while the TDI was in State.
type NotLockedError struct {
	State State
}

func (e *NotLockedError) Error() string {
	return fmt.Sprintf("tdisp: TDI is %v: no interface report before it is locked", e.State)
}

// LockedReport asks the TDI's state and, when it is CONFIG_LOCKED or RUN,
// reads its interface report (Report). Otherwise it returns the state with
// a *NotLockedError and sends nothing more.
func (c *Client) LockedReport(ctx context.Context) (State, *InterfaceReport, error) {
	st, err := c.State(ctx)
	if err != nil {
		return st, nil, err
	}
	if st != StateConfigLocked && st != StateRun {
		return st, nil, &NotLockedError{State: st}
	}
	rep, _, err := c.Report(ctx)
	return st, rep, err
}

// CycleSupported is Cycle with lp.Flags masked to the lock flags the device
// supports (GET_TDISP_CAPABILITIES, asked first). When the capabilities
// cannot be read, nothing else is sent and the result is nil.
func (c *Client) CycleSupported(ctx context.Context, lp LockParams) (*CycleResult, error) {
	caps, err := c.GetCapabilities(ctx, 0)
	if err != nil {
		return nil, err
	}
	lp.Flags &= caps.LockFlagsSupported
	return c.Cycle(ctx, lp)
}

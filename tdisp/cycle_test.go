package tdisp

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestCycle: a whole cycle walks the TDI through every state and back to
// CONFIG_UNLOCKED, with the interface report.
func TestCycle(t *testing.T) {
	d, id := testDevice(t)
	res, err := NewClient(d, id, nil).Cycle(context.Background(), LockParams{})
	if err != nil {
		t.Fatal(err)
	}
	want := []State{StateConfigLocked, StateConfigLocked, StateRun, StateRun, StateConfigUnlocked}
	if len(res.Steps) != len(want) || res.Report == nil || res.FinalState != StateConfigUnlocked || d.State() != StateConfigUnlocked {
		t.Fatalf("cycle: %+v", res)
	}
	for i, s := range res.Steps {
		if s.Err != nil || s.State != want[i] {
			t.Errorf("step %d %s: state %v, err %v; want %v", i, s.Request, s.State, s.Err, want[i])
		}
	}
}

// failingSession fails one request type.
type failingSession struct {
	d    *Device
	fail MessageType
}

func (f *failingSession) VendorDefined(ctx context.Context, std uint16, vid, p []byte) ([]byte, error) {
	if req, err := Decode(p); err == nil && req.Type == f.fail {
		return nil, errors.New("injected failure")
	}
	return f.d.VendorDefined(ctx, std, vid, p)
}

// TestCycleStopsAfterFailure: a step failing after LOCK still sends STOP,
// so the TDI is not left locked; a failing LOCK sends nothing more.
func TestCycleStopsAfterFailure(t *testing.T) {
	d, id := testDevice(t)
	res, err := NewClient(&failingSession{d: d, fail: MsgStartInterface}, id, nil).Cycle(context.Background(), LockParams{})
	if err == nil || !strings.HasPrefix(err.Error(), "START_INTERFACE: ") {
		t.Fatalf("err %v", err)
	}
	got := []string{}
	for _, s := range res.Steps {
		got = append(got, s.Request)
	}
	if strings.Join(got, ",") != "LOCK_INTERFACE,GET_DEVICE_INTERFACE_REPORT,START_INTERFACE,STOP_INTERFACE" ||
		res.Steps[2].Err == nil || res.Steps[3].Err != nil || d.State() != StateConfigUnlocked || res.FinalState != StateConfigUnlocked {
		t.Fatalf("steps %v, device %v, final %v", got, d.State(), res.FinalState)
	}

	d, id = testDevice(t)
	res, err = NewClient(&failingSession{d: d, fail: MsgLockInterface}, id, nil).Cycle(context.Background(), LockParams{})
	if err == nil || len(res.Steps) != 1 || res.Report != nil {
		t.Fatalf("lock failure: %v %+v", err, res)
	}
}

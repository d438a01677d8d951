package tdisp

import (
	"encoding/json"
	"fmt"
)

// State is the TDI state (TDISP "TDI state machine"), with the
// DEVICE_INTERFACE_STATE wire values.
type State uint8

const (
	StateConfigUnlocked State = 0
	StateConfigLocked   State = 1
	StateRun            State = 2
	StateError          State = 3
)

func (s State) String() string {
	switch s {
	case StateConfigUnlocked:
		return "CONFIG_UNLOCKED"
	case StateConfigLocked:
		return "CONFIG_LOCKED"
	case StateRun:
		return "RUN"
	case StateError:
		return "ERROR"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalJSON writes the state name.
func (s State) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// ParseState parses a state name as String writes it.
func ParseState(name string) (State, error) {
	for s := StateConfigUnlocked; s <= StateError; s++ {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("tdisp: unknown TDI state %q", name)
}

// UnmarshalJSON reads a state name (for journals that persist states).
func (s *State) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	v, err := ParseState(name)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Allowed reports whether request t may be processed in state s: nil, or a
// *TransitionError (which unwraps to ErrorInvalidInterfaceState).
//
//	LOCK_INTERFACE            CONFIG_UNLOCKED
//	GET_DEVICE_INTERFACE_REPORT CONFIG_LOCKED, RUN
//	START_INTERFACE           CONFIG_LOCKED
//	STOP_INTERFACE            CONFIG_LOCKED, RUN, ERROR
//	BIND/UNBIND_P2P, SET_MMIO_ATTRIBUTE  RUN
//	everything else           any state
func Allowed(s State, t MessageType) error {
	ok := true
	switch t {
	case MsgLockInterface:
		ok = s == StateConfigUnlocked
	case MsgGetReport:
		ok = s == StateConfigLocked || s == StateRun
	case MsgStartInterface:
		ok = s == StateConfigLocked
	case MsgStopInterface:
		ok = s != StateConfigUnlocked
	case MsgBindP2PStream, MsgUnbindP2PStream, MsgSetMMIOAttribute:
		ok = s == StateRun
	}
	if !ok {
		return &TransitionError{From: s, Request: t}
	}
	return nil
}

// After returns the state after request t succeeded in state s.
func After(s State, t MessageType) State {
	switch t {
	case MsgLockInterface:
		return StateConfigLocked
	case MsgStartInterface:
		return StateRun
	case MsgStopInterface:
		return StateConfigUnlocked
	}
	return s
}

// Faulted returns the state after a fault: a write to locked configuration,
// an integrity failure, or the end of the secure session that locked the TDI.
// CONFIG_LOCKED and RUN go to ERROR; other states are unchanged.
func Faulted(s State) State {
	if s == StateConfigLocked || s == StateRun {
		return StateError
	}
	return s
}

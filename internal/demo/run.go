package demo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// RunConfig is what Run runs on: the world (Build) and the gate opened over
// it (its tree, policy and software config spaces).
type RunConfig struct {
	World *World
	Host  *gate.Host
	// EventLog and EvidenceDir are the directories Host records into.
	EventLog    string
	EvidenceDir string
	// Out is the narration of the libvirt part; nil for none (--json).
	Out io.Writer
	// Checked, if not nil, is called with the first part's decisions
	// before the libvirt part starts (the caller prints them).
	Checked func([]gate.Decision)
}

// Result is what the demo did and found.
type Result struct {
	Decisions []gate.Decision
	Expected  []Expectation // Decisions against the devices' expected outcomes
	Libvirt   []HookStep
	// LogVerify is the event log replayed against the TPM's PCR; nil when
	// VerifyErr says why it could not be replayed.
	LogVerify *tpm.VerifyResult
	VerifyErr error
	// OK: every decision and hook call met its expectation.
	OK bool
}

// Run checks the world's three functions (for a confidential VM), plays
// the libvirt part (Libvirt), verifies the event log and compares every
// outcome with the expected one. Its error is a failure to run; a run whose
// outcomes are not the expected ones is Result.Err.
func Run(ctx context.Context, c RunConfig) (*Result, error) {
	bdfs, err := c.World.BDFs()
	if err != nil {
		return nil, err
	}
	ds, err := c.Host.Gate.Check(ctx, gate.Request{BDFs: bdfs, Confidential: true})
	if err != nil {
		return nil, err
	}
	if c.Checked != nil {
		c.Checked(ds)
	}
	steps, err := Libvirt(ctx, LibvirtConfig{World: c.World, System: c.Host.System, Recorder: c.Host.Recorder,
		EvidenceDir: c.EvidenceDir, Out: c.Out})
	if err != nil {
		return nil, fmt.Errorf("demo: libvirt part: %w", err)
	}
	r := &Result{Decisions: ds, Libvirt: steps}
	r.LogVerify, r.VerifyErr = tpm.Verify(ctx, c.Host.TPM, c.EventLog, c.Host.Recorder.PCR())
	r.Expected, r.OK = Compare(c.World.Devices, ds)
	r.OK = r.OK && StepsOK(steps)
	return r, nil
}

// AsExpected reports whether the run went as it should: every outcome as
// expected and the event log verified.
func (r *Result) AsExpected() bool { return r.OK && r.VerifyErr == nil && r.LogVerify.OK }

// ErrTPMFailure is Result.Err when a decision could not be recorded in the
// TPM (the decisions say which).
var ErrTPMFailure = errors.New("demo: TPM failure")

// ErrUnexpected is Result.Err when an outcome is not the expected one.
var ErrUnexpected = errors.New("demo: the outcomes are not the expected allow / deny(measurement-mismatch) / deny(no-cma) " +
	"and, for the confidential domains, TDI locked / running / unlocked and deny")

// LogError is Result.Err when the event log does not verify against the
// TPM's PCR; Msg is the first problem found. It matches tpm.ErrTPM: like
// `vfio-gate log verify`, a log the TPM contradicts is a TPM failure.
type LogError struct{ Msg string }

func (e *LogError) Error() string { return "demo: the event log does not verify: " + e.Msg }

// Is makes errors.Is(err, tpm.ErrTPM) true.
func (e *LogError) Is(target error) bool { return target == tpm.ErrTPM }

// Err is the run's failure, in this order: ErrTPMFailure, VerifyErr (the
// log could not be verified), a *LogError (it does not verify), then
// ErrUnexpected; nil when AsExpected.
func (r *Result) Err() error {
	switch {
	case gate.Summarize(r.Decisions).TPMFailed:
		return ErrTPMFailure
	case r.VerifyErr != nil:
		return r.VerifyErr
	case !r.LogVerify.OK:
		return &LogError{Msg: r.LogVerify.Problems[0].Msg}
	case !r.OK:
		return ErrUnexpected
	}
	return nil
}

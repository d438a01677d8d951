// Package doe implements the PCIe Data Object Exchange (DOE) mailbox
// (PCIe r6.0 §6.30, capability §7.9.24; register facts in SPEC-FACTS §1):
// discovery, one-object-at-a-time exchanges with busy/error/abort/timeout
// handling and adaptive polling, over a pci.ConfigSpace (the sysfs config
// file, or an in-memory config space in tests). Its commands are
// vfio-gate scan (mailboxes and features) and vfio-gate doe (discovery,
// CXL CDAT through sub-package cdat).
//
// The device behind the mailbox is untrusted: every header, length and
// status bit it returns is checked, and a malformed object ends the exchange
// with a *ProtocolError after the mailbox has been aborted.
//
// The package also holds the device side: Model, a register-level DOE
// mailbox that serves objects to a Handler (with fault injection); tests put
// it in a 4 KiB config space with internal/testutil/doetest.
// Sub-package socket speaks the spdm-socket protocol of QEMU and DMTF
// spdm-emu (client and server).
//
// Goroutine safety: a *Mailbox serialises its exchanges with a mutex and
// may be shared; a *Model is safe for concurrent use.
// The mailbox mutex is per process: cross-process exclusion (the lock file
// under /run/vfio-gate) is the caller's job (package pci).
//
// # Synopsis
//
//	mbs, err := doe.Find(cfg, &doe.Options{Logger: log})   // one *Mailbox per DOE capability (ID 0x2E)
//	feats, err := mbs[0].Discover(ctx)                       // [discovery cma-spdm secured-cma-spdm]
//	rsp, err := mbs[0].Exchange(ctx, doe.FeatureCMA, req)    // one object, DW-padded response
//	t := mbs[0].Exchanger(doe.FeatureCMA)                    // t.Exchange(ctx, req): an spdm.Transport
//
// Feature names (scan output, JSON) are discovery (0001:00), cma-spdm
// (0001:01), secured-cma-spdm (0001:02), cxl-compliance (1e98:00) and
// cxl-cdat (1e98:02), otherwise VVVV:TT in hex, as in the kernel's
// doe_features/ directory.
//
// # Behaviour
//
//   - One object at a time per mailbox (mutex). Cross-process exclusion is
//     the per-function lock file of package pci.
//   - Busy on entry means another owner (the kernel, another process): the
//     mailbox is aborted once; still Busy is ErrMailboxBusy ("another owner
//     is using the mailbox"). A stale Error or response on entry is aborted
//     too.
//   - The Error bit after Go: abort, ErrMailboxError.
//   - Timeout: the earliest of the caller's ctx and Options.Timeout (default
//     1 s per object), then abort; the error wraps ErrTimeout and
//     context.DeadlineExceeded, and a cancellation wraps context.Canceled.
//     The abort gets its own 1 s budget, detached from the caller's
//     cancellation, so the mailbox is left clean.
//   - Every error after which the mailbox was aborted also wraps ErrAborted;
//     the mailbox is usable again. If the abort fails (Busy or Error stuck)
//     the error says so.
//   - Checks on device data (*ProtocolError{Field, Reason}): the header's
//     vendor and type must equal the request's; Length 0 means 2^18 DW;
//     Length < 2 or over Options.MaxResponse is rejected before any
//     allocation; Data Object Ready must still be set before the last DW is
//     popped and clear after it (exact DW count). Payloads are returned
//     DW-padded: callers strip the padding from their own lengths.
//   - Discovery follows Next Index from 0, at most 256 requests; a revisited
//     index is a loop (a *ProtocolError); Vendor 0xFFFF past index 0 (QEMU's
//     out-of-range answer) ends the list; duplicates are dropped; 4- and
//     8-byte (discovery v2) entries are accepted.
//   - Adaptive polling: Status is read at once after Go, then after 2 µs,
//     doubling. For the first 2 ms (Options.Spin) waits yield the CPU instead
//     of sleeping, with the interval capped at 32 µs, because OS timers are
//     far coarser than DOE latencies (time.Sleep(2µs) took about 0.5 ms on
//     the CI VM); after that the interval keeps doubling to 1 ms
//     (Options.PollMax) with real sleeps.
//
// # Device model and fault injection
//
// NewModel(features, handler) is a register-level mailbox: 4-byte accesses
// only, Go, Abort, Busy, Error, Data Object Ready, pop-on-write; a request
// whose DW count differs from its header Length is discarded, and popping
// with nothing ready sets Error. Discovery is answered from the feature
// list; SetRawDiscovery(true) hands it to the handler instead (to test
// hostile discovery lists). Model.SetFault(Fault{...}) selects misbehaviour:
// StuckBusy, BusyUntilAbort, Error, StickyError, NeverReady, Latency,
// LengthDelta, SetLength/Length (oversize; 0 = 2^18 DW), WrongVendor,
// WrongType, Truncate, DropDORAfter. internal/testutil/doetest.NewConfig
// puts models in a 4 KiB type-0 config space (a PCIe capability at 0x40,
// one DOE capability per model from 0x100 in steps of 0x18).
//
// # Benchmark
//
// go test -run '^$' -bench Exchange4KiB ./doe runs one exchange of a 4 KiB
// object (4 KiB back) against the model. The minimum is 3080 register
// accesses (1026 request DW writes, 2 × 1026 response DW accesses, Go and
// one Status read). Targets: at most 1.2 × 3080 accesses, and a poll delay
// (device ready → the requester's first access that sees it, measured by
// the model) of at most 50 µs. TestPollDelay pins the schedule on a bubble
// clock (at most 32 µs up to 1.9 ms of device latency, 1 ms beyond) and
// TestPollDelayFixedInterval the Linux one (a fixed 7.8 ms). The measured
// numbers are in docs/internals.md.
package doe

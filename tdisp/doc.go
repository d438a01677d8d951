// Package tdisp implements the TEE Device Interface Security Protocol (PCIe
// r6.1 §11, "TDISP"): the message codecs, the TDI state machine shared by the
// requester (Client) and the device side (Device), the device interface
// report parser, and the kernel PCI TSM sysfs backend (TSM) for hosts where a
// platform TSM owns SPDM. It also holds the Journal of locked TDIs and the
// Broker, the long-lived owner of TDIs and their sessions (for the daemon).
// Its commands are vfio-gate tdisp and vfio-gate attest --session/--tdisp.
//
// TDISP travels as SPDM VENDOR_DEFINED messages (StandardID 3 = PCI-SIG,
// VendorID 0x0001, payload byte 0 = protocol ID 1) inside a secure session.
// The package does not import the SPDM requester: it declares the one method
// it needs (Session).
//
// A Client is not safe for concurrent use; a Device and a Broker are; a
// Journal is within one process.
//
// # Client
//
//	id, err := tdisp.InterfaceIDFor(bdf)   // FUNCTION_ID: RID, segment, valid bit if segment ≠ 0
//	c := tdisp.NewClient(session, id, nil) // session: VendorDefined(ctx, 3, {0x01, 0x00}, payload)
//	versions, err := c.GetVersion(ctx)
//	caps, err := c.GetCapabilities(ctx, 0)
//	nonce, err := c.Lock(ctx, tdisp.LockParams{Flags: tdisp.LockNoFWUpdate | tdisp.LockMSIX})
//	report, raw, err := c.Report(ctx) // read in portions, parsed
//	state, err := c.State(ctx)        // *StateMismatchError if it differs from the tracked state
//	err = c.Start(ctx, nonce)
//	err = c.Stop(ctx)
//
// The states are CONFIG_UNLOCKED, CONFIG_LOCKED, RUN and ERROR.
// Allowed(state, request) is the one transition table, used by the client
// (which refuses before sending) and by Device (which answers TDISP_ERROR
// INVALID_INTERFACE_STATE). Both come back as errors matching
// errors.Is(err, ErrorInvalidInterfaceState); a device's TDISP_ERROR is a
// *DeviceError{Request, Code, Data} (errors.Is(err, ErrorInvalidNonce) and
// so on).
//
// Device (for package emu): NewDevice(DeviceConfig{Interface, Ranges, …}),
// Handle(ctx, payload), LockedConfigWrite(offset) (the fault: LOCKED or RUN
// → ERROR), SessionEnded(), State(); it implements Session.
//
// The interface report's JSON is {"interface_info", "msix_message_control",
// "lnr_control", "tph_control", "mmio_ranges": [{"first_page", "pages",
// "attributes", "range_id"}], "device_specific_info": "<hex>"}. Hostile
// lengths are capped (a report is at most 64 KiB; the range count is
// checked against the bytes present).
//
// # Kernel PCI TSM
//
// For hosts where a platform TSM owns SPDM (Linux 6.19+):
//
//	tsm, err := tdisp.OpenTSM("/sys")    // os.Root-confined
//	st, err := tsm.Status(ctx, bdf)      // JSON: {"bdf", "present", "connected", "authenticated", "authenticated_raw", "attributes"}
//	err = tsm.Connect(ctx, bdf, "tsm0")  // writes tsm/connect, confirms by reading it back
//	err = tsm.Disconnect(ctx, bdf)       // writes the connected name to tsm/disconnect
//
// Errors: ErrNoTSM (no tsm/ directory), ErrTSMBusy (EBUSY, or connected to
// another TSM), ErrNotConnected, ErrUnknownTSM (the name is not under
// /sys/class/tsm). The kernel drives SPDM itself and exposes no evidence,
// so check and tdisp do not connect through it (docs/architecture.md, "The
// kernel PCI TSM is not a target").
//
// # Journal
//
// The journal of locked TDIs lets the long-lived session owner STOP, after
// a restart, what it no longer owns:
//
//	j, err := tdisp.OpenJournal("/var/lib/vfio-gate", nil) // file tdisp-journal.json, replaced atomically
//	err = j.Record(tdisp.JournalEntry{BDF: "0000:3b:00.0", Interface: id, Owner: domUUID, State: tdisp.StateRun, SessionID: sid})
//	orphans, err := j.Orphans(func(owner string) bool { return running[owner] })
//
// Its JSON is {"schema": JournalSchema, "version": 1, "entries": [{"bdf",
// "interface_id", "owner", "state", "session_id", "updated"}]} (docs/json.md;
// a journal without "schema" is still read). An entry recorded as CONFIG_UNLOCKED
// is removed; a corrupt journal is ErrJournalCorrupt (fail closed), never
// empty.
//
// # Broker
//
//	b, err := tdisp.NewBroker(tdisp.BrokerConfig{
//		Open:    attest.SessionOpener(sys, pci.DefaultLockDir, &attest.Options{Roots: anchors}), // the function lock is held for the session's life
//		Journal: journal, KeyUpdateBelow: 1 << 32, KeyUpdateEvery: time.Hour,
//		Lost:    func(bdf pci.BDF, owner string, err error) { ... }, // the TDI is ERROR now
//	})
//	results, err := b.Recover(ctx, func(owner string) bool { return running[owner] }) // at start-up, before any Lock
//	report, raw, err := b.Lock(ctx, bdf, domUUID, tdisp.LockParams{Flags: tdisp.LockNoFWUpdate})
//	report, raw, err = b.Adopt(ctx, bdf, domUUID, session, release, tdisp.LockParams{}) // Lock in a session the caller opened
//	err = b.Start(ctx, bdf) // START_INTERFACE with the nonce LOCK returned
//	st, err := b.State(ctx, bdf)
//	err = b.Stop(ctx, bdf) // STOP, END_SESSION, journal entry removed
//	b.Held()               // []Held{BDF, Owner, State, SessionID, Heartbeats, KeyUpdates, Err}
//	err = b.Close(ctx)     // END_SESSION for all; the journal is kept for the next Recover
//
// One session per TDI (a TDI is bound to the session that locked it). A
// keeper goroutine per TDI sends HEARTBEAT at half the negotiated
// HeartbeatPeriod (every IdleCheck, default 1 min, without one) and
// KEY_UPDATE (UpdateAllKeys) when fewer than KeyUpdateBelow records remain
// or KeyUpdateEvery has passed. A dead session is journalled as ERROR and
// reported through Lost. Recover re-establishes a session with each
// journalled TDI whose owner is gone, STOPs it and removes the entry;
// entries still owned come back as "kept", unreachable ones as "failed"
// (the entry is kept and an error returned). The broker is tested with
// testing/synctest (a fake clock) against the software device.
package tdisp

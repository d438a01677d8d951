// Package attest attests one PCI function (DOE discovery, SPDM, optional
// TDISP) and returns Evidence. It never decides: policy does.
//
// Evidence is plain data (JSON-encodable, no protocol types) so that policy,
// tpm, gate and the CLI depend on this file only.
//
// Function attests through the function's DOE mailbox (opened by
// target.PCI), Transport behind an already-open SPDM transport (an
// spdm-socket peer), and FunctionSession also keeps the secure session it
// attested in (Held), for a caller that locks the TDI inside it (gate,
// through the daemon's TDISP broker). A failure becomes Evidence.Failure,
// whose Kind Classify finds from the lower layers' sentinel and typed errors
// alone; VerifyOffline re-checks stored evidence without the device.
//
// # Sessions for the TDISP broker
//
// OpenSession(ctx, sys, bdf, lockDir, &Options{Roots, Slot}) is the DOE way
// to a secure session, under the same ownership rules as Function
// (pci.System.MayDriveDOE, a writable config space, the per-function lock
// held until release is called). It fails with ErrNoSecuredCMA when no
// mailbox offers secured CMA, and with spdm.ErrChainNotVerified for a chain
// that does not verify. SessionOpener adapts it to tdisp.OpenFunc for the
// daemon's tdisp.Broker; SessionOpenerFor takes each function's trust
// anchors from its policy rule and refuses a function without any.
//
// Function and FunctionSession expect the caller to hold the per-function
// lock (pci.LockFunction); attestations of different functions may run
// concurrently (gate runs many at once), and a ChainCache may be shared by
// all of them.
package attest

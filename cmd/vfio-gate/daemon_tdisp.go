package main

import (
	"log/slog"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// doeSessionOpener returns the daemon's tdisp.OpenFunc: attest.SessionOpenerFor
// (the function's lock held for the session's life, its DOE mailbox with
// CMA and secured CMA, a secure SPDM session) authenticated by the trust
// anchors of the policy rule that matches the function.
func doeSessionOpener(sys *pci.System, pol *policy.Policy, lockDir string, timeout time.Duration, log *slog.Logger) tdisp.OpenFunc {
	return attest.SessionOpenerFor(sys, lockDir, &attest.Options{Timeout: timeout, Logger: log}, pol.TrustAnchors)
}

//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// auditTamper (issue 9 tamper signal): `vfio-gate check --audit` of the CXL
// function (no driver since kernel-doe-discovery; DOE without CMA, allowed
// for a non-confidential VM) gives the normal decision, allow, when nobody
// else touches it; with this process hammering the DOE Status register
// (sysfs reads at its DOE offset + 0x0c) during the check, it is denied
// mailbox-tampered (exit 3, recorded), and the reason names this pid.
func auditTamper(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "check"); r != nil {
		return *r
	}
	f, off, err := h.cxlDOE()
	if err != nil {
		return failf("%v", err)
	}
	quiet, code, errOut, err := h.gateJSON(ctx, "check", "--audit", f.BDF)
	if err != nil {
		return failf("%v", err)
	}
	if code != 0 || quiet.Decision != "allow" || len(quiet.Devices) != 1 || !quiet.Devices[0].Recorded {
		return failf("check --audit %s without a hammer: exit %d, %+v, stderr %q; want exit 0, allow, recorded", f.BDF, code, quiet, errOut)
	}

	cfg, err := openConfig(h.devPath(f.BDF, "config"), false)
	if err != nil {
		return failf("%v", err)
	}
	defer cfg.Close()
	var stop atomic.Bool
	var reads atomic.Int64
	var herr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if _, err := cfg.read32(off + doeStatus); err != nil {
				herr = err
				return
			}
			reads.Add(1)
		}
	}()
	c, code, errOut, err := h.gateJSON(ctx, "check", "--audit", f.BDF)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		return failf("%v", err)
	}
	if herr != nil {
		return failf("hammer: %v", herr)
	}
	if code != 3 || c.Decision != "deny" || len(c.Devices) != 1 || !c.Devices[0].Recorded || !slices.Contains(c.codes(), "mailbox-tampered") {
		return failf("check --audit %s with a hammer (%d reads): exit %d, %+v, stderr %q; want exit 3, deny mailbox-tampered, recorded", f.BDF, reads.Load(), code, c, errOut)
	}
	msg := ""
	for _, r := range c.Devices[0].Reasons {
		if r.Code == "mailbox-tampered" {
			msg = r.Message
		}
	}
	if !strings.Contains(msg, fmt.Sprintf("pid %d ", os.Getpid())) {
		return failf("tamper reason does not name the hammer (pid %d): %q", os.Getpid(), msg)
	}
	return passf("%s: check --audit alone -> allow; with a hammer on DOE status 0x%x (%d reads) -> deny mailbox-tampered, exit 3, recorded (%s)",
		f.BDF, off+doeStatus, reads.Load(), firstLine(msg))
}

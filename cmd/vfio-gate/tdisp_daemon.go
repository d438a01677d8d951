package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/daemon"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/pci"
)

// The daemon-side TDISP commands: a TDI locked for an assignment is bound
// to the SPDM session that locked it, and only the daemon outlives a
// command, so lock/start/stop (and the state of a TDI it holds) go through
// its API.
func newTDISPDaemonCmds(e *env, g *globals) []*cobra.Command {
	type op struct {
		name, path, short, long string
		domain                  bool
	}
	ops := []op{
		{"lock", daemon.PathTDISPLock, "Lock a TDI for a domain through the daemon (which then holds its session)",
			`Asks the daemon to open a secure SPDM session with the function (authenticated by the trust
anchors of the policy rule that matches it), lock its TDI for --domain (CONFIG_LOCKED) and keep the
session alive (heartbeat, key update) until "tdisp stop" or the domain's release. With --domain
the domain must hold an allow decision for the function (check it first). A confidential libvirt
domain whose rule has tdisp.require_lock needs none of this: the hook's check locks it.`, true},
		{"start", daemon.PathTDISPStart, "Move a TDI the daemon holds locked to RUN",
			`Asks the daemon to START_INTERFACE the TDI it holds CONFIG_LOCKED (RUN), in the session that locked it.`, false},
		{"stop", daemon.PathTDISPStop, "Stop a TDI the daemon holds (CONFIG_UNLOCKED) and end its session",
			`Asks the daemon to STOP_INTERFACE the TDI it holds (CONFIG_UNLOCKED), end its SPDM session and free the function.`, false},
	}
	var out []*cobra.Command
	for _, o := range ops {
		var domain string
		var timeout time.Duration
		c := &cobra.Command{
			Use:   o.name + " BDF",
			Short: o.short,
			Long: o.long + `

Needs the vfio-gate daemon (--daemon-socket): exit 4 with "needs the vfio-gate daemon" when
none answers. Exit codes: 0 done; 1 usage, or the daemon refused (not-checked, tdi-held,
not-held); 2 the device or its session failed (tdisp-failed); 4 no daemon, or it has no TDISP
session owner (tdisp-unavailable).`,
			Example: fmt.Sprintf("  sudo vfio-gate tdisp %s 0000:3b:00.0%s", o.name, map[bool]string{true: " --domain vm1"}[o.domain]),
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				b, err := pci.ParseBDF(args[0])
				if err != nil {
					return usageErrorf("%v", err)
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				defer cancel()
				st, err := daemon.NewClient(g.daemonSocket).TDISP(ctx, o.path, daemon.TDIRequest{BDF: b, Domain: domain})
				if err != nil {
					return tdispDaemonErr(o.name, err)
				}
				if g.json {
					return writeJSON(e.out, "tdi", st)
				}
				return rpt.WriteTDI(e.out, st, g.daemonSocket)
			},
		}
		if o.domain {
			c.Flags().StringVar(&domain, "domain", "", "the domain the TDI is locked for (its owner in the daemon)")
		}
		c.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "give up after this long")
		out = append(out, c)
	}
	return out
}

// tdispDaemonErr maps a daemon answer to an exit code and says why the
// daemon is needed when it is down.
func tdispDaemonErr(op string, err error) error {
	if errors.Is(err, daemon.ErrNotRunning) {
		return withCode(exitUnavailable, fmt.Errorf("tdisp %s needs the vfio-gate daemon: it holds the SPDM session a locked TDI is bound to; %w", op, err))
	}
	var ae *daemon.APIError
	if errors.As(err, &ae) {
		switch ae.Code {
		case "tdisp-failed":
			return withCode(exitAttestation, err)
		case "tdisp-unavailable":
			return withCode(exitUnavailable, err)
		}
		return withCode(exitInternal, err)
	}
	return withCode(exitUnavailable, err)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/daemon"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/pci"
)

// The daemon-side TDISP commands: a TDI locked for an assignment is bound
// to the SPDM session that locked it, and only the daemon outlives a
// command, so lock/start/stop (and the state of a TDI it holds) go through
// its API. Their long help is help/tdisp-<op>.long.txt and the shared
// help/tdisp-daemon-cmds.txt.
func newTDISPDaemonCmds(e *env, g *globals) []*cobra.Command {
	type op struct {
		name, path, short string
		domain            bool
	}
	ops := []op{
		{"lock", daemon.PathTDISPLock, "Lock a TDI for a domain through the daemon (which then holds its session)", true},
		{"start", daemon.PathTDISPStart, "Move a TDI the daemon holds locked to RUN", false},
		{"stop", daemon.PathTDISPStop, "Stop a TDI the daemon holds (CONFIG_UNLOCKED) and end its session", false},
	}
	var out []*cobra.Command
	for _, o := range ops {
		var domain string
		var timeout time.Duration
		c := &cobra.Command{
			Use:     o.name + " BDF",
			Short:   o.short,
			Long:    helpText("tdisp-"+o.name+".long") + "\n\n" + helpText("tdisp-daemon-cmds"),
			Example: fmt.Sprintf("  sudo vfio-gate tdisp %s 0000:3b:00.0%s", o.name, map[bool]string{true: " --domain vm1"}[o.domain]),
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				st, err := askDaemonTDI(cmd.Context(), g, timeout, o.name, o.path, args[0], domain)
				if err != nil {
					return err
				}
				return jsonOrText(e, g, "tdi", st, func(w io.Writer, st *daemon.TDIStatus) error { return rpt.WriteTDI(w, st, g.daemonSocket) })
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

// askDaemonTDI sends the daemon's TDISP endpoint path a request for the
// TDI of the function bdf (and domain), within timeout; op names the
// command in errors (tdispDaemonErr).
func askDaemonTDI(ctx context.Context, g *globals, timeout time.Duration, op, path, bdf, domain string) (*daemon.TDIStatus, error) {
	b, err := pci.ParseBDF(bdf)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := daemon.NewClient(g.daemonSocket).TDISP(ctx, path, daemon.TDIRequest{BDF: b, Domain: domain})
	if err != nil {
		return nil, tdispDaemonErr(op, err)
	}
	return st, nil
}

// tdispDaemonErr maps a daemon answer to an exit code and says why the
// daemon is needed when it is down.
func tdispDaemonErr(op string, err error) error {
	var ae *daemon.APIError
	switch {
	case errors.Is(err, daemon.ErrNotRunning):
		return withCode(exitUnavailable, fmt.Errorf("tdisp %s needs the vfio-gate daemon: it holds the SPDM session a locked TDI is bound to; %w", op, err))
	case errors.Is(err, daemon.ErrTDISPFailed):
		return withCode(exitAttestation, err)
	case errors.Is(err, daemon.ErrTDISPUnavailable), !errors.As(err, &ae):
		return withCode(exitUnavailable, err) // no session owner, or no answer
	}
	return withCode(exitInternal, err) // refused: not-checked, tdi-held, not-held, ...
}

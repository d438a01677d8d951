package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/audit"
)

// auditFlag is --audit of check and bind: watch each function's config
// space with the eBPF audit while it is attested, and deny it with
// mailbox-tampered when another process touches its DOE mailbox.
type auditFlag struct{ on bool }

func (a *auditFlag) add(c *cobra.Command) {
	c.Flags().BoolVar(&a.on, "audit", false, "watch config-space accesses (eBPF) during attestation: a DOE mailbox access by another process denies with mailbox-tampered (needs root, BTF and kprobes; exit 4 without them)")
}

// tamperAudit is a running audit monitor feeding the gate's Watcher.
type tamperAudit struct {
	m      *audit.Monitor
	w      *audit.Watcher
	cancel context.CancelFunc
	wait   func() error
}

// startTamperAudit loads and attaches the monitor and starts its reader.
// Failures are exit 4: the operator asked for the audit and it cannot run.
func startTamperAudit(g *globals) (*tamperAudit, error) {
	m, err := audit.New(audit.Options{Logger: g.log})
	if err != nil {
		return nil, withCode(exitUnavailable, err)
	}
	tagged, err := m.Attach()
	if err != nil {
		return nil, withCode(exitUnavailable, errors.Join(err, m.Close()))
	}
	w := audit.NewWatcher(m)
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := w.Start(ctx)
	if err != nil {
		cancel()
		return nil, withCode(exitUnavailable, errors.Join(err, m.Close()))
	}
	g.log.Info("tamper audit attached", "mode", m.Mode(), "path_taggers", tagged)
	return &tamperAudit{m: m, w: w, cancel: cancel, wait: wait}, nil
}

func (t *tamperAudit) Close() error {
	if t == nil {
		return nil
	}
	t.cancel()
	return errors.Join(t.wait(), t.m.Close())
}

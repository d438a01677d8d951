package main

import (
	"github.com/spf13/cobra"
)

// auditFlag is --audit of check and bind: watch each function's config
// space with the eBPF audit while it is attested (gate.Setup.Audit), and
// deny it with mailbox-tampered when another process touches its DOE
// mailbox.
type auditFlag struct{ on bool }

func (a *auditFlag) add(c *cobra.Command) {
	c.Flags().BoolVar(&a.on, "audit", false, "watch config-space accesses (eBPF) during attestation: a DOE mailbox access by another process denies with mailbox-tampered (needs root, BTF and kprobes; exit 4 without them)")
}

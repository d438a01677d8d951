package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/doe/cdat"
	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/target"
)

type doeFlags struct {
	lockDir string
	timeout time.Duration
}

func newDOECmd(e *env, g *globals) *cobra.Command {
	f := &doeFlags{}
	c := &cobra.Command{
		Use:   "doe",
		Short: "Low-level DOE mailbox commands (discovery, CXL CDAT)",
		Long: `Raw access to a function's DOE mailboxes, under the same rules as attestation: root, no
kernel driver other than vfio-pci bound, no platform TSM, kernel lockdown "none", and the
per-function lock held for the whole command (--lock-dir; --timeout bounds it, lock wait
included). Otherwise the command refuses with exit 4 and names the blocker. These commands
write to the device's mailbox registers: never run them on a function a VM is using.`,
		Example: `  sudo vfio-gate doe discover 0000:0d:00.0
  sudo vfio-gate --json doe cdat 0000:0d:00.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.PersistentFlags().StringVar(&f.lockDir, "lock-dir", pci.DefaultLockDir, "directory of the per-function lock files")
	c.PersistentFlags().DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on the whole command (lock wait included)")
	c.AddCommand(newDOEDiscoverCmd(e, g, f), newDOECDATCmd(e, g, f))
	return c
}

// withMailboxes opens bdf for raw DOE (target.PCI: the per-function lock,
// MayDriveDOE, a writable config space, discovery) and calls fn with its
// mailboxes.
func withMailboxes(ctx context.Context, e *env, g *globals, f *doeFlags, arg string, fn func(context.Context, []target.Mailbox) error) error {
	bdf, err := pci.ParseBDF(arg)
	if err != nil {
		return usageErrorf("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	log := g.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sys, err := pci.Open(g.sysfsRoot, &pci.Options{ConfigOpener: e.configOpener, Geteuid: e.geteuid, Logger: log})
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	defer sys.Close()
	conn, err := (&target.PCI{System: sys, BDF: bdf, LockDir: f.lockDir, DOE: &doe.Options{Logger: log}}).Open(ctx)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	defer conn.Close()
	return fn(ctx, conn.Mailboxes)
}

// discoverJSON is `doe discover --json` (docs/schema/doe-discover.v1.json).
type discoverJSON struct {
	Mailboxes []discoverEntry `json:"mailboxes"`
}

type discoverEntry struct {
	Offset   jsonhex.U16   `json:"offset"`
	Features []featureJSON `json:"features"`
	Names    []string      `json:"names"`
	Error    string        `json:"error,omitempty"`
}

// featureJSON is a DOE data object protocol: vendor ID and type, in hex.
type featureJSON struct {
	VendorID jsonhex.U16 `json:"vendor_id"`
	Type     jsonhex.U8  `json:"type"`
}

func newDOEDiscoverCmd(e *env, g *globals, f *doeFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "discover BDF",
		Short:   "List the data object protocols of every DOE mailbox of a function",
		Example: "  sudo vfio-gate doe discover 0000:0d:00.0",
		Long: `Runs DOE discovery on every DOE mailbox of BDF and lists the features (vendor, type, name).
Raw DOE is refused (exit 4) when a kernel driver other than vfio-pci is bound, a platform TSM
owns the function, kernel lockdown is active, or not running as root. The per-function lock
is held while the mailboxes are used.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withMailboxes(cmd.Context(), e, g, f, args[0], func(ctx context.Context, mbs []target.Mailbox) error {
				out := []discoverEntry{}
				failed := 0
				for _, mb := range mbs {
					ent := discoverEntry{Offset: jsonhex.U16(mb.Offset()), Features: []featureJSON{}, Names: []string{}}
					if mb.Err != nil {
						ent.Error = mb.Err.Error()
						failed++
					}
					for _, ft := range mb.Features {
						ent.Features = append(ent.Features, featureJSON{VendorID: jsonhex.U16(ft.Vendor), Type: jsonhex.U8(ft.Type)})
						ent.Names = append(ent.Names, ft.Name())
					}
					out = append(out, ent)
				}
				if g.json {
					if err := writeJSON(e.out, "doe-discover", discoverJSON{Mailboxes: out}); err != nil {
						return err
					}
				} else {
					tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "MAILBOX\tVENDOR\tTYPE\tFEATURE")
					for _, ent := range out {
						if ent.Error != "" {
							fmt.Fprintf(tw, "0x%03x\t-\t-\terror: %s\n", uint16(ent.Offset), ent.Error)
						}
						for i, ft := range ent.Features {
							fmt.Fprintf(tw, "0x%03x\t%04x\t%02x\t%s\n", uint16(ent.Offset), uint16(ft.VendorID), uint8(ft.Type), ent.Names[i])
						}
					}
					if err := tw.Flush(); err != nil {
						return err
					}
				}
				if failed > 0 {
					return quietCode(exitUnavailable, fmt.Errorf("discovery failed on %d mailbox(es)", failed))
				}
				return nil
			})
		},
	}
}

type cdatOutput struct {
	Mailbox    jsonhex.U16      `json:"mailbox"`
	Length     uint32           `json:"length"`
	Revision   uint8            `json:"revision"`
	Checksum   uint8            `json:"checksum"`
	ChecksumOK bool             `json:"checksum_ok"`
	Sequence   uint32           `json:"sequence"`
	Structures []cdatStructJSON `json:"structures"`
	Counts     map[string]int   `json:"counts"`
	Raw        string           `json:"raw"`
}

type cdatStructJSON struct {
	Type   uint8  `json:"type"`
	Name   string `json:"name"`
	Offset int    `json:"offset"`
	Length uint16 `json:"length"`
	Body   string `json:"body"`
}

func newDOECDATCmd(e *env, g *globals, f *doeFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "cdat BDF",
		Short:   "Read and check a CXL device's CDAT through DOE Table Access",
		Example: "  sudo vfio-gate doe cdat --json 0000:0d:00.0",
		Long: `Reads the Coherent Device Attribute Table of a CXL function through the DOE "CXL Table Access"
feature (vendor 0x1E98, type 2): entry 0 (the header), then each structure, following the next
handle the device returns until 0xFFFF (bounded). Checks the header length, the checksum (all
bytes sum to 0) and that the structures tile the table, then lists them by type (DSMAS, DSLBIS,
DSMSCIS, DSIS, DSEMTS, SSLBIS). Same rules as "doe discover" for who may touch the mailbox.
Exit 0 when the table is valid, 2 when the device returned a malformed table or bad checksum,
4 when the mailbox cannot be used or has no Table Access feature.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withMailboxes(cmd.Context(), e, g, f, args[0], func(ctx context.Context, mbs []target.Mailbox) error {
				var mb *doe.Mailbox
				for _, m := range mbs {
					if m.Err == nil && m.Supports(doe.FeatureCXLCDAT) {
						mb = m.Mailbox
						break
					}
				}
				if mb == nil {
					return withCode(exitUnavailable, fmt.Errorf("%s: no DOE mailbox offers CXL Table Access (cxl-cdat)", args[0]))
				}
				raw, err := cdat.Read(ctx, mb)
				if err != nil {
					if isCDATMalformed(err) {
						return withCode(exitAttestation, err)
					}
					return withCode(exitUnavailable, err)
				}
				tab, err := cdat.Parse(raw)
				if err != nil {
					return withCode(exitAttestation, err)
				}
				out := cdatOutput{Mailbox: jsonhex.U16(mb.Offset()), Length: tab.Length, Revision: tab.Revision, Checksum: tab.Checksum,
					ChecksumOK: true, Sequence: tab.Sequence, Structures: []cdatStructJSON{}, Counts: map[string]int{},
					Raw: hex.EncodeToString(raw)}
				for _, s := range tab.Structures {
					out.Structures = append(out.Structures, cdatStructJSON{Type: s.Type, Name: s.Name, Offset: s.Offset,
						Length: s.Length, Body: hex.EncodeToString(s.Body)})
					out.Counts[s.Name]++
				}
				if g.json {
					return writeJSON(e.out, "doe-cdat", out)
				}
				fmt.Fprintf(e.out, "CDAT via mailbox 0x%03x: %d bytes, revision %d, checksum 0x%02x ok, sequence %d, %d structures\n",
					out.Mailbox, out.Length, out.Revision, out.Checksum, out.Sequence, len(out.Structures))
				tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "  OFFSET\tTYPE\tNAME\tLENGTH")
				for _, s := range out.Structures {
					fmt.Fprintf(tw, "  0x%04x\t%d\t%s\t%d\n", s.Offset, s.Type, s.Name, s.Length)
				}
				return tw.Flush()
			})
		},
	}
}

func isCDATMalformed(err error) bool {
	var ce *cdat.Error
	return errors.As(err, &ce)
}

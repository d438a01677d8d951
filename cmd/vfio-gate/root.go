package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	rpt "github.com/vfio-gate/vfio-gate/internal/report"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/internal/buildinfo"
	"github.com/vfio-gate/vfio-gate/internal/clitree"
	"github.com/vfio-gate/vfio-gate/internal/doctor"
	"github.com/vfio-gate/vfio-gate/internal/journal"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/vfio"
)

// env is what the process gives the commands; tests build their own.
type env struct {
	in     io.Reader
	out    io.Writer
	errw   io.Writer
	getenv func(string) string
	// configOpener, if set, serves config spaces instead of sysfs (tests
	// and the demo's software devices); see pci.Options.ConfigOpener.
	configOpener func(pci.BDF) (pci.ConfigSpace, io.Closer, error)
	// geteuid, if set, replaces os.Geteuid for the raw-DOE rule (tests).
	geteuid func() int
	// vfioApply, if set, replaces the binding options (tests play the
	// kernel through its Write hook and DevVFIO).
	vfioApply *vfio.ApplyOptions
	// policyLoad, if set, adjusts policy loading (tests of check/bind on
	// fixture trees skip the owner check).
	policyLoad *policy.LoadOptions
	// doctor, if set, adjusts what doctor looks at (tests: fake libvirt,
	// daemon, BPF).
	doctor func(*doctor.Host)
}

// globals are the flags every command accepts, before or after its name.
type globals struct {
	sysfsRoot    string
	policy       string
	tpm          string
	tpmThrowaway bool // --tpm-throwaway: "sim" may record (the demo, tests)
	stateDir     string
	daemonSocket string
	json         bool
	logLevel     string
	config       string
	log          *slog.Logger
}

// write prints doc on e.out: the JSON document of kind with --json, else
// its text form.
func (g *globals) write(e *env, kind string, doc any, text func(io.Writer)) error {
	if g.json {
		return rpt.WriteJSON(e.out, kind, doc)
	}
	text(e.out)
	return nil
}

// fail ends a command that printed its answer with code: quietly with
// --json (the document is the answer), else with err's message.
func (g *globals) fail(code int, err error) error {
	if g.json {
		return quietCode(code, err)
	}
	return withCode(code, err)
}

var exitCodesHelp = helpText("exit-codes")

func newRootCmd(e *env) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "vfio-gate",
		Short:         "Attest a PCI function (DOE/SPDM/TDISP) before it is bound to vfio-pci",
		Long:          helpText("root.long", "configHelp", configHelp, "exitCodesHelp", exitCodesHelp),
		Example:       helpText("root.example"),
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			euid := os.Geteuid
			if e.geteuid != nil {
				euid = e.geteuid
			}
			cf, err := loadConfig(g.config, cmd.Flags().Changed("config"), euid())
			if err != nil {
				return err
			}
			if cf != nil {
				if err := cf.apply(cmd.Root(), cmd); err != nil {
					return err
				}
			}
			lvl, ok := journal.ParseLevel(g.logLevel)
			if !ok {
				return usageErrorf("--log-level %q: want debug, info, warn or error", g.logLevel)
			}
			g.log = slog.New(journal.NewHandler(e.errw, e.getenv, lvl))
			slog.SetDefault(g.log)
			return nil
		},
	}
	root.SetVersionTemplate("vfio-gate {{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&g.sysfsRoot, "sysfs-root", "/sys", "root of the sysfs tree (tests and the demo use a fixture tree)")
	pf.StringVar(&g.policy, "policy", "/etc/vfio-gate/policy.yaml", "policy file")
	pf.StringVar(&g.tpm, "tpm", "/dev/tpmrm0", "TPM: /dev/tpmrm0 | tcp:HOST:PORT (swtpm) | unix:PATH | sim:throwaway")
	pf.BoolVar(&g.tpmThrowaway, "tpm-throwaway", false, `allow --tpm sim (an in-process TPM that forgets every record at exit) for the daemon and the commands that record`)
	pf.StringVar(&g.stateDir, "state-dir", "/var/lib/vfio-gate", "state directory (event log, journal)")
	pf.StringVar(&g.daemonSocket, "daemon-socket", "/run/vfio-gate/daemon.sock", "unix socket of the vfio-gate daemon")
	pf.BoolVar(&g.json, "json", false, "machine-readable JSON output on stdout")
	pf.StringVar(&g.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn, error")
	pf.StringVar(&g.config, "config", DefaultConfig, "configuration file (flags it sets yield to the command line; read when it exists)")

	root.SetHelpTemplate(root.HelpTemplate())
	root.SetUsageTemplate(clitree.GlobalFlagsOnce(root))
	for _, c := range commands(e, g) {
		root.AddCommand(c)
		clitree.StrictGroups(c)
	}
	return root
}

// commands lists the subcommands; each lives in its own file.
func commands(e *env, g *globals) []*cobra.Command {
	return []*cobra.Command{
		newVersionCmd(e, g),
		newLibvirtHookCmd(e, g),
		newInstallHookCmd(e, g),
		newUninstallHookCmd(e, g),
		newStatusCmd(e, g),
		newAuditCmd(e, g),
		newScanCmd(e, g),
		newLogCmd(e, g),
		newEvidenceCmd(e, g),
		newPolicyCmd(e, g),
		newEmulateCmd(e, g),
		newAttestCmd(e, g),
		newDOECmd(e, g),
		newCheckCmd(e, g),
		newBindCmd(e, g),
		newReleaseCmd(e, g),
		newExplainCmd(e, g),
		newDemoCmd(e, g),
		newDaemonCmd(e, g),
		newDoctorCmd(e, g),
		newGenDocsCmd(e, g),
		newLibvirtCmd(e, g),
		newTDISPCmd(e, g),
	}
}

// Set at link time by scripts/package (-ldflags "-X main.buildVersion=...
// -X main.buildCommit=..."): the build info has no VCS revision when GOFLAGS
// holds -buildvcs=false or the tree is not a git checkout.
var buildVersion, buildCommit string

func version() string { return buildinfo.Current(buildVersion, buildCommit) }

func newVersionCmd(e *env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Long:    helpText("version.long"),
		Example: "  vfio-gate version\n  vfio-gate --json version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.json {
				return rpt.WriteJSON(e.out, "version", map[string]string{"version": version()})
			}
			_, err := fmt.Fprintf(e.out, "vfio-gate %s\n", version())
			return err
		},
	}
}

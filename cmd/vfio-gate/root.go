package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vfio-gate/vfio-gate/internal/buildinfo"
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
		return writeJSON(e.out, kind, doc)
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
	root.SetUsageTemplate(globalFlagsOnce(root))
	for _, c := range commands(e, g) {
		root.AddCommand(c)
		strictGroups(c)
	}
	return root
}

// strictGroups makes every command that only groups subcommands refuse an
// unknown subcommand (usage error, exit 1) instead of printing its help and
// exiting 0; with no arguments it prints its help.
func strictGroups(c *cobra.Command) {
	if !c.HasSubCommands() {
		return
	}
	if c.RunE == nil && c.Run == nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return nil
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	// cobra answers --help before it validates arguments, so
	// "doe discovery --help" (a typo) would print doe's help and exit 0.
	// This help flag reads as unset when the arguments left over fail the
	// command's Args: the usage error is reported instead.
	c.Flags().VarPF(&groupHelp{cmd: c}, "help", "h", "help for "+c.Name()).NoOptDefVal = "true"
	for _, sub := range c.Commands() {
		strictGroups(sub)
	}
}

// groupHelp is the --help flag of a command that only groups subcommands.
type groupHelp struct {
	cmd *cobra.Command
	set bool
}

func (h *groupHelp) Set(s string) (err error) { h.set, err = strconv.ParseBool(s); return err }
func (h *groupHelp) Type() string             { return "bool" }
func (h *groupHelp) IsBoolFlag() bool         { return true }

// String is what cobra reads (GetBool) after parsing the flags.
func (h *groupHelp) String() string {
	args := h.cmd.Flags().Args()
	return strconv.FormatBool(h.set && (len(args) == 0 || h.cmd.ValidateArgs(args) == nil))
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

// parentFlagUsagesOnce registers globalFlagsOnce's template function.
var parentFlagUsagesOnce sync.Once

// globalFlagsOnce returns the usage template with the subcommands' "Global
// Flags" listing replaced by one line naming the root's flags: they are
// documented once, in the root help. Flags a parent command passes down (log
// --pcr, doe --lock-dir) are still listed in full.
func globalFlagsOnce(root *cobra.Command) string {
	var names []string
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) { names = append(names, "--"+f.Name) })
	// cobra's template functions are process-wide: registered once (two
	// commands built at once, as the tests run them, raced on its map), and
	// the function asks each command for its own root.
	parentFlagUsagesOnce.Do(func() {
		cobra.AddTemplateFunc("parentFlagUsages", func(c *cobra.Command) string {
			fs := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
			c.InheritedFlags().VisitAll(func(f *pflag.Flag) {
				if c.Root().PersistentFlags().Lookup(f.Name) == nil {
					fs.AddFlag(f)
				}
			})
			return strings.TrimRight(fs.FlagUsages(), " \n")
		})
	})
	const block = "Global Flags:\n{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}"
	t := root.UsageTemplate()
	if !strings.Contains(t, block) {
		return t // a cobra whose template changed: keep its own listing
	}
	return strings.Replace(t, block, `{{with parentFlagUsages .}}Flags of the parent command:
{{.}}

{{end}}Global flags: `+strings.Join(names, " ")+` (see "vfio-gate --help")`, 1)
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
				return writeJSON(e.out, "version", map[string]string{"version": version()})
			}
			_, err := fmt.Fprintf(e.out, "vfio-gate %s\n", version())
			return err
		},
	}
}

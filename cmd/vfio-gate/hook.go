package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/daemon"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
)

func newLibvirtHookCmd(e *env, g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "libvirt-hook DOMNAME OPERATION SUBOP EXTRA",
		Short: "The libvirt qemu hook (domain XML on stdin); installed by install-hook",
		Long: `libvirt-hook is what libvirt runs, through hooks/qemu.d/vfio-gate, for every qemu domain
lifecycle step. It reads the domain XML on stdin and asks the vfio-gate daemon:

  prepare begin   check every host PCI function (<hostdev type='pci'>, <interface type='hostdev'>),
                  except managed='yes' ones still on a host driver, which are deferred; any deny
                  exits 1 and libvirt refuses to start the domain, showing our stderr
  start begin     check the functions prepare deferred, now on vfio-pci; every function must
                  be allowed, else exit 1 (libvirt aborts the start, calls release end and gives
                  managed functions back to their host drivers)
  started begin   start the TEE device interfaces the daemon locked for the domain
  release end     release every function the domain held (also after a failed start)
  anything else   exit 0 at once

It never calls libvirtd (that would deadlock) and reads no environment. A daemon that is not up
yet, or still starting (recovering), is waited for within --budget (boot, restart); after that,
prepare and start deny: "vfio-gate daemon is not running (systemctl start vfio-gate)". Release
waits only for a daemon that answers "starting" (one that is down holds nothing, and reconciles
with libvirt when it starts).
Malformed XML, empty stdin or wrong arguments deny at prepare and start begin.

Two phases: vfio-gate never drives a DOE mailbox a kernel driver owns, and at prepare libvirt
has not yet moved a managed='yes' hostdev off its host driver (nvme, mlx5_core, cxl_pci, ...).
So the daemon answers such a function "deferred" at prepare (not attested, not recorded in the
TPM, reserved against other domains) and checks it at start begin, when libvirt has moved it
to vfio-pci (which neither uses nor exposes DOE); a non-zero exit there still aborts the start.
A deferred function still on a host driver at start begin is denied mailbox-owned (fail closed).
A function already on vfio-pci (or on no driver) is checked at prepare, whatever managed says.
managed='no' on a host driver: libvirt never moves it, so it is denied mailbox-owned at prepare;
run "vfio-gate bind --domain NAME BDF" first (moves its IOMMU group to vfio-pci, attests it
there, keeps it on vfio-pci on allow, gives it back on deny), or declare it managed='yes'.
The hook's check never moves a function off its host driver by itself. A function without
any DOE mailbox is judged by the policy's defaults (no-cma) with read-only config space access.

Not gated: <interface type='network'> backed by a hostdev pool: libvirt picks the VF after
prepare and the hook cannot ask it. Use <hostdev> or <interface type='hostdev'> with a source
address for devices that must be gated; "vfio-gate libvirt preflight" warns about such
interfaces, and the daemon reports hostdevs it finds on running domains without a decision.`,
		Example: `  # what libvirt runs (domain XML on stdin)
  vfio-gate libvirt-hook --daemon-socket /run/vfio-gate/daemon.sock vm1 prepare begin - < vm1.xml
  vfio-gate libvirt-hook --daemon-socket /run/vfio-gate/daemon.sock vm1 start begin - < vm1.xml`,
		Args:                  cobra.ArbitraryArgs,
		DisableFlagsInUseLine: true,
		// libvirt's arguments are not ours to parse: a domain may be named
		// "--help", "--", "--budget=1h" or "--daemon-socket=/tmp/x". Flags are
		// read by lvhook.ParseArgs, which takes only the fixed ones the drop-in writes
		// before "--"; everything after it is libvirt's.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
				return cmd.Help() // a person asking; libvirt always passes four arguments
			}
			budget, err := cmd.Flags().GetDuration("budget") // the default, or the config file's
			if err != nil {
				return err
			}
			ha, err := lvhook.ParseArgs(args, g.daemonSocket, budget)
			if err != nil {
				fmt.Fprintf(e.errw, "vfio-gate: %v: denying\n", err)
				return quietCode(1, err)
			}
			h := &lvhook.Hook{Client: lvhook.DaemonClient{C: daemon.NewClient(ha.Socket)}, Budget: ha.Budget}
			if code := h.Run(cmd.Context(), ha.Libvirt, e.in, e.errw); code != 0 {
				return quietCode(code, fmt.Errorf("hook exit %d", code))
			}
			return nil
		},
	}
	// Parsed by lvhook.ParseArgs, not by cobra; its value here is the default (or
	// the config file's libvirt-hook: budget), which the command line overrides.
	c.Flags().Duration("budget", lvhook.DefaultBudget, "time budget for one hook invocation (deny when exceeded)")
	return c
}

func newInstallHookCmd(e *env, g *globals) *cobra.Command {
	var dir, binary string
	var dispatcher, reload bool
	c := &cobra.Command{
		Use:   "install-hook",
		Short: "Install the libvirt qemu hook drop-in (hooks/qemu.d/vfio-gate)",
		Long: `install-hook writes <libvirt-dir>/hooks/qemu.d/vfio-gate, a two-line script that runs
"vfio-gate libvirt-hook". It never overwrites an existing hooks/qemu nor a drop-in it did not
write. When no hooks/qemu exists and the installed libvirt (libvirtd --version) predates 6.5,
which does not run qemu.d/ drop-ins itself, it also creates a hooks/qemu dispatcher that does,
and says so; on newer libvirt it says it created none (there a dispatcher would run every
drop-in twice). --dispatcher creates it whatever the version (only when none exists). libvirt
reads hooks at start: reload it, or pass --reload (SIGHUP to whichever of libvirtd and
virtqemud runs, found by /run/NAME.pid and checked against /proc/PID/comm).`,
		Example: `  vfio-gate install-hook --reload
  vfio-gate install-hook --libvirt-dir /etc/libvirt --binary /usr/local/bin/vfio-gate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if binary == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				binary, _ = filepath.EvalSymlinks(exe)
			}
			res, err := lvhook.InstallHook(lvhook.InstallOptions{LibvirtDir: dir, Binary: binary, DaemonSocket: g.daemonSocket, Dispatcher: dispatcher,
				LibvirtVersion: lvhook.InstalledVersion(cmd.Context())})
			if err != nil {
				return err
			}
			if reload {
				done, err := lvhook.SystemReloader().Reload()
				res.Notes = append(res.Notes, done...)
				if err != nil {
					res.Notes = append(res.Notes, "reload failed: "+err.Error())
				}
			}
			doc := rpt.NewInstallHook(res)
			if g.json {
				return writeJSON(e.out, "install-hook", doc)
			}
			doc.WriteText(e.out)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "libvirt-dir", "/etc/libvirt", "libvirt configuration directory")
	c.Flags().StringVar(&binary, "binary", "", "absolute path of vfio-gate for the hook to run (default: this executable)")
	c.Flags().BoolVar(&dispatcher, "dispatcher", false, "create hooks/qemu running qemu.d/* even when libvirt's version is >= 6.5 or unknown (only when none exists)")
	c.Flags().BoolVar(&reload, "reload", false, "send SIGHUP to the libvirt daemon that runs (libvirtd, or virtqemud with modular daemons) so it sees the hook")
	return c
}

func newUninstallHookCmd(e *env, g *globals) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "uninstall-hook",
		Short: "Remove exactly what install-hook installed",
		Long: `uninstall-hook removes hooks/qemu.d/vfio-gate and the hooks/qemu dispatcher when install-hook
created them (files carrying its marker); anything else is left alone.`,
		Example: `  vfio-gate uninstall-hook`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			removed, err := lvhook.UninstallHook(dir)
			if err != nil {
				return err
			}
			doc := rpt.UninstallHook{Removed: removed}
			if g.json {
				return writeJSON(e.out, "uninstall-hook", doc)
			}
			doc.WriteText(e.out)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "libvirt-dir", "/etc/libvirt", "libvirt configuration directory")
	return c
}

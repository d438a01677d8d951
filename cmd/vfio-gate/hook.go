package main

import (
	"fmt"

	"github.com/spf13/cobra"

	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
)

func newLibvirtHookCmd(e *env, g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:                   "libvirt-hook DOMNAME OPERATION SUBOP EXTRA",
		Short:                 "The libvirt qemu hook (domain XML on stdin); installed by install-hook",
		Long:                  helpText("libvirt-hook.long"),
		Example:               helpText("libvirt-hook.example"),
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
			if code := lvhook.Main(cmd.Context(), args, g.daemonSocket, budget, e.in, e.errw); code != 0 {
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
	var o lvhook.InstallOptions
	c := &cobra.Command{
		Use:     "install-hook",
		Short:   "Install the libvirt qemu hook drop-in (hooks/qemu.d/vfio-gate)",
		Long:    helpText("install-hook.long"),
		Example: helpText("install-hook.example"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.DaemonSocket, o.LibvirtVersion = g.daemonSocket, lvhook.InstalledVersion(cmd.Context())
			res, err := lvhook.InstallHook(o)
			if err != nil {
				return err
			}
			doc := rpt.NewInstallHook(res)
			return g.write(e, "install-hook", doc, doc.WriteText)
		},
	}
	c.Flags().StringVar(&o.LibvirtDir, "libvirt-dir", "/etc/libvirt", "libvirt configuration directory")
	c.Flags().StringVar(&o.Binary, "binary", "", "absolute path of vfio-gate for the hook to run (default: this executable)")
	c.Flags().BoolVar(&o.Dispatcher, "dispatcher", false, "create hooks/qemu running qemu.d/* even when libvirt's version is >= 6.5 or unknown (only when none exists)")
	c.Flags().BoolVar(&o.Reload, "reload", false, "send SIGHUP to the libvirt daemon that runs (libvirtd, or virtqemud with modular daemons) so it sees the hook")
	return c
}

func newUninstallHookCmd(e *env, g *globals) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:     "uninstall-hook",
		Short:   "Remove exactly what install-hook installed",
		Long:    helpText("uninstall-hook.long"),
		Example: helpText("uninstall-hook.example"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			removed, err := lvhook.UninstallHook(dir)
			if err != nil {
				return err
			}
			doc := rpt.UninstallHook{Removed: removed}
			return g.write(e, "uninstall-hook", doc, doc.WriteText)
		},
	}
	c.Flags().StringVar(&dir, "libvirt-dir", "/etc/libvirt", "libvirt configuration directory")
	return c
}

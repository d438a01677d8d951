package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/audit"
	"github.com/vfio-gate/vfio-gate/daemon"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/internal/doctor"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// DoctorSchema names the shape of `doctor --json`.
const DoctorSchema = doctor.Schema

func newDoctorCmd(e *env, g *globals) *cobra.Command {
	var libvirtDir string
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check that this host is ready for vfio-gate, and say what to fix",
		Long: `doctor checks the host as an operator would before trusting vfio-gate with it, and prints one
line per check: ok, warn or fail, with what to do about anything not ok.

  iommu        IOMMU enabled (<sysfs>/class/iommu) and IOMMU groups present
  vfio-pci     the vfio-pci driver loaded or loadable
  lockdown     kernel lockdown mode and what it implies (integrity/confidentiality: no raw DOE)
  tpm          --tpm opens, and the policy's PCR is allocated in a SHA-256 (and SHA-384) bank
  policy       --policy loads (valid, root-owned, not group/other writable)
  state-dir    --state-dir root-owned, not group/other writable
  libvirt      libvirt's version; hooks/qemu.d/vfio-gate installed, executable, pointing at an
               existing binary, and not shadowed (libvirt < 6.5 runs only hooks/qemu)
  daemon       the daemon answers on --daemon-socket and is ready; which TPM it records into
  bpf          the audit BPF programs load (needs root and /sys/kernel/btf/vmlinux)

--json prints {"schema": "` + DoctorSchema + `", "ok": BOOL, "checks": [{"name", "status",
"message", "fix"}]}. Exit 0 when no check fails (warnings allowed), 1 otherwise.`,
		Example: `  sudo vfio-gate doctor
  sudo vfio-gate doctor --json | jq '.checks[] | select(.status != "ok")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, tpmErr := recordingTPM(g)
			h := &doctor.Host{Sysfs: g.sysfsRoot, LibvirtDir: libvirtDir, Policy: g.policy, StateDir: g.stateDir,
				TPM: spec, TPMErr: tpmErr, TPMName: tpmName(g),
				LibvirtVersion: lvhook.InstalledVersion, OpenTPM: tpm.Open,
				DaemonStatus: func(ctx context.Context) (*daemon.Status, error) {
					ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
					return daemon.NewClient(g.daemonSocket).Status(ctx)
				},
				Geteuid: e.geteuid, PolicyLoad: e.policyLoad,
				BPFProbe: func() error {
					m, err := audit.New(audit.Options{})
					if err != nil {
						return err
					}
					return m.Close()
				}}
			if h.Geteuid == nil {
				h.Geteuid = os.Geteuid
			}
			if e.doctor != nil {
				e.doctor(h)
			}
			rep := doctor.Run(cmd.Context(), h)
			if g.json {
				if err := writeJSON(e.out, "doctor", rep); err != nil {
					return err
				}
			} else {
				rpt.WriteDoctorText(e.out, rep)
			}
			if !rep.OK {
				return quietCode(exitInternal, errors.New("doctor: a check failed"))
			}
			return nil
		},
	}
	c.Flags().StringVar(&libvirtDir, "libvirt-dir", "/etc/libvirt", "libvirt configuration directory")
	return c
}

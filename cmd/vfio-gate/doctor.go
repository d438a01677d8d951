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
		Use:     "doctor",
		Short:   "Check that this host is ready for vfio-gate, and say what to fix",
		Long:    helpText("doctor.long", "DoctorSchema", DoctorSchema),
		Example: helpText("doctor.example"),
		Args:    cobra.NoArgs,
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

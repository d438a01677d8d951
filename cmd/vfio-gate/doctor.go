package main

import (
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/audit"
	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/gate"
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
			spec, tpmErr := gate.RecordingTPM(g.tpm, g.tpmThrowaway)
			h := &doctor.Host{Sysfs: g.sysfsRoot, LibvirtDir: libvirtDir, Policy: g.policy, StateDir: g.stateDir,
				TPM: spec, TPMErr: tpmErr, TPMName: gate.TPMName(g.tpm, g.tpmThrowaway),
				LibvirtVersion: lvhook.InstalledVersion, OpenTPM: tpm.Open, DaemonStatus: daemon.NewClient(g.daemonSocket).Status,
				Geteuid: e.geteuid, PolicyLoad: e.policyLoad, BPFProbe: audit.Probe}
			if e.doctor != nil {
				e.doctor(h)
			}
			rep := doctor.Run(cmd.Context(), h)
			if err := g.write(e, "doctor", rep, func(w io.Writer) { rpt.WriteDoctorText(w, rep) }); err != nil {
				return err
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

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/audit"
	"github.com/vfio-gate/vfio-gate/daemon"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// DoctorSchema names the shape of `doctor --json`.
const DoctorSchema = "vfio-gate/doctor/v1"

// Doctor check results.
const (
	checkOK   = "ok"
	checkWarn = "warn"
	checkFail = "fail"
)

// doctorCheck is one line of the report.
type doctorCheck struct {
	Name    string `json:"name"`
	Status  string `json:"status"` // ok | warn | fail
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"` // what to do (warn and fail)
}

type doctorReport struct {
	Schema string        `json:"schema"`
	OK     bool          `json:"ok"` // no check failed
	Checks []doctorCheck `json:"checks"`
}

// doctorHost is what doctor looks at; tests replace the pieces (the sysfs
// root is the global --sysfs-root).
type doctorHost struct {
	sysfs          string
	libvirtDir     string
	libvirtVersion func(context.Context) string
	openTPM        func(string) (transport.TPMCloser, error)
	daemonStatus   func(context.Context) (*daemon.Status, error)
	geteuid        func() int
	bpfProbe       func() error
	policyLoad     *policy.LoadOptions
	// ownerUID is who must own the state dir: root (tests: themselves).
	ownerUID uint32
}

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
			h := &doctorHost{sysfs: g.sysfsRoot, libvirtDir: libvirtDir, libvirtVersion: libvirtVersion, openTPM: tpm.Open,
				daemonStatus: func(ctx context.Context) (*daemon.Status, error) {
					ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
					return daemon.NewClient(g.daemonSocket).Status(ctx)
				},
				geteuid: e.geteuid, policyLoad: e.policyLoad,
				bpfProbe: func() error {
					m, err := audit.New(audit.Options{})
					if err != nil {
						return err
					}
					return m.Close()
				}}
			if h.geteuid == nil {
				h.geteuid = os.Geteuid
			}
			if e.doctor != nil {
				e.doctor(h)
			}
			rep := runDoctor(cmd.Context(), h, g)
			if g.json {
				if err := writeJSON(e.out, "doctor", rep); err != nil {
					return err
				}
			} else {
				for _, c := range rep.Checks {
					fmt.Fprintf(e.out, "%-4s  %-9s  %s\n", c.Status, c.Name, c.Message)
					if c.Fix != "" {
						fmt.Fprintf(e.out, "                 -> %s\n", c.Fix)
					}
				}
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

// runDoctor runs every check; none stops the others.
func runDoctor(ctx context.Context, h *doctorHost, g *globals) *doctorReport {
	rep := &doctorReport{Schema: DoctorSchema, OK: true}
	add := func(name, status, msg, fix string) {
		rep.Checks = append(rep.Checks, doctorCheck{Name: name, Status: status, Message: msg, Fix: fix})
		if status == checkFail {
			rep.OK = false
		}
	}
	h.checkIOMMU(add)
	h.checkVFIO(add)
	h.checkLockdown(add)
	pol := h.checkPolicy(g, add)
	h.checkTPM(ctx, g, pol, add)
	h.checkStateDir(g, add)
	h.checkLibvirt(ctx, add)
	h.checkDaemon(ctx, add)
	h.checkBPF(add)
	return rep
}

type addFunc func(name, status, msg, fix string)

func (h *doctorHost) path(rel string) string { return filepath.Join(h.sysfs, rel) }

func (h *doctorHost) checkIOMMU(add addFunc) {
	units, _ := os.ReadDir(h.path("class/iommu"))
	groups, err := os.ReadDir(h.path("kernel/iommu_groups"))
	switch {
	case err != nil || len(groups) == 0:
		add("iommu", checkFail, "no IOMMU groups under "+h.path("kernel/iommu_groups"),
			"enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on (Intel) or amd_iommu=on; vfio-pci needs an IOMMU")
	case len(units) == 0:
		add("iommu", checkWarn, fmt.Sprintf("%d IOMMU groups but no IOMMU unit in %s", len(groups), h.path("class/iommu")),
			"check dmesg for DMAR/AMD-Vi: groups without an IOMMU unit suggest a software-only setup")
	default:
		add("iommu", checkOK, fmt.Sprintf("IOMMU enabled: %d unit(s), %d group(s)", len(units), len(groups)), "")
	}
}

func (h *doctorHost) checkVFIO(add addFunc) {
	if _, err := os.Stat(h.path("bus/pci/drivers/vfio-pci")); err == nil {
		add("vfio-pci", checkOK, "vfio-pci driver registered", "")
		return
	}
	if _, err := os.Stat(h.path("module/vfio_pci")); err == nil {
		add("vfio-pci", checkWarn, "vfio_pci module present but its driver is not registered", "modprobe vfio-pci")
		return
	}
	add("vfio-pci", checkWarn, "vfio-pci is not loaded", "modprobe vfio-pci (and add it to /etc/modules-load.d/ to load at boot)")
}

func (h *doctorHost) checkLockdown(add addFunc) {
	b, err := os.ReadFile(h.path("kernel/security/lockdown"))
	if errors.Is(err, fs.ErrNotExist) {
		add("lockdown", checkOK, "no lockdown LSM: user-space DOE allowed (root, function on vfio-pci or no driver)", "")
		return
	}
	if err != nil {
		add("lockdown", checkWarn, "cannot read lockdown state: "+err.Error(), "run doctor as root")
		return
	}
	mode, err := pci.ParseLockdown(string(b))
	switch {
	case err != nil:
		add("lockdown", checkWarn, err.Error(), "")
	case mode == "none":
		add("lockdown", checkOK, "lockdown none: user-space DOE allowed (root, function on vfio-pci or no driver)", "")
	default:
		add("lockdown", checkWarn, "lockdown "+mode+": config-space writes from user space fail, so raw DOE/SPDM cannot run; attested rules deny mailbox-unavailable unless the kernel PCI TSM owns SPDM",
			"boot with lockdown=none if you rely on user-space attestation, or use a kernel with the PCI TSM")
	}
}

// checkPolicy loads --policy as the daemon would (permissions included)
// and returns it for the TPM check (nil when it does not load).
func (h *doctorHost) checkPolicy(g *globals, add addFunc) *policy.Policy {
	p, err := policy.Load(g.policy, h.policyLoad)
	if err != nil {
		add("policy", checkFail, err.Error(), "fix the file (vfio-gate policy check), chown root and chmod go-w it and its directory")
		return nil
	}
	msg := fmt.Sprintf("%s: valid, mode %s, %d rule(s), confidential default %s", g.policy, p.Mode, len(p.Rules), p.DefaultConfidential)
	if len(p.Warnings) > 0 {
		var ws []string
		for _, w := range p.Warnings {
			ws = append(ws, fmt.Sprintf("line %d: %s", w.Line, w.Message))
		}
		add("policy", checkWarn, msg+"; "+strings.Join(ws, "; "), "see vfio-gate policy check")
		return p
	}
	add("policy", checkOK, msg, "")
	return p
}

func (h *doctorHost) checkTPM(_ context.Context, g *globals, p *policy.Policy, add addFunc) {
	spec, err := recordingTPM(g)
	if err != nil {
		add("tpm", checkFail, err.Error(), "set tpm: /dev/tpmrm0 in /etc/vfio-gate/vfio-gate.yaml")
		return
	}
	t, err := h.openTPM(spec)
	if err != nil {
		add("tpm", checkFail, err.Error(), "load the TPM driver (tpm_crb or tpm_tis), or point --tpm at swtpm (tcp:HOST:PORT)")
		return
	}
	defer t.Close()
	pcr := tpm.DefaultPCR
	if p != nil && p.PCR > 0 {
		pcr = p.PCR
	}
	banks, err := pcrBanks(t, pcr)
	if err != nil {
		add("tpm", checkFail, fmt.Sprintf("%s: reading the PCR allocation: %v", tpmName(g), err), "check the TPM (tpm2_getcap pcrs)")
		return
	}
	msg := fmt.Sprintf("%s: PCR %d allocated in %s", tpmName(g), pcr, strings.Join(banks, ", "))
	switch {
	case !contains(banks, "sha256"):
		add("tpm", checkFail, msg+"; no SHA-256 bank", "allocate the SHA-256 PCR bank (tpm2_pcrallocate sha256:all+sha384:all) and reboot")
	case !contains(banks, "sha384"):
		add("tpm", checkWarn, msg+"; no SHA-384 bank (decisions are extended into SHA-256 only)", "tpm2_pcrallocate sha256:all+sha384:all, then reboot")
	case spec == "sim":
		add("tpm", checkWarn, msg, "a throwaway simulator forgets every record at exit: use /dev/tpmrm0")
	default:
		add("tpm", checkOK, msg, "")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// pcrBanks lists the hash banks in which pcr is allocated.
func pcrBanks(t transport.TPM, pcr int) ([]string, error) {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}.Execute(t)
	if err != nil {
		return nil, err
	}
	sel, err := rsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range sel.PCRSelections {
		if pcr/8 >= len(s.PCRSelect) || s.PCRSelect[pcr/8]&(1<<(pcr%8)) == 0 {
			continue
		}
		switch s.Hash {
		case tpm2.TPMAlgSHA1:
			out = append(out, "sha1")
		case tpm2.TPMAlgSHA256:
			out = append(out, "sha256")
		case tpm2.TPMAlgSHA384:
			out = append(out, "sha384")
		case tpm2.TPMAlgSHA512:
			out = append(out, "sha512")
		default:
			out = append(out, fmt.Sprintf("alg-%#04x", uint16(s.Hash)))
		}
	}
	return out, nil
}

// safeDir reports why a directory is not safe for uid's secrets ("" when it is).
func safeDir(path string, uid uint32) string {
	fi, err := os.Stat(path)
	if err != nil {
		return err.Error()
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return path + " is not a directory"
	case ok && st.Uid != uid:
		return fmt.Sprintf("%s is owned by uid %d, not %d", path, st.Uid, uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Sprintf("%s is group/other writable (%v)", path, fi.Mode().Perm())
	}
	return ""
}

func (h *doctorHost) checkStateDir(g *globals, add addFunc) {
	if _, err := os.Stat(g.stateDir); errors.Is(err, fs.ErrNotExist) {
		add("state-dir", checkWarn, g.stateDir+" does not exist yet", "the unit creates it (StateDirectory=vfio-gate); or mkdir -m 0700 "+g.stateDir)
		return
	}
	if why := safeDir(g.stateDir, h.ownerUID); why != "" {
		add("state-dir", checkFail, why, "chown root:root "+g.stateDir+" && chmod 0700 "+g.stateDir)
		return
	}
	add("state-dir", checkOK, g.stateDir+": owner and mode safe (not group/other writable)", "")
}

func (h *doctorHost) checkLibvirt(ctx context.Context, add addFunc) {
	v := h.libvirtVersion(ctx)
	vmsg := "libvirt " + v
	if v == "" {
		vmsg = "libvirt version unknown (libvirtd --version did not answer)"
	}
	drop := filepath.Join(h.libvirtDir, "hooks", "qemu.d", lvhook.DropInName)
	b, err := os.ReadFile(drop)
	if err != nil {
		add("libvirt", checkWarn, vmsg+"; hook not installed ("+drop+")", "vfio-gate install-hook --reload")
		return
	}
	fi, _ := os.Stat(drop)
	if fi == nil || fi.Mode().Perm()&0o111 == 0 {
		add("libvirt", checkFail, vmsg+"; "+drop+" is not executable: libvirt skips it", "vfio-gate install-hook")
		return
	}
	if !strings.Contains(string(b), "installed by vfio-gate install-hook") {
		add("libvirt", checkWarn, vmsg+"; "+drop+" was not written by vfio-gate install-hook", "check what it runs")
	}
	for _, f := range strings.Fields(string(b)) {
		if bin, ok := strings.CutPrefix(f, "'"); ok && strings.HasSuffix(bin, "'") && strings.HasPrefix(bin, "/") && !strings.Contains(bin, ".sock") {
			bin = strings.TrimSuffix(bin, "'")
			if _, err := os.Stat(bin); err != nil {
				add("libvirt", checkFail, vmsg+"; the hook runs "+bin+", which does not exist", "vfio-gate install-hook --binary /usr/bin/vfio-gate")
				return
			}
			break
		}
	}
	main := filepath.Join(h.libvirtDir, "hooks", "qemu")
	mb, merr := os.ReadFile(main)
	old, known := lvhook.NeedsDispatcher(v)
	if merr == nil && !strings.Contains(string(mb), "installed by vfio-gate install-hook") && (old || !known) {
		add("libvirt", checkFail, vmsg+"; "+main+" exists and libvirt < 6.5 (or unknown) runs only it: the qemu.d/ hook is shadowed",
			"make "+main+" run hooks/qemu.d/* (or upgrade libvirt)")
		return
	}
	if merr != nil && old {
		add("libvirt", checkFail, vmsg+" does not run qemu.d/ drop-ins and no hooks/qemu dispatcher exists", "vfio-gate install-hook --dispatcher")
		return
	}
	add("libvirt", checkOK, vmsg+"; hook installed: "+drop, "")
}

func (h *doctorHost) checkDaemon(ctx context.Context, add addFunc) {
	st, err := h.daemonStatus(ctx)
	switch {
	case err != nil:
		add("daemon", checkWarn, "not reachable: "+err.Error(), "systemctl enable --now vfio-gate (without it the libvirt hook denies every gated start)")
	case !st.Ready:
		add("daemon", checkWarn, "running but not ready yet: "+st.Phase, "wait, or see journalctl -u vfio-gate")
	case strings.Contains(st.TPM, "THROWAWAY"):
		add("daemon", checkFail, "ready, but recording into "+st.TPM, "remove --tpm sim from its configuration and restart it")
	default:
		add("daemon", checkOK, fmt.Sprintf("ready; policy %s; TPM %s", st.Policy, st.TPM), "")
	}
}

func (h *doctorHost) checkBPF(add addFunc) {
	if h.geteuid() != 0 {
		add("bpf", checkWarn, "not checked: needs root", "sudo vfio-gate doctor")
		return
	}
	if err := h.bpfProbe(); err != nil {
		add("bpf", checkWarn, "audit BPF programs do not load: "+err.Error(), "needed only for vfio-gate audit and check/bind --audit; see the audit documentation")
		return
	}
	add("bpf", checkOK, "audit BPF programs load", "")
}

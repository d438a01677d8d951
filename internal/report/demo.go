package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/vfio-gate/vfio-gate/internal/demo"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// Demo is the body of the "demo" document (vfio-gate demo --json): the
// check's decisions, then what the demo expected and found.
type Demo struct {
	Decisions
	AsExpected bool               `json:"as_expected"`
	Expected   []demo.Expectation `json:"expected"`
	Libvirt    []demo.HookStep    `json:"libvirt"`
	LogVerify  *tpm.VerifyResult  `json:"log_verify"`
	SysfsRoot  string             `json:"sysfs_root"`
	Policy     string             `json:"policy"`
	EventLog   string             `json:"event_log"`
	TPM        string             `json:"tpm"`
}

// DemoOf builds the document of the demo run r in world under mode, which
// recorded into the TPM tpm and the event log eventLog.
func DemoOf(r *demo.Result, world *demo.World, mode policy.Mode, tpm, eventLog string) Demo {
	return Demo{Decisions: DecisionsOf(r.Decisions, mode, false), AsExpected: r.AsExpected(), Expected: r.Expected,
		Libvirt: r.Libvirt, LogVerify: r.LogVerify, SysfsRoot: world.Sysfs, Policy: world.Policy, EventLog: eventLog, TPM: tpm}
}

// WriteDemoWorld writes what `vfio-gate demo` set up: the software
// functions in their temporary sysfs tree, the policy, the TPM and event
// log it records into, and the check command it runs next.
func WriteDemoWorld(w io.Writer, world *demo.World, tpm, eventLog string) {
	fmt.Fprintf(w, "vfio-gate demo: three software PCIe functions in a temporary sysfs tree (%s)\n", world.Sysfs)
	var names []string
	for _, d := range world.Devices {
		names = append(names, d.BDF)
		fmt.Fprintf(w, "  %s  %04x:%04x  %s\n", d.BDF, d.ID.Vendor, d.ID.Device, d.What)
	}
	fmt.Fprintf(w, "policy: %s (rule demo-nvme pins the good firmware; demo mode: file owner/mode not checked)\n", world.Policy)
	fmt.Fprintf(w, "TPM:    %s, event log %s\n\n", tpm, eventLog)
	fmt.Fprintf(w, "$ vfio-gate check --confidential %s\n", strings.Join(names, " "))
}

// WriteDemoOutcomes writes each expected outcome of the demo (the checks,
// then the libvirt hook calls) against what happened, marking any that
// differs UNEXPECTED.
func WriteDemoOutcomes(w io.Writer, exps []demo.Expectation, steps []demo.HookStep) {
	fmt.Fprintln(w)
	for _, x := range exps {
		want := x.Decision
		if x.Code != "" {
			want += " (" + x.Code + ")"
		}
		fmt.Fprintf(w, "%s %s: expected %s, got %s\n", outcomeMark(x.OK), x.BDF, want, x.Got)
	}
	for _, x := range steps {
		fmt.Fprintf(w, "%s libvirt %s %s: expected %s, got exit %d, TDI %s\n", outcomeMark(x.OK), x.Domain, x.Op, x.Want, x.Exit, x.TDIState)
	}
}

// outcomeMark is the first column of an outcome line.
func outcomeMark(ok bool) string {
	if ok {
		return "ok      "
	}
	return "UNEXPECTED"
}

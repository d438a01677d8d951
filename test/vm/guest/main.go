//go:build linux

// Command vmguest is the guest-side test driver of test/vm. It runs inside the
// QEMU guest booted by test/vm/run (as part of the initramfs, started by
// test/vm/init) and checks vfio-gate and the kernel paths it relies on against
// a real kernel: sysfs config space with QEMU's DOE mailbox on a CXL type-3
// device, IOMMU groups and vfio-pci, and /dev/tpmrm0 backed by swtpm.
//
// It prints exactly one line per scenario on stdout (the serial console):
//
//	RESULT <name> PASS|FAIL|SKIP <reason>
//
// A scenario whose vfio-gate command has not landed yet prints
// "SKIP not yet implemented: vfio-gate <command>". The host side
// (test/vm/run) collects these lines. vmguest is test code: it talks to the
// guest's own emulated devices only.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"
)

// Status is the outcome of one scenario.
type Status string

const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
)

// Result is one RESULT line.
type Result struct {
	Status Status
	Reason string
}

func passf(format string, a ...any) Result { return Result{Pass, fmt.Sprintf(format, a...)} }
func failf(format string, a ...any) Result { return Result{Fail, fmt.Sprintf(format, a...)} }
func skipf(format string, a ...any) Result { return Result{Skip, fmt.Sprintf(format, a...)} }

// notYet is the SKIP of a scenario whose vfio-gate command is not there yet.
func notYet(command string) Result {
	return Result{Skip, "not yet implemented: vfio-gate " + command}
}

// Scenario is one named check. Scenarios run in the order listed and may
// depend on the device state earlier ones leave (documented per scenario).
type Scenario struct {
	Name string
	Mode string // boot mode that runs it: "run" (normal boot) or "lockdown"
	Run  func(ctx context.Context, h *Harness) Result
}

// Harness is the shared state of one guest run.
type Harness struct {
	Sys      string // sysfs root, "/sys"
	Dev      string // devtmpfs root, "/dev"
	VfioGate string // path of the vfio-gate binary
	State    string // scratch directory for vfio-gate state (event log)
	Log      io.Writer

	rawCDAT []byte // the CDAT table kernel-doe-cdat read, for doe-cdat to compare
	policy  string // the guest policy file, once written

	lv       *libvirtStack // the libvirt-* scenarios' libvirtd and daemon, once started
	cleanups []func()      // run after the last scenario

	hp map[string]*hpRun // libvirt-hotplug-* experiments by policy mode (hotplug.go)

	spdmLv *spdmLvRun // the spdm-libvirt-* scenarios' state (spdmlibvirt.go)

	Tag          string     // appended to every RESULT name as NAME@TAG (the SPDM boots' kernel series)
	spdmExternal string     // HOST:PORT of the external responder behind the good NVMe, if any
	spdm         *spdmState // the spdm-* scenarios' devices and policy (spdm.go)

	nonce string // the host's nonce for evidence-export (vmtest.nonce), hex
}

// FormatResult renders a RESULT line: the reason is folded onto one line so
// the host can parse the serial log line by line.
func FormatResult(name string, r Result) string {
	reason := strings.Join(strings.Fields(r.Reason), " ")
	if len(reason) > 400 {
		reason = reason[:400] + "..."
	}
	if reason == "" {
		reason = "-"
	}
	return fmt.Sprintf("RESULT %s %s %s", name, r.Status, reason)
}

// runOne runs a scenario with a deadline; a panic is a FAIL, never a crash of
// the whole driver.
func runOne(ctx context.Context, h *Harness, s Scenario, limit time.Duration) (r Result) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			r = failf("panic: %v: %s", p, debug.Stack())
		}
	}()
	return s.Run(ctx, h)
}

// selected reports whether name is in the comma-separated list (empty: all).
func selected(list, name string) bool {
	if list == "" {
		return true
	}
	for _, n := range strings.Split(list, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

func main() {
	h := &Harness{Sys: "/sys", Dev: "/dev", Log: os.Stderr}
	mode := flag.String("mode", "run", "boot mode: run or lockdown")
	only := flag.String("only", "", "comma-separated scenario names (default: all of the mode)")
	flag.StringVar(&h.VfioGate, "vfio-gate", "/bin/vfio-gate", "vfio-gate binary")
	flag.StringVar(&h.State, "state", "/tmp/vfio-gate-state", "vfio-gate state directory")
	limit := flag.Duration("timeout", 60*time.Second, "deadline of one scenario")
	list := flag.Bool("list", false, "list the scenarios and exit")
	flag.StringVar(&h.Tag, "tag", "", "suffix of every RESULT name (NAME@TAG)")
	flag.StringVar(&h.spdmExternal, "spdm-external", "", "HOST:PORT of the external spdm-socket responder behind the good NVMe")
	flag.StringVar(&h.nonce, "nonce", "", "evidence-export: the verifier's nonce, hex (the host's vmtest.nonce)")
	goEventlog := flag.String("go-eventlog", "", "host side: replay this exported eventlog.bin with go-eventlog to -pcr's -pcr-sha256 value, print the outcome and exit")
	pcr := flag.Int("pcr", 13, "with -go-eventlog: the PCR")
	pcrSHA256 := flag.String("pcr-sha256", "", "with -go-eventlog: the quoted SHA-256 value of the PCR, hex")
	benchAttest := flag.String("bench-attest", "", "host side: print the BENCH line of the attest --json output in this file, named NAME (-tag), and exit")
	flag.Parse()

	if *goEventlog != "" {
		msg, err := checkGoEventlog(*goEventlog, *pcr, *pcrSHA256)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println(msg)
		return
	}
	if *benchAttest != "" {
		b, err := os.ReadFile(*benchAttest)
		var a attestJSON
		if err == nil {
			err = json.Unmarshal(b, &a)
		}
		if err != nil || a.RoundTrips == 0 {
			fmt.Fprintf(os.Stderr, "vmguest: %s: no attestation (%v)\n", *benchAttest, err)
			os.Exit(1)
		}
		fmt.Println(a.bench(h.Tag))
		return
	}
	if *list {
		for _, s := range scenarios() {
			fmt.Printf("%s\t%s\n", s.Mode, s.Name)
		}
		return
	}
	ctx := context.Background()
	n := 0
	for _, s := range scenarios() {
		if s.Mode != *mode || !selected(*only, s.Name) {
			continue
		}
		n++
		start := time.Now()
		l := *limit
		if x := scenarioLimit(s.Name); x > l {
			l = x
		}
		r := runOne(ctx, h, s, l)
		fmt.Fprintf(h.Log, "vmguest: %s took %v\n", s.Name, time.Since(start).Round(time.Millisecond))
		name := s.Name
		if h.Tag != "" {
			name += "@" + h.Tag
		}
		fmt.Println(FormatResult(name, r))
	}
	for i := len(h.cleanups) - 1; i >= 0; i-- {
		h.cleanups[i]()
	}
	h.lvDump()
	if n == 0 {
		fmt.Println(FormatResult("vmguest-selection", failf("no scenario selected (mode %q, only %q)", *mode, *only)))
		os.Exit(1)
	}
}

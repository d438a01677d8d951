// Package vm wraps test/vm/run, the end-to-end test on a real kernel, so that
// `go test ./...` includes it where it must run.
package vm

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

// EnvVM opts in to the VM test without making it mandatory.
const EnvVM = "VFIOGATE_VM"

// summary matches the last line test/vm/run prints.
var summary = regexp.MustCompile(`(?m)^(\d+) passed, (\d+) failed$`)

// parseSummary returns the counts of the last summary line in out.
func parseSummary(out []byte) (passed, failed int, err error) {
	all := summary.FindAllSubmatch(out, -1)
	if len(all) == 0 {
		return 0, 0, fmt.Errorf("no %q line in the output", "N passed, M failed")
	}
	m := all[len(all)-1]
	passed, _ = strconv.Atoi(string(m[1]))
	failed, _ = strconv.Atoi(string(m[2]))
	return passed, failed, nil
}

// shouldRun says whether the VM test runs, and why not.
func shouldRun(require, optIn string) (bool, string) {
	if testutil.Required(testutil.VM, require) {
		return true, ""
	}
	if optIn == "1" {
		return true, ""
	}
	return false, fmt.Sprintf("the QEMU end-to-end test takes about a minute; set %s=vm (CI does) or %s=1 to run it, or run test/vm/run directly", testutil.EnvRequire, EnvVM)
}

func TestVM(t *testing.T) {
	if ok, why := shouldRun(os.Getenv(testutil.EnvRequire), os.Getenv(EnvVM)); !ok {
		t.Skip(why)
	}
	testutil.Require(t, testutil.VM, testutil.Root)
	var out bytes.Buffer
	cmd := exec.Command("bash", "run")
	cmd.Stdout = io.MultiWriter(&out, testWriter{t})
	cmd.Stderr = testWriter{t}
	err := cmd.Run()
	passed, failed, perr := parseSummary(out.Bytes())
	if err != nil {
		t.Fatalf("test/vm/run: %v (summary: %d passed, %d failed, %v)", err, passed, failed, perr)
	}
	if perr != nil {
		t.Fatalf("test/vm/run exited 0 but: %v", perr)
	}
	if failed != 0 || passed == 0 {
		t.Fatalf("test/vm/run exited 0 with %d passed, %d failed", passed, failed)
	}
}

// testWriter forwards output to t.Log line by line.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	for _, l := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		w.t.Log(string(l))
	}
	return len(p), nil
}

func TestParseSummary(t *testing.T) {
	for _, c := range []struct {
		in         string
		pass, fail int
		wantErr    bool
	}{
		{"  PASS  a\n6 passed, 0 failed\n", 6, 0, false},
		{"1 passed, 2 failed\n3 passed, 4 failed\n", 3, 4, false},
		{"3 skipped\n", 0, 0, true},
		{"x6 passed, 0 failed\n", 0, 0, true},
		{"", 0, 0, true},
	} {
		p, f, err := parseSummary([]byte(c.in))
		if (err != nil) != c.wantErr || p != c.pass || f != c.fail {
			t.Errorf("parseSummary(%q) = %d, %d, %v; want %d, %d, err %v", c.in, p, f, err, c.pass, c.fail, c.wantErr)
		}
	}
}

func TestShouldRun(t *testing.T) {
	for _, c := range []struct {
		require, optIn string
		want           bool
	}{
		{"", "", false},
		{"root,swtpm", "", false},
		{"root,vm", "", true},
		{"all", "", true},
		{"", "1", true},
		{"", "0", false},
	} {
		got, why := shouldRun(c.require, c.optIn)
		if got != c.want || (!got && why == "") {
			t.Errorf("shouldRun(%q, %q) = %v, %q; want %v with a reason when false", c.require, c.optIn, got, why, c.want)
		}
	}
}

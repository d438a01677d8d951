package main

import (
	"bufio"
	"context"
	"io"
	"math/bits"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// startEmulateText runs `vfio-gate emulate ARGS` (human output) in-process,
// reads its banner up to the "try:" line, stops it and returns the banner.
func startEmulateText(t *testing.T, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		var errw strings.Builder
		code := run(ctx, append([]string{"vfio-gate", "emulate"}, args...), strings.NewReader(""), pw, &errw,
			func(string) string { return "" })
		if code != 0 {
			t.Logf("emulate stderr: %s", errw.String())
		}
		pw.Close()
		done <- code
	}()
	var lines []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "try: ") {
			break
		}
	}
	cancel()
	go io.Copy(io.Discard, pr)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("emulate %v exits %d; banner %q", args, code, lines)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("emulate did not stop on interrupt")
	}
	return lines
}

// checkAsymNames parses every printed name through the --algorithms parser
// (and attest.ParseAsym, which policy and attest's Evidence use): each must
// name exactly one algorithm, none twice, and together exactly want.
func checkAsymNames(t *testing.T, where string, names []string, want spdm.AsymAlgo) {
	t.Helper()
	var got spdm.AsymAlgo
	for _, n := range names {
		a, err := emu.ParseAsymList(n)
		if err != nil {
			t.Errorf("%s: printed name %q is not accepted by --algorithms: %v", where, n, err)
			continue
		}
		if bits.OnesCount32(uint32(a)) != 1 || got&a != 0 {
			t.Errorf("%s: printed name %q is %v: want one algorithm, printed once", where, n, a)
		}
		if pa, err := attest.ParseAsym(n); err != nil || pa != a || attest.AsymName(a) != n {
			t.Errorf("%s: %q: attest.ParseAsym = %v, %v; AsymName = %q", where, n, pa, err, attest.AsymName(a))
		}
		got |= a
	}
	if got != want || len(names) != bits.OnesCount32(uint32(want)) {
		t.Errorf("%s: printed %q = %v, want exactly %v", where, names, got, want)
	}
}

// Every algorithm name emulate prints (--json array and the human banner)
// is one --algorithms accepts, and feeding the printed list back to
// --algorithms gives the same device.
func TestEmulateAlgorithmNamesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for i, flag := range []string{"", "rsapss-3072", "rsassa-2048,rsapss-2048", "ecdsa-p384,ed25519", "rsassa-4096,ecdsa-p521"} {
		want := emu.AllAlgorithms
		if flag != "" {
			var err error
			if want, err = emu.ParseAsymList(flag); err != nil {
				t.Fatal(err)
			}
		}
		args := []string{"--listen", "127.0.0.1:0", "--write-ca", filepath.Join(dir, "ca.pem")}
		if flag != "" {
			args = append(args, "--algorithms", flag)
		}

		out, stop, done := startEmulate(t, args...)
		stop()
		<-done
		checkAsymNames(t, "--json "+flag, out.Algorithms, want)

		// Copy the printed list back into --algorithms: same list again.
		again, stop, done := startEmulate(t, "--listen", "127.0.0.1:0", "--write-ca", filepath.Join(dir, "ca.pem"),
			"--algorithms", strings.Join(out.Algorithms, ","))
		stop()
		<-done
		if !slices.Equal(again.Algorithms, out.Algorithms) {
			t.Errorf("case %d: --algorithms %q prints %q", i, strings.Join(out.Algorithms, ","), again.Algorithms)
		}

		// Human banner: the text after "algorithms: " up to ";" is a valid
		// --algorithms value as printed.
		var field string
		for _, l := range startEmulateText(t, args...) {
			if rest, ok := strings.CutPrefix(l, "algorithms: "); ok {
				field, _, _ = strings.Cut(rest, ";")
			}
		}
		if field == "" {
			t.Fatalf("case %d: no algorithms line in the banner", i)
		}
		checkAsymNames(t, "banner "+flag, strings.Split(field, ","), want)
		if a, err := emu.ParseAsymList(field); err != nil || a != want {
			t.Errorf("case %d: banner list %q as --algorithms: %v, %v; want %v", i, field, a, err, want)
		}
	}
}

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/doe/socket"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// startEmulate runs `vfio-gate --json emulate ARGS` in-process and returns
// its startup record, a stop function and the channel with the exit code.
func startEmulate(t *testing.T, args ...string) (rpt.Emulate, context.CancelFunc, <-chan int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		var errw strings.Builder
		code := run(ctx, append([]string{"vfio-gate", "--json", "emulate"}, args...), strings.NewReader(""), pw, &errw,
			func(string) string { return "" })
		if code != 0 {
			t.Logf("emulate stderr: %s", errw.String())
		}
		pw.Close()
		done <- code
	}()
	var out rpt.Emulate
	var raw json.RawMessage
	if err := json.NewDecoder(pr).Decode(&raw); err != nil {
		cancel()
		t.Fatalf("startup record: %v (exit %d)", err, <-done)
	}
	if _, err := validateDocs(string(raw)); err != nil {
		t.Errorf("startup record does not match its schema: %v\n%s", err, raw)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	return out, cancel, done
}

func TestEmulateServesAttestableDevice(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	out, stop, done := startEmulate(t, "--listen", "127.0.0.1:0", "--algorithms", "ecdsa-p384,ed25519", "--write-ca", caFile, "--slots", "2")
	defer stop()
	if out.Slots != 2 || out.CA != caFile || out.Profile != "good" || len(out.Versions) != 4 || !slices.Equal(out.Algorithms, []string{"ecdsa-p384", "ed25519"}) ||
		!strings.HasPrefix(out.Identity, "Vendor=1b36:Device=0010:") {
		t.Fatalf("startup record %+v", out)
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	var roots []*x509.Certificate
	for blk, rest := pem.Decode(pemBytes); blk != nil; blk, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, c)
	}
	if len(roots) != 2 {
		t.Fatalf("%d roots in %s", len(roots), caFile)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Two clients one after the other: SHUTDOWN ends a connection, not the server.
	for i, asym := range []spdm.AsymAlgo{spdm.AsymECDSAP384, spdm.AsymEd25519} {
		c, err := socket.Dial(ctx, out.Listen)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		fs, err := doe.Discover(ctx, c)
		if err != nil || len(fs) != 3 || fs[1] != doe.FeatureCMA || fs[2] != doe.FeatureSecuredCMA {
			t.Fatalf("discovery %v %v", fs, err)
		}
		r := spdm.NewRequester(c.Exchanger(doe.FeatureCMA), &spdm.Options{Roots: roots, AsymAlgos: asym})
		if _, err := r.Negotiate(ctx); err != nil {
			t.Fatal(err)
		}
		if dg, err := r.Digests(ctx); err != nil || dg.SlotMask != 0x03 {
			t.Fatalf("digests: %v %+v", err, dg)
		}
		if _, err := r.Certificate(ctx, 0); err != nil {
			t.Fatal(err)
		}
		rep, err := r.VerifyChain(0)
		if err != nil || !rep.Verified || rep.CMASAN == nil || rep.CMASAN.Raw != out.Identity {
			t.Fatalf("chain: %v %+v", err, rep)
		}
		if ch, err := r.Challenge(ctx, 0, spdm.SummaryAll); err != nil || !ch.Verified {
			t.Fatalf("challenge: %v", err)
		}
		if m, err := r.Measurements(ctx, spdm.MeasOpts{Index: spdm.MeasOpAll, Signed: true}); err != nil || !m.Verified {
			t.Fatalf("measurements: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("close (SHUTDOWN): %v", err)
		}
	}
	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("interrupted emulate exits %d, want 0", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("emulate did not stop on interrupt")
	}
}

func TestEmulateTemporaryCAAndProfile(t *testing.T) {
	out, stop, done := startEmulate(t, "--listen", "127.0.0.1:0", "--profile", "tampered", "--algorithms", "ecdsa-p256", "--versions", "1.2")
	defer func() { stop(); <-done }()
	if out.Profile != "tampered" || len(out.Versions) != 1 || out.Versions[0] != "1.2" {
		t.Fatalf("%+v", out)
	}
	defer os.Remove(out.CA)
	if b, err := os.ReadFile(out.CA); err != nil || !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Fatalf("temporary CA %s: %v", out.CA, err)
	}
	out2, stop2, done2 := startEmulate(t, "--listen", "127.0.0.1:0", "--profile", "busy-storm", "--algorithms", "ecdsa-p256")
	defer func() { stop2(); <-done2; os.Remove(out2.CA) }()
	if len(out2.Faults) != 1 || out2.Faults[0] != "busy-storm" {
		t.Fatalf("%+v", out2)
	}
}

func TestEmulateUsageErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"emulate"}, exitInternal, "--listen"},
		{[]string{"emulate", "--listen", "127.0.0.1:0", "--profile", "nope"}, exitInternal, "unknown profile"},
		{[]string{"emulate", "--listen", "127.0.0.1:0", "--algorithms", "sm2-p256"}, exitInternal, "unknown algorithm"},
		{[]string{"emulate", "--listen", "127.0.0.1:0", "--versions", "1.4"}, exitInternal, "unknown SPDM version"},
		{[]string{"emulate", "--listen", "127.0.0.1:0", "--slots", "9"}, exitInternal, "slots"},
		{[]string{"emulate", "--listen", "127.0.0.1:0", "--heartbeat", "5", "--no-heartbeat"}, exitInternal, "exclude each other"},
		{[]string{"emulate", "--listen", ln.Addr().String(), "--algorithms", "ecdsa-p256", "--write-ca", filepath.Join(t.TempDir(), "ca.pem")}, exitUnavailable, "address already in use"},
	} {
		code, _, errs := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
}

func TestEmulateHelpListsProfiles(t *testing.T) {
	code, out, _ := runCLI(t, "emulate", "--help")
	if code != 0 || !strings.Contains(out, "busy-storm") || !strings.Contains(out, "--write-ca") || !strings.Contains(out, "Exit codes:") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// TestEmulateIdentityFitsFunction: --identity and --bdf make the software
// device name the function it backs (here QEMU's NVMe at 00:06.0): the
// leaf's CMA SAN carries its IDs and no DSN, and TDISP answers for its
// interface; asked about another interface, tdisp fails naming both.
func TestEmulateIdentityFitsFunction(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	out, stop, done := startEmulate(t, "--listen", "127.0.0.1:0", "--algorithms", "ecdsa-p384", "--write-ca", caFile,
		"--identity", "qemu-nvme", "--bdf", "0000:00:06.0")
	defer func() { stop(); <-done }()
	const want = "Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4:SSID=1100"
	if out.Identity != want {
		t.Fatalf("startup identity %q, want %q", out.Identity, want)
	}
	code, stdout, errs := runCLI(t, "--json", "attest", "--socket", out.Listen, "--trust-anchor", caFile)
	if code != 0 {
		t.Fatalf("attest: exit %d: %s", code, errs)
	}
	var ev struct {
		Identity attest.Identity `json:"identity"`
	}
	if err := json.Unmarshal([]byte(stdout), &ev); err != nil {
		t.Fatal(err)
	}
	id := ev.Identity
	if !id.FromCMASAN || id.Class != 0x010802 || id.Revision != 2 || id.DSN != nil {
		t.Fatalf("identity from the leaf's CMA SAN: %+v", id)
	}
	code, stdout, errs = runCLI(t, "tdisp", "cycle", "--socket", out.Listen, "--trust-anchor", caFile, "--interface", "0000:00:06.0")
	if code != 0 || !strings.Contains(stdout, "CONFIG_UNLOCKED") {
		t.Fatalf("tdisp cycle for the function's own interface: exit %d: %s %s", code, stdout, errs)
	}
	code, _, errs = runCLI(t, "tdisp", "cycle", "--socket", out.Listen, "--trust-anchor", caFile, "--interface", "0000:00:07.0")
	if code != exitAttestation || !strings.Contains(errs, "0000:00:06.0") || !strings.Contains(errs, "0000:00:07.0") {
		t.Fatalf("tdisp cycle for another interface: exit %d, stderr %q; want exit %d naming both interfaces", code, errs, exitAttestation)
	}
}

// TestEmulateDefaultCapabilities: by default the device advertises HBEAT_CAP
// (with a non-zero HeartbeatPeriod) and KEY_UPD_CAP for sessions, so a
// requester's HEARTBEAT and KEY_UPDATE work without extra flags;
// --no-heartbeat and --no-key-update withhold them.
func TestEmulateDefaultCapabilities(t *testing.T) {
	for _, tc := range []struct {
		args          []string
		hbeat, keyUpd bool
		period        int
	}{
		{nil, true, true, 60},
		{[]string{"--heartbeat", "9"}, true, true, 9},
		{[]string{"--no-heartbeat", "--no-key-update"}, false, false, 0},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, stop, done := startEmulate(t, append([]string{"--listen", "127.0.0.1:0", "--algorithms", "ecdsa-p256",
				"--write-ca", filepath.Join(t.TempDir(), "ca.pem")}, tc.args...)...)
			defer func() { stop(); <-done }()
			if slices.Contains(out.Capabilities, "hbeat") != tc.hbeat || slices.Contains(out.Capabilities, "key-upd") != tc.keyUpd ||
				!slices.Contains(out.Capabilities, "key-ex") || out.HeartbeatPeriod != tc.period {
				t.Fatalf("startup record %+v", out)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := socket.Dial(ctx, out.Listen)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			roots := readRoots(t, out.CA)
			_, s, err := spdm.OpenSession(ctx, c.Exchanger(doe.FeatureCMA), c.Exchanger(doe.FeatureSecuredCMA), &spdm.Options{Roots: roots}, 0)
			if err != nil {
				t.Fatal(err)
			}
			in := s.Info()
			if in.CanHeartbeat != tc.hbeat || in.CanKeyUpdate != tc.keyUpd || int(in.HeartbeatPeriod.Seconds()) != tc.period {
				t.Fatalf("session %+v", in)
			}
			if tc.hbeat {
				if err := s.Heartbeat(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if tc.keyUpd {
				if err := s.KeyUpdate(ctx, spdm.KeyUpdateKey); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.End(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// readRoots reads the PEM certificates of an anchors file.
func readRoots(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var roots []*x509.Certificate
	for blk, rest := pem.Decode(pemBytes); blk != nil; blk, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, c)
	}
	return roots
}

// writeDMTFSampleKeys writes <dir>/ecp256/{end_responder.key,
// bundle_responder.certchain.der} for a fresh root → leaf chain and returns
// the root.
func writeDMTFSampleKeys(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "operator root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootT, rootT, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "operator device"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafT, root, leafKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "ecp256")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "end_responder.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "bundle_responder.certchain.der"), append(rootDER, leafDER...), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestEmulatePKI: `emulate --pki DIR` serves the operator's chain, writes
// the operator's root as the anchor, and a requester verifies the device
// against it.
func TestEmulatePKI(t *testing.T) {
	dir := t.TempDir()
	root := writeDMTFSampleKeys(t, dir)
	out, stop, done := startEmulate(t, "--listen", "127.0.0.1:0", "--pki", dir, "--write-ca", filepath.Join(t.TempDir(), "ca.pem"))
	defer func() { stop(); <-done }()
	if out.PKI != dir || !slices.Equal(out.Algorithms, []string{"ecdsa-p256"}) {
		t.Fatalf("startup record %+v", out)
	}
	roots := readRoots(t, out.CA)
	if len(roots) != 1 || !roots[0].Equal(root) {
		t.Fatalf("anchors file holds %d certificates, not the operator's root", len(roots))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := socket.Dial(ctx, out.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := spdm.NewRequester(c.Exchanger(doe.FeatureCMA), &spdm.Options{Roots: []*x509.Certificate{root}})
	if _, err := r.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Certificate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if rep, err := r.VerifyChain(0); err != nil || !rep.Verified {
		t.Fatalf("chain: %v %+v", err, rep)
	}
	if m, err := r.Measurements(ctx, spdm.MeasOpts{Index: spdm.MeasOpAll, Signed: true}); err != nil || !m.Verified {
		t.Fatalf("measurements: %v", err)
	}
}

func TestEmulatePKIUsageErrors(t *testing.T) {
	dir := t.TempDir()
	writeDMTFSampleKeys(t, dir)
	key := filepath.Join(dir, "ecp256", "end_responder.key")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--pki", dir, "--key", key}, "exclude each other"},
		{[]string{"--key", key}, "go together"},
		{[]string{"--pki", t.TempDir()}, "no usable end_responder.key"},
		{[]string{"--key", key, "--chain", key}, "chain"},
		{[]string{"--pki", dir, "--profile", "wrong-root"}, "generated chains"},
	} {
		code, _, errOut := runCLI(t, append([]string{"emulate", "--listen", "127.0.0.1:0"}, tc.args...)...)
		if code != exitInternal || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", tc.args, code, errOut, tc.want)
		}
	}
}

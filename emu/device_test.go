package emu

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
)

func TestDeviceOverDOEModel(t *testing.T) {
	d, err := New(Config{Algorithms: spdm.AsymECDSAP384})
	if err != nil {
		t.Fatal(err)
	}
	if d.Identity() != DefaultIdentity || len(d.Chains()) != 1 || d.Chains()[0].Type != KeyECDSAP384 {
		t.Fatalf("identity %+v chains %d", d.Identity(), len(d.Chains()))
	}
	var cs pci.ConfigSpace = d
	vendor, err := pci.ReadU16(cs, 0)
	if err != nil || vendor != DefaultIdentity.Vendor {
		t.Fatalf("vendor %#x %v", vendor, err)
	}
	mbs, err := doe.Find(d, nil)
	if err != nil || len(mbs) != 1 || int64(mbs[0].Offset()) != d.ConfigSpace().DOEOffset() {
		t.Fatalf("Find: %v %v", mbs, err)
	}
	ctx := context.Background()
	fs, err := mbs[0].Discover(ctx)
	if err != nil || len(fs) != 3 || fs[1] != doe.FeatureCMA || fs[2] != doe.FeatureSecuredCMA {
		t.Fatalf("Discover: %v %v", fs, err)
	}
	rsp, err := mbs[0].Exchanger(doe.FeatureCMA).Exchange(ctx, []byte{0x10, 0x84, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x10, 0x04, 0, 0, 0, 4, 0x00, 0x10, 0x00, 0x11, 0x00, 0x12, 0x00, 0x13}
	if !bytes.Equal(rsp[:len(want)], want) || !bytes.Equal(rsp[len(want):], make([]byte, len(rsp)-len(want))) {
		t.Fatalf("VERSION = %x", rsp)
	}
	if d.Requests() != 1 {
		t.Fatalf("requests = %d", d.Requests())
	}
	// An unserved feature sets the DOE Error bit: the mailbox reports it.
	if _, err := mbs[0].Exchange(ctx, doe.FeatureSecuredCMA, []byte{1, 2, 3, 4}); err == nil {
		t.Fatal("secured CMA object served")
	}
	// Anchors parse and are the chain roots.
	blk, rest := pem.Decode(d.AnchorsPEM())
	if blk == nil || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatal("AnchorsPEM")
	}
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || !root.Equal(d.Anchors()[0]) || !root.Equal(d.Chains()[0].Certs[0]) {
		t.Fatalf("anchor: %v", err)
	}
}

func TestDeviceLatency(t *testing.T) {
	d, err := New(Config{Algorithms: spdm.AsymECDSAP256, Latency: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mbs, err := doe.Find(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := mbs[0].Exchange(context.Background(), doe.FeatureCMA, []byte{0x10, 0x84, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Fatalf("exchange took %v, latency 20ms", el)
	}
	start = time.Now()
	if _, err := d.Handler()(doe.FeatureCMA, []byte{0x10, 0x84, 0, 0}); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Fatalf("handler: %v after %v", err, time.Since(start))
	}
}

func TestProfilesAndFaults(t *testing.T) {
	for _, f := range Faults() {
		g, err := ParseFault(f.String())
		if err != nil || g != f {
			t.Errorf("ParseFault(%q) = %v, %v", f, g, err)
		}
	}
	if _, err := ParseFault("nope"); err == nil {
		t.Error("ParseFault accepted nope")
	}
	if len(Profiles()) != len(Faults())+2 {
		t.Fatalf("%d profiles", len(Profiles()))
	}
	for _, p := range Profiles() {
		d, err := New(Config{Profile: p.Name, Algorithms: spdm.AsymEd25519})
		if err != nil {
			t.Fatalf("profile %s: %v", p.Name, err)
		}
		if d.Profile().Name != p.Name {
			t.Fatal(d.Profile())
		}
	}
	if _, err := New(Config{Profile: "nope"}); err == nil {
		t.Fatal("unknown profile accepted")
	}
	if _, err := New(Config{Algorithms: spdm.AsymSM2P256}); err == nil {
		t.Fatal("SM2 accepted")
	}
	if _, err := New(Config{Faults: []Fault{99}}); err == nil {
		t.Fatal("fault 99 accepted")
	}
}

func TestMangle(t *testing.T) {
	get := func(fs ...Fault) *Device {
		d, err := New(Config{Algorithms: spdm.AsymECDSAP256, Faults: fs})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	digests := []byte{0x12, 0x01, 0, 1, 9, 9}
	if got := get(FaultOversize).mangle([]byte{0x12, 0x81, 0, 0}, digests); len(got) != len(digests)+4096 {
		t.Errorf("oversize: %d bytes", len(got))
	}
	if got := get(FaultWrongResponseCode).mangle([]byte{0x12, 0x81, 0, 0}, digests); got[1] != 0x02 || digests[1] != 0x01 {
		t.Errorf("wrong code: %x (input %x)", got, digests)
	}
	meas := make([]byte, 100)
	meas[1] = 0x60
	if got := get(FaultTruncated).mangle([]byte{0x12, 0xe0, 0, 0}, meas); len(got) != 93 {
		t.Errorf("truncated: %d", len(got))
	}
	if got := get().mangle([]byte{0x12, 0xe0, 0, 0}, meas); len(got) != 100 {
		t.Errorf("good device mangled: %d", len(got))
	}
	if _, err := get().Handler()(doe.FeatureCXLCDAT, []byte{0, 0, 0, 0}); !errors.Is(err, ErrUnsupportedFeature) {
		t.Errorf("CDAT: %v", err)
	}
}

func TestChangingMeasurements(t *testing.T) {
	d, err := New(Config{Algorithms: spdm.AsymECDSAP256, Faults: []Fault{FaultChangingMeasurements}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := d.measurements(), d.measurements()
	if bytes.Equal(a[1].Value, b[1].Value) || a[1].Index != 2 {
		t.Fatal("firmware measurement did not change")
	}
	good, _ := New(Config{Algorithms: spdm.AsymECDSAP256})
	tam, _ := New(Config{Algorithms: spdm.AsymECDSAP256, Profile: "tampered"})
	g, m := good.measurements(), tam.measurements()
	for i := range g {
		if same := bytes.Equal(g[i].Value, m[i].Value); same != (g[i].Index != 2) {
			t.Errorf("index %d: same=%v", g[i].Index, same)
		}
	}
}

func TestMeasurementsOverride(t *testing.T) {
	ms := GoodMeasurements()
	ms[5].Value = SVN(1) // a downgraded firmware
	d, err := New(Config{Algorithms: spdm.AsymECDSAP256, Measurements: ms})
	if err != nil {
		t.Fatal(err)
	}
	ms[5].Value = SVN(99) // the device keeps its own copy
	got := d.measurements()
	if got[5].Index != 6 || !bytes.Equal(got[5].Value, SVN(1)) {
		t.Fatalf("SVN block %+v", got[5])
	}
}

package report

import (
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/spdm"
)

func emulated(t *testing.T, s emu.Settings) (*emu.Device, emu.Config) {
	t.Helper()
	cfg, err := s.Config()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := emu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dev, cfg
}

func TestEmulateBanner(t *testing.T) {
	s := emu.Settings{Profile: "busy-storm", Algorithms: "rsapss-3072,ecdsa-p384", Versions: "1.1,1.2", Slots: 2, BDF: "0000:00:06.0", Heartbeat: 9}
	dev, cfg := emulated(t, s)
	b := EmulateBanner(dev, cfg, s, "127.0.0.1:2323", "/tmp/ca.pem", "")
	if b.Top != spdm.Version12 || b.Slots != 2 || b.HeartbeatPeriod != 9 || b.PKI != "" || len(b.Faults) != 1 || b.Faults[0] != "busy-storm" {
		t.Fatalf("%+v", b)
	}
	var w strings.Builder
	b.WriteText(&w)
	want := "vfio-gate emulate: listening on 127.0.0.1:2323 (spdm-socket, PCI_DOE), profile busy-storm\n" +
		"identity: " + emu.DefaultIdentity.CMAName() + "\n" +
		"algorithms: ecdsa-p384,rsapss-3072; versions: 1.1, 1.2\n" +
		"capabilities (1.2): " + strings.Join(b.Capabilities, ",") + "\n" +
		"root CA: /tmp/ca.pem\n" +
		"try: vfio-gate attest --socket 127.0.0.1:2323 --trust-anchor /tmp/ca.pem\n"
	if w.String() != want {
		t.Fatalf("text:\n%s\nwant:\n%s", w.String(), want)
	}
	if !strings.Contains(w.String(), "HBEAT") && !strings.Contains(w.String(), "hbeat") {
		t.Errorf("capabilities without HBEAT: %q", b.Capabilities)
	}
}

func TestEmulateBannerDefaults(t *testing.T) {
	s := emu.Settings{Profile: "good", Slots: 1, BDF: "0000:00:00.0", NoHeartbeat: true, PublicKeyOnly: true, Algorithms: "ecdsa-p256"}
	dev, cfg := emulated(t, s)
	b := EmulateBanner(dev, cfg, s, "h:1", "/ca", "/key.pem")
	if b.Top != spdm.Version13 || len(b.Versions) != 4 || b.HeartbeatPeriod != 0 || len(b.Faults) != 0 || b.Faults == nil {
		t.Fatalf("%+v", b)
	}
	var w strings.Builder
	b.WriteText(&w)
	if !strings.HasSuffix(w.String(), "public keys (slot 0xFF): /key.pem\ntry: vfio-gate attest --socket h:1 --responder-public-key /key.pem\n") ||
		strings.Contains(w.String(), "root CA") {
		t.Fatalf("text:\n%s", w.String())
	}
	// The default heartbeat period is announced when none is given.
	s = emu.Settings{Profile: "good", Slots: 1, BDF: "0000:00:00.0", Algorithms: "ecdsa-p256"}
	dev, cfg = emulated(t, s)
	if b := EmulateBanner(dev, cfg, s, "h:1", "/ca", ""); b.HeartbeatPeriod != emu.DefaultHeartbeatPeriod {
		t.Fatalf("heartbeat %d", b.HeartbeatPeriod)
	}
}

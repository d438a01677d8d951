package emu

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// defaults are emulate's flag defaults.
func defaults() Settings { return Settings{Profile: "good", Slots: 1, BDF: "0000:00:00.0"} }

func TestSettingsConfig(t *testing.T) {
	s := defaults()
	s.Algorithms, s.Versions, s.AEAD, s.BDF, s.Identity = "ecdsa-p384, RSAPSS-3072", "1.2,1.3", "aes-128-gcm", "0000:00:06.0", "qemu-nvme"
	s.Heartbeat, s.NoKeyUpdate, s.Slots = 7, true, 3
	c, err := s.Config()
	if err != nil {
		t.Fatal(err)
	}
	bdf, _ := pci.ParseBDF("0000:00:06.0")
	if c.Algorithms != spdm.AsymECDSAP384|spdm.AsymRSAPSS3072 || !slices.Equal(c.Versions, []spdm.Version{spdm.Version12, spdm.Version13}) ||
		c.Session.AEAD != spdm.AEADAES128GCM || c.Session.HeartbeatPeriod != 7 || !c.Session.NoKeyUpdate || c.BDF != bdf ||
		c.Identity != IdentityQEMUNVMe || c.Slots != 3 || c.Profile != "good" || c.PKI != nil {
		t.Fatalf("Config() = %+v", c)
	}
	if _, err := New(c); err != nil {
		t.Fatalf("the configuration does not build a device: %v", err)
	}
}

func TestSettingsConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Settings)
		want string
	}{
		{func(s *Settings) { s.Algorithms = "sm2-p256" }, `--algorithms: unknown algorithm "sm2-p256"`},
		{func(s *Settings) { s.Versions = "1.4" }, "--versions: unknown SPDM version"},
		{func(s *Settings) { s.Profile = "nope" }, "emulate: --profile: "},
		{func(s *Settings) { s.Heartbeat, s.NoHeartbeat = 5, true }, "emulate: --heartbeat and --no-heartbeat exclude each other"},
		{func(s *Settings) { s.AEAD = "des" }, `emulate: --aead "des": want`},
		{func(s *Settings) { s.BDF = "nope" }, "emulate: --bdf: "},
		{func(s *Settings) { s.Identity = "colour=red" }, "emulate: --identity: "},
		{func(s *Settings) { s.KeyFile = "k" }, "emulate: --key and --chain go together"},
		{func(s *Settings) { s.PKIDir, s.ChainFile = "d", "c" }, "emulate: --pki and --key/--chain exclude each other"},
		{func(s *Settings) { s.MultiKey = "all" }, `emulate: --multi-key "all": want only or negotiated`},
		{func(s *Settings) { s.MultiKey, s.PublicKeyOnly = "only", true }, "emulate: --multi-key and --public-key-only exclude each other"},
		{func(s *Settings) { s.WritePublicKey = "k.pem" }, "emulate: --write-public-key needs --public-key-only"},
	} {
		s := defaults()
		tc.edit(&s)
		if _, err := s.Config(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", s, err, tc.want)
		}
	}
}

// An operator PKI provisions as many slots as it has chains for, unless
// the slots were given.
func TestSettingsPKISlots(t *testing.T) {
	dir, _, _, _ := dmtfTree(t)
	s := defaults()
	s.PKIDir = dir
	c, err := s.Config()
	if err != nil || c.PKI == nil || c.Slots != 2 {
		t.Fatalf("--pki: slots %d, %v", c.Slots, err)
	}
	s.SlotsSet = true
	if c, err := s.Config(); err != nil || c.Slots != 1 {
		t.Fatalf("--pki --slots 1: slots %d, %v", c.Slots, err)
	}
	if got := s.PKISource(); got != dir {
		t.Errorf("PKISource = %q", got)
	}
	if got := (Settings{KeyFile: "k", ChainFile: "c"}).PKISource(); got != "k,c" {
		t.Errorf("PKISource = %q", got)
	}
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.KeyAsymNames(0); !slices.Equal(got, []string{"ecdsa-p384", "ed25519"}) {
		t.Errorf("KeyAsymNames(0) = %q", got)
	}
	if got := d.KeyAsymNames(spdm.AsymEd25519 | spdm.AsymRSAPSS3072); !slices.Equal(got, []string{"ed25519"}) {
		t.Errorf("KeyAsymNames(ed25519|rsapss-3072) = %q", got)
	}
}

// Every name AsymNames prints parses back (ParseAsymList) to its one
// algorithm, in the documented order.
func TestAsymNames(t *testing.T) {
	all := AsymNames(0)
	if !slices.Equal(all, AsymNames(AllAlgorithms)) || all[0] != "ecdsa-p256" || all[len(all)-1] != "ed25519" {
		t.Fatalf("AsymNames(0) = %q", all)
	}
	var got spdm.AsymAlgo
	for _, n := range all {
		a, err := ParseAsymList(n)
		if err != nil || a&got != 0 || !slices.Equal(AsymNames(a), []string{n}) {
			t.Fatalf("%q: %v, %v", n, a, err)
		}
		got |= a
	}
	if got != AllAlgorithms {
		t.Fatalf("names cover %v, want %v", got, AllAlgorithms)
	}
	if a, err := ParseAsymList(strings.Join(all, ",")); err != nil || a != AllAlgorithms {
		t.Fatalf("the whole list: %v, %v", a, err)
	}
	if a, err := ParseAsymList(""); err != nil || a != 0 {
		t.Fatalf(`"": %v, %v`, a, err)
	}
}

func TestWritePEMFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	p, err := WritePEMFile("given.pem", "x-*.pem", []byte("A"))
	if err != nil || p != filepath.Join(dir, "given.pem") {
		t.Fatalf("given path: %q, %v", p, err)
	}
	t.Setenv("TMPDIR", dir)
	p, err = WriteAnchors("", []byte("B"))
	if err != nil || filepath.Dir(p) != dir || !strings.HasPrefix(filepath.Base(p), "vfio-gate-emu-ca-") {
		t.Fatalf("temporary: %q, %v", p, err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "B" {
		t.Fatalf("temporary file holds %q, %v", b, err)
	}
	if _, err := WritePEMFile(filepath.Join(dir, "no", "such.pem"), "", nil); err == nil {
		t.Fatal("a path in a missing directory: no error")
	}
}

// TestSettingsDevice: the settings' device and configuration; Config's
// errors as they are, New's prefixed with the command.
func TestSettingsDevice(t *testing.T) {
	s := defaults()
	s.Slots = 2
	d, c, err := s.Device()
	if err != nil || d == nil || c.Slots != 2 || len(d.Anchors()) == 0 {
		t.Fatalf("Device() = %v, %+v, %v", d, c, err)
	}
	s.Versions = "9.9"
	if _, _, err := s.Device(); err == nil || !strings.HasPrefix(err.Error(), "--versions: ") {
		t.Fatalf("bad --versions: %v", err)
	}
	s = defaults()
	s.Slots = 9
	if _, _, err := s.Device(); err == nil || !strings.HasPrefix(err.Error(), "emulate: emu: ") {
		t.Fatalf("9 slots: %v", err)
	}
}

package emu

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// Settings are the options of `vfio-gate emulate` as its command line gives
// them (strings, not yet parsed). Config turns them into a Config; its
// errors name the flag at fault, as the command prints them.
type Settings struct {
	Listen     string        // --listen: the TCP address to serve on
	WriteCA    string        // --write-ca: where WriteFiles writes the anchors
	Profile    string        // --profile
	Algorithms string        // --algorithms: ParseAsymList
	Versions   string        // --versions: ParseVersions
	Latency    time.Duration // --latency
	// Slots is --slots; SlotsSet says it was given. An operator PKI
	// without --slots provisions as many slots as it has chains for.
	Slots    int
	SlotsSet bool
	// Secure sessions: --aead, --handshake-in-clear, --heartbeat,
	// --no-heartbeat, --no-key-update.
	AEAD             string
	HandshakeInClear bool
	Heartbeat        uint8
	NoHeartbeat      bool
	NoKeyUpdate      bool
	BDF              string // --bdf: pci.ParseBDF
	Identity         string // --identity: ParseIdentity
	// Operator keys: --pki DIR, or --key FILE with --chain FILE (LoadPKI).
	PKIDir, KeyFile, ChainFile string
	PublicKeyOnly              bool   // --public-key-only
	WritePublicKey             string // --write-public-key (needs PublicKeyOnly)
	MultiKey                   string // --multi-key: ParseMultiKey
	Logger                     *slog.Logger
}

// Config checks the settings against each other and builds the device's
// configuration, loading the operator's keys and chains if any.
func (s Settings) Config() (Config, error) {
	asym, err := ParseAsymList(s.Algorithms)
	if err != nil {
		return Config{}, err
	}
	vers, err := ParseVersions(s.Versions)
	if err != nil {
		return Config{}, fmt.Errorf("--versions: %v", err)
	}
	if _, err := LookupProfile(s.Profile); err != nil {
		return Config{}, fmt.Errorf("emulate: --profile: %v", err)
	}
	if s.NoHeartbeat && s.Heartbeat != 0 {
		return Config{}, errors.New("emulate: --heartbeat and --no-heartbeat exclude each other")
	}
	sc := SessionConfig{HandshakeInClear: s.HandshakeInClear, HeartbeatPeriod: s.Heartbeat, NoHeartbeat: s.NoHeartbeat, NoKeyUpdate: s.NoKeyUpdate}
	if sc.AEAD, err = ParseAEAD(s.AEAD); err != nil {
		return Config{}, fmt.Errorf("emulate: --aead %v", err)
	}
	bdf, err := pci.ParseBDF(s.BDF)
	if err != nil {
		return Config{}, fmt.Errorf("emulate: --bdf: %v", err)
	}
	id, err := ParseIdentity(s.Identity)
	if err != nil {
		return Config{}, fmt.Errorf("emulate: --identity: %v", err)
	}
	pki, err := LoadPKI(s.PKIDir, s.KeyFile, s.ChainFile)
	if err != nil {
		return Config{}, err
	}
	slots := s.Slots
	if pki != nil && !s.SlotsSet {
		slots = len(pki.Slots)
	}
	mk, err := ParseMultiKey(s.MultiKey)
	if err != nil {
		return Config{}, fmt.Errorf("emulate: --multi-key %v", err)
	}
	if s.PublicKeyOnly && mk != 0 {
		return Config{}, errors.New("emulate: --multi-key and --public-key-only exclude each other (MULTI_KEY_CAP needs certificate slots)")
	}
	if s.WritePublicKey != "" && !s.PublicKeyOnly {
		return Config{}, errors.New("emulate: --write-public-key needs --public-key-only")
	}
	return Config{BDF: bdf, Identity: id, Profile: s.Profile, Algorithms: asym, Versions: vers, Latency: s.Latency, Slots: slots,
		Session: sc, Logger: s.Logger, PKI: pki, PublicKeyOnly: s.PublicKeyOnly, MultiKey: mk}, nil
}

// Device builds the software device the settings describe (Config, then
// New, whose errors are prefixed "emulate: "), with its configuration.
func (s Settings) Device() (*Device, Config, error) {
	cfg, err := s.Config()
	if err != nil {
		return nil, Config{}, err
	}
	dev, err := New(cfg)
	if err != nil {
		return nil, Config{}, fmt.Errorf("emulate: %w", err)
	}
	return dev, cfg, nil
}

// PKISource names where the operator's keys came from: the --pki
// directory, or "KEY,CHAIN" for --key and --chain.
func (s Settings) PKISource() string {
	if s.PKIDir == "" {
		return s.KeyFile + "," + s.ChainFile
	}
	return s.PKIDir
}

// LoadPKI reads an operator PKI from dir (LoadPKIDir) or from one slot-0
// key and chain (LoadKeyChain); nil when none is given. dir excludes key
// and chain, which go together.
func LoadPKI(dir, key, chain string) (*PKI, error) {
	switch {
	case dir != "" && (key != "" || chain != ""):
		return nil, errors.New("emulate: --pki and --key/--chain exclude each other")
	case (key == "") != (chain == ""):
		return nil, errors.New("emulate: --key and --chain go together")
	case dir != "":
		return LoadPKIDir(dir)
	case key != "":
		c, err := LoadKeyChain(key, chain)
		if err != nil {
			return nil, err
		}
		return &PKI{Slots: [][]*Chain{{c}}}, nil
	}
	return nil, nil
}

// ParseAsymList parses a comma-separated list of signature algorithms the
// device can sign with ("ecdsa-p384,rsapss-3072", spdm.AsymAlgo's names);
// "" is 0 (all of AllAlgorithms).
func ParseAsymList(s string) (spdm.AsymAlgo, error) {
	var out spdm.AsymAlgo
	if s == "" {
		return 0, nil
	}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(strings.ToLower(name))
		found := false
		for i := 0; i < 12; i++ {
			if a := spdm.AsymAlgo(1) << i; a&AllAlgorithms != 0 && a.String() == name {
				out |= a
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("--algorithms: unknown algorithm %q (want some of %s)", name, strings.Join(AsymNames(0), ","))
		}
	}
	return out, nil
}

// asymOrder is the order signature algorithms are listed in (the order of
// emulate's --algorithms help); bits missing here follow in bit order.
var asymOrder = []spdm.AsymAlgo{spdm.AsymECDSAP256, spdm.AsymECDSAP384, spdm.AsymECDSAP521,
	spdm.AsymRSASSA2048, spdm.AsymRSAPSS2048, spdm.AsymRSASSA3072, spdm.AsymRSAPSS3072,
	spdm.AsymRSASSA4096, spdm.AsymRSAPSS4096, spdm.AsymEd25519}

// AsymNames lists the signature algorithms in asym (0 means AllAlgorithms)
// by the SPDM asym names that ParseAsymList, attest.AsymName and
// attest.ParseAsym use (e.g. "rsassa-2048", not the key type "rsa-2048"),
// one name per algorithm.
func AsymNames(asym spdm.AsymAlgo) []string {
	if asym == 0 {
		asym = AllAlgorithms
	}
	names := []string{}
	for _, a := range asymOrder {
		if asym&a != 0 {
			names = append(names, a.String())
			asym &^= a
		}
	}
	for i := 0; i < 32; i++ {
		if a := spdm.AsymAlgo(1) << i; asym&a != 0 {
			names = append(names, a.String())
		}
	}
	return names
}

// KeyAsymNames lists the signature algorithms of the device's slot-0 keys,
// of those asym allows (0 means all), as AsymNames names them.
func (d *Device) KeyAsymNames(asym spdm.AsymAlgo) []string {
	if asym == 0 {
		asym = AllAlgorithms
	}
	var have spdm.AsymAlgo
	for _, c := range d.Chains() {
		have |= KeyTypeAlgorithms(c.Type)
	}
	return AsymNames(have & asym)
}

// WriteFiles writes what a requester of d needs: its root CA certificates
// (WriteAnchors to s.WriteCA) and, with PublicKeyOnly, its public keys (to
// s.WritePublicKey, or a temporary file). It returns the paths written;
// pubPath is "" without PublicKeyOnly.
func (s Settings) WriteFiles(d *Device) (caPath, pubPath string, err error) {
	if caPath, err = WriteAnchors(s.WriteCA, d.AnchorsPEM()); err != nil || !s.PublicKeyOnly {
		return caPath, "", err
	}
	pems, err := d.PublicKeysPEM()
	if err != nil {
		return "", "", err
	}
	if pubPath, err = WritePEMFile(s.WritePublicKey, "vfio-gate-emu-key-*.pem", pems); err != nil {
		return "", "", err
	}
	return caPath, pubPath, nil
}

// WriteAnchors writes the PEM anchors to path, or to a new temporary file
// (WritePEMFile).
func WriteAnchors(path string, pemBytes []byte) (string, error) {
	return WritePEMFile(path, "vfio-gate-emu-ca-*.pem", pemBytes)
}

// WritePEMFile writes pemBytes to path (mode 0644), or to a fresh temporary
// file named after pattern (os.CreateTemp) when path is empty, and returns
// the file's absolute path.
func WritePEMFile(path, pattern string, pemBytes []byte) (string, error) {
	if path == "" {
		f, err := os.CreateTemp("", pattern)
		if err != nil {
			return "", err
		}
		if _, err := f.Write(pemBytes); err != nil {
			f.Close()
			return "", err
		}
		return f.Name(), f.Close()
	}
	if err := os.WriteFile(path, pemBytes, 0o644); err != nil {
		return "", err
	}
	return filepath.Abs(path)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/doe/socket"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// emulateOut is the --json startup record of `vfio-gate emulate`.
type emulateOut struct {
	Listen     string   `json:"listen"`
	Profile    string   `json:"profile"`
	Faults     []string `json:"faults"`
	CA         string   `json:"ca"`
	Versions   []string `json:"versions"`
	Algorithms []string `json:"algorithms"` // names --algorithms accepts
	Identity   string   `json:"identity"`
	Slots      int      `json:"slots"`
	// Capabilities are the CAPABILITIES flags advertised at the highest
	// version offered; HeartbeatPeriod is announced in KEY_EXCHANGE_RSP.
	Capabilities    []string `json:"capabilities"`
	HeartbeatPeriod int      `json:"heartbeat_period"`
	// PKI is the --pki directory (or "KEY,CHAIN") the keys came from;
	// Skipped lists what in it could not be used.
	PKI     string   `json:"pki,omitempty"`
	Skipped []string `json:"skipped,omitempty"`
	// PublicKey is the file of the device's public keys (PEM) with
	// --public-key-only; MultiKey the MULTI_KEY_CAP mode of --multi-key.
	PublicKey string `json:"public_key,omitempty"`
	MultiKey  string `json:"multi_key,omitempty"`
}

// emulateFlags are the flags of `vfio-gate emulate`.
type emulateFlags struct {
	listen, profile, writeCA, algs, versions string
	latency                                  time.Duration
	slots                                    int
	aead, iface, identity                    string
	inClear, noHeartbeat, noKeyUpdate        bool
	pkiDir, keyFile, chainFile               string
	heartbeat                                uint8
	publicKeyOnly                            bool
	writePubKey, multiKey                    string
}

func newEmulateCmd(e *env, g *globals) *cobra.Command {
	var o emulateFlags
	cmd := &cobra.Command{
		Use:   "emulate --listen HOST:PORT [--profile NAME] [--write-ca FILE]",
		Short: "Serve the software CMA/SPDM device over the spdm-socket protocol",
		Long: `emulate runs vfio-gate's software device (package emu): a PCIe function with a DOE
mailbox whose CMA feature is an SPDM 1.0–1.3 responder with its own test PKI
(root → intermediate → leaf with the CMA subject-alt-name), DMTF measurements and
optional faults. It serves the spdm-socket protocol (QEMU's spdm_port peer, DMTF
spdm-emu's --trans PCI_DOE) on --listen until interrupted, one client at a time; a
client's SHUTDOWN ends that connection, not the server.

At start it writes the device's root CA certificates (PEM, one per signature
algorithm) to --write-ca, or to a fresh file in the temporary directory, and prints
the path, so that "vfio-gate attest --socket HOST:PORT --trust-anchor PATH" can
verify the device.

Profiles: ` + strings.ReplaceAll(emu.ProfileNames(), "|", ", ") + `.

To back a real function (QEMU's "-device nvme,spdm_port=PORT"), give the software device that
function's identity and address, so the CMA SAN and the TDISP interface ID name it:
--identity qemu-nvme --bdf 0000:00:06.0 (or --identity vendor=...,device=...,class=...,rev=...,
subsystem=...,dsn=...).

--pki DIR serves operator-supplied keys and chains instead of the built-in test PKI:
DMTF's sample-key layout (DIR or each DIR/<alg>/ holding end_responder.key and
bundle_responder.certchain.der; bundle_responder.certchainN.der for slot N), PEM or
DER. --key FILE --chain FILE supply one slot-0 chain. The anchors file then holds the
operator's roots.

Capabilities advertised by default: CERT, CHAL, MEAS (signed), CHUNK (1.2+), and for
secure sessions (1.1+) KEY_EX, ENCRYPT, MAC, HBEAT (HeartbeatPeriod 60 s unless
--heartbeat) and KEY_UPD; --no-heartbeat and --no-key-update withhold the last two,
--handshake-in-clear adds HANDSHAKE_IN_THE_CLEAR. See docs/emulate.md.

--public-key-only presents the keys as pre-provisioned public keys (PUB_KEY_ID_CAP, slot
0xFF; SPDM 1.1+) instead of certificate chains, and writes them (PEM "PUBLIC KEY", one per
algorithm) to --write-public-key or a fresh temporary file, for
"vfio-gate attest --socket HOST:PORT --responder-public-key FILE" (give one algorithm
with --algorithms so that the file holds one key). --multi-key only|negotiated advertises
SPDM 1.3 MULTI_KEY_CAP 01b/10b: DIGESTS then names each slot's key pair and what it may sign.

Needs nothing (no root, no hardware, no TPM). With --json the start-up banner is one JSON object.

Exit codes: 0 stopped by SIGINT/SIGTERM; 1 usage error (unknown profile, algorithm or version,
missing --listen); 4 the address cannot be bound.`,
		Example: `  vfio-gate emulate --listen 127.0.0.1:2323 --write-ca /tmp/emu-ca.pem
  vfio-gate emulate --listen 127.0.0.1:0 --profile tampered --algorithms rsapss-3072 --versions 1.2
  vfio-gate emulate --listen 127.0.0.1:2323 --identity qemu-nvme --bdf 0000:00:06.0
  vfio-gate emulate --listen 127.0.0.1:2323 --pki libspdm/unit_test/sample_key --write-ca /tmp/vendor-ca.pem
  vfio-gate emulate --listen 127.0.0.1:2323 --public-key-only --algorithms ecdsa-p384 --write-public-key /tmp/emu-key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd, e, g) },
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "", "TCP address to serve spdm-socket on, e.g. 127.0.0.1:2323 (port 0 picks one)")
	f.StringVar(&o.profile, "profile", "good", "device personality: "+emu.ProfileNames())
	f.StringVar(&o.writeCA, "write-ca", "", "write the root CA certificates (PEM) here instead of a temporary file")
	f.StringVar(&o.algs, "algorithms", "", "comma-separated signature algorithms (e.g. ecdsa-p384,rsapss-3072); default all")
	f.StringVar(&o.versions, "versions", "", "comma-separated SPDM versions offered (e.g. 1.2,1.3); default 1.0-1.3")
	f.DurationVar(&o.latency, "latency", 0, "delay every response by this much")
	f.IntVar(&o.slots, "slots", 1, "number of provisioned certificate slots (1-8)")
	f.StringVar(&o.aead, "aead", "", "secure sessions: the only AEAD the device selects (aes-128-gcm, aes-256-gcm, chacha20-poly1305); default: prefers aes-256-gcm")
	f.BoolVar(&o.inClear, "handshake-in-clear", false, "secure sessions: advertise HANDSHAKE_IN_THE_CLEAR_CAP")
	f.Uint8Var(&o.heartbeat, "heartbeat", 0, fmt.Sprintf("secure sessions: HeartbeatPeriod in seconds announced in KEY_EXCHANGE_RSP (0 = %d)", emu.DefaultHeartbeatPeriod))
	f.BoolVar(&o.noHeartbeat, "no-heartbeat", false, "secure sessions: do not advertise HBEAT_CAP (HEARTBEAT is then unsupported)")
	f.BoolVar(&o.noKeyUpdate, "no-key-update", false, "secure sessions: do not advertise KEY_UPD_CAP (KEY_UPDATE is then unsupported)")
	f.StringVar(&o.pkiDir, "pki", "", "serve operator-supplied keys and chains from DIR, in DMTF's sample-key layout (<alg>/end_responder.key, <alg>/bundle_responder.certchain[N].der; PEM or DER)")
	f.StringVar(&o.keyFile, "key", "", "with --chain: the leaf private key (PEM or DER) of an operator-supplied slot-0 chain")
	f.StringVar(&o.chainFile, "chain", "", "with --key: the certificate chain (PEM or concatenated DER, root first or leaf first)")
	f.BoolVar(&o.publicKeyOnly, "public-key-only", false, "present the keys as pre-provisioned public keys (PUB_KEY_ID_CAP, slot 0xFF; SPDM 1.1+) instead of certificate chains")
	f.StringVar(&o.writePubKey, "write-public-key", "", "with --public-key-only: write the device's public keys (PEM SubjectPublicKeyInfo) here instead of a temporary file")
	f.StringVar(&o.multiKey, "multi-key", "", "advertise SPDM 1.3 MULTI_KEY_CAP: only (01b, every 1.3 connection is multi-key) or negotiated (10b, when the requester asks)")
	f.StringVar(&o.iface, "bdf", "0000:00:00.0", "the address the function pretends to have (its TDISP interface ID; tdisp --interface)")
	f.StringVar(&o.identity, "identity", "", "the function's IDs, as they go into the leaf's CMA SAN: comma-separated KEY=VALUE (hex) of vendor, device, class, rev, subsystem (SSSS:SSSS), dsn (or dsn=none); unnamed keys keep the default "+emu.DefaultIdentity.CMAName()+"; \"qemu-nvme\" = QEMU's NVMe function (no DSN)")
	return cmd
}

// config builds the software device's configuration from the flags.
func (o *emulateFlags) config(cmd *cobra.Command, g *globals) (emu.Config, error) {
	if o.listen == "" {
		return emu.Config{}, usageErrorf("emulate: --listen HOST:PORT is required")
	}
	asym, err := parseAsymList(o.algs)
	if err != nil {
		return emu.Config{}, err
	}
	vers, err := emu.ParseVersions(o.versions)
	if err != nil {
		return emu.Config{}, usageErrorf("--versions: %v", err)
	}
	if _, err := emu.LookupProfile(o.profile); err != nil {
		return emu.Config{}, usageErrorf("emulate: --profile: %v", err)
	}
	if o.noHeartbeat && o.heartbeat != 0 {
		return emu.Config{}, usageErrorf("emulate: --heartbeat and --no-heartbeat exclude each other")
	}
	sc := emu.SessionConfig{HandshakeInClear: o.inClear, HeartbeatPeriod: o.heartbeat, NoHeartbeat: o.noHeartbeat, NoKeyUpdate: o.noKeyUpdate}
	if sc.AEAD, err = emu.ParseAEAD(o.aead); err != nil {
		return emu.Config{}, usageErrorf("emulate: --aead %v", err)
	}
	bdf, err := pci.ParseBDF(o.iface)
	if err != nil {
		return emu.Config{}, usageErrorf("emulate: --bdf: %v", err)
	}
	id, err := emu.ParseIdentity(o.identity)
	if err != nil {
		return emu.Config{}, usageErrorf("emulate: --identity: %v", err)
	}
	pki, err := loadOperatorPKI(o.pkiDir, o.keyFile, o.chainFile)
	if err != nil {
		return emu.Config{}, err
	}
	if pki != nil && !cmd.Flags().Changed("slots") {
		o.slots = len(pki.Slots)
	}
	mk, err := emu.ParseMultiKey(o.multiKey)
	if err != nil {
		return emu.Config{}, usageErrorf("emulate: --multi-key %v", err)
	}
	if o.publicKeyOnly && mk != 0 {
		return emu.Config{}, usageErrorf("emulate: --multi-key and --public-key-only exclude each other (MULTI_KEY_CAP needs certificate slots)")
	}
	if o.writePubKey != "" && !o.publicKeyOnly {
		return emu.Config{}, usageErrorf("emulate: --write-public-key needs --public-key-only")
	}
	return emu.Config{BDF: bdf, Identity: id, Profile: o.profile, Algorithms: asym, Versions: vers, Latency: o.latency, Slots: o.slots,
		Session: sc, Logger: g.log, PKI: pki, PublicKeyOnly: o.publicKeyOnly, MultiKey: mk}, nil
}

// run builds the device, writes its anchors (or public keys), prints the
// start-up banner and serves until interrupted.
func (o *emulateFlags) run(cmd *cobra.Command, e *env, g *globals) error {
	cfg, err := o.config(cmd, g)
	if err != nil {
		return err
	}
	dev, err := emu.New(cfg)
	if err != nil {
		return usageErrorf("emulate: %v", err)
	}
	caPath, err := writeAnchors(o.writeCA, dev.AnchorsPEM())
	if err != nil {
		return err
	}
	var pubPath string
	if o.publicKeyOnly {
		pems, err := dev.PublicKeysPEM()
		if err != nil {
			return err
		}
		if pubPath, err = writePEMFile(o.writePubKey, "vfio-gate-emu-key-*.pem", pems); err != nil {
			return err
		}
	}
	ln, err := (&net.ListenConfig{}).Listen(cmd.Context(), "tcp", o.listen)
	if err != nil {
		return withCode(exitUnavailable, fmt.Errorf("emulate: %w", err))
	}
	out, top := o.banner(dev, cfg, ln.Addr().String(), caPath, pubPath)
	if g.json {
		if err := writeJSON(e.out, "emulate", out); err != nil {
			ln.Close()
			return err
		}
	} else {
		printEmulateBanner(e, out, top)
	}
	srv := &socket.Server{Features: dev.Features(), Handler: dev.Handler(), Logger: g.log}
	err = srv.Serve(cmd.Context(), ln)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil // interrupted: the normal way to stop
	}
	return withCode(exitUnavailable, fmt.Errorf("emulate: %w", err))
}

// banner is the start-up record, and the highest version offered (whose
// capabilities it lists).
func (o *emulateFlags) banner(dev *emu.Device, cfg emu.Config, addr, caPath, pubPath string) (emulateOut, spdm.Version) {
	asym, vers := cfg.Algorithms, cfg.Versions
	out := emulateOut{Listen: addr, Profile: o.profile, CA: caPath, Faults: []string{},
		Algorithms: asymNames(asym), Identity: dev.Identity().CMAName(), Slots: o.slots, PublicKey: pubPath, MultiKey: o.multiKey}
	if cfg.PKI != nil {
		out.PKI = o.pkiDir
		if o.pkiDir == "" {
			out.PKI = o.keyFile + "," + o.chainFile
		}
		out.Skipped = cfg.PKI.Skipped
		out.Algorithms = deviceAsymNames(dev, asym)
	}
	for _, f := range dev.Profile().Faults {
		out.Faults = append(out.Faults, f.String())
	}
	if len(vers) == 0 {
		vers = []spdm.Version{spdm.Version10, spdm.Version11, spdm.Version12, spdm.Version13}
	}
	for _, v := range vers {
		out.Versions = append(out.Versions, v.String())
	}
	top := slices.Max(vers)
	out.Capabilities = spdm.CapabilityNames(dev.CapabilityFlags(top))
	if out.Capabilities == nil {
		out.Capabilities = []string{}
	}
	if dev.CapabilityFlags(top)&spdm.CapHBeat != 0 {
		out.HeartbeatPeriod = int(o.heartbeat)
		if o.heartbeat == 0 {
			out.HeartbeatPeriod = emu.DefaultHeartbeatPeriod
		}
	}
	return out, top
}

func printEmulateBanner(e *env, out emulateOut, top spdm.Version) {
	fmt.Fprintf(e.out, "vfio-gate emulate: listening on %s (spdm-socket, PCI_DOE), profile %s\n", out.Listen, out.Profile)
	fmt.Fprintf(e.out, "identity: %s\n", out.Identity)
	fmt.Fprintf(e.out, "algorithms: %s; versions: %s\n", strings.Join(out.Algorithms, ","), strings.Join(out.Versions, ", "))
	fmt.Fprintf(e.out, "capabilities (%s): %s\n", top, strings.Join(out.Capabilities, ","))
	if out.PKI != "" {
		fmt.Fprintf(e.out, "keys and chains: %s (operator-supplied)\n", out.PKI)
		for _, sk := range out.Skipped {
			fmt.Fprintf(e.out, "skipped: %s\n", sk)
		}
	}
	if out.PublicKey != "" {
		fmt.Fprintf(e.out, "public keys (slot 0xFF): %s\n", out.PublicKey)
		fmt.Fprintf(e.out, "try: vfio-gate attest --socket %s --responder-public-key %s\n", out.Listen, out.PublicKey)
	} else {
		fmt.Fprintf(e.out, "root CA: %s\n", out.CA)
		fmt.Fprintf(e.out, "try: vfio-gate attest --socket %s --trust-anchor %s\n", out.Listen, out.CA)
	}
}

// writeAnchors writes the PEM anchors to path, or to a new temporary file.
func writeAnchors(path string, pemBytes []byte) (string, error) {
	return writePEMFile(path, "vfio-gate-emu-ca-*.pem", pemBytes)
}

// writePEMFile writes pemBytes to path, or to a fresh temporary file named
// after pattern when path is empty, and returns the absolute path.
func writePEMFile(path, pattern string, pemBytes []byte) (string, error) {
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

// parseAsymList parses "ecdsa-p384,rsapss-3072" (the spdm.AsymAlgo names).
func parseAsymList(s string) (spdm.AsymAlgo, error) {
	var out spdm.AsymAlgo
	if s == "" {
		return 0, nil
	}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(strings.ToLower(name))
		found := false
		for i := 0; i < 12; i++ {
			if a := spdm.AsymAlgo(1) << i; a&emu.AllAlgorithms != 0 && a.String() == name {
				out |= a
				found = true
			}
		}
		if !found {
			return 0, usageErrorf("--algorithms: unknown algorithm %q (want some of %s)", name, strings.Join(asymNames(0), ","))
		}
	}
	return out, nil
}

// emuAsymOrder is the order emulate prints signature algorithms in (the
// order of the --algorithms help); bits missing here follow in bit order.
var emuAsymOrder = []spdm.AsymAlgo{spdm.AsymECDSAP256, spdm.AsymECDSAP384, spdm.AsymECDSAP521,
	spdm.AsymRSASSA2048, spdm.AsymRSAPSS2048, spdm.AsymRSASSA3072, spdm.AsymRSAPSS3072,
	spdm.AsymRSASSA4096, spdm.AsymRSAPSS4096, spdm.AsymEd25519}

// asymNames lists the signature algorithms the device offers (asym as
// parsed from --algorithms; 0 means all) by the SPDM asym names that
// --algorithms, attest.AsymName and attest.ParseAsym use (e.g. "rsassa-2048",
// not the key type "rsa-2048"), one name per algorithm.
func asymNames(asym spdm.AsymAlgo) []string {
	if asym == 0 {
		asym = emu.AllAlgorithms
	}
	names := []string{}
	for _, a := range emuAsymOrder {
		if asym&a != 0 {
			names = append(names, attest.AsymName(a))
			asym &^= a
		}
	}
	for i := 0; i < 32; i++ {
		if a := spdm.AsymAlgo(1) << i; asym&a != 0 {
			names = append(names, attest.AsymName(a))
		}
	}
	return names
}

// loadOperatorPKI reads --pki DIR or --key/--chain; nil when none is given.
func loadOperatorPKI(dir, key, chain string) (*emu.PKI, error) {
	switch {
	case dir != "" && (key != "" || chain != ""):
		return nil, usageErrorf("emulate: --pki and --key/--chain exclude each other")
	case (key == "") != (chain == ""):
		return nil, usageErrorf("emulate: --key and --chain go together")
	case dir != "":
		p, err := emu.LoadPKIDir(dir)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		return p, nil
	case key != "":
		c, err := emu.LoadKeyChain(key, chain)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		return &emu.PKI{Slots: [][]*emu.Chain{{c}}}, nil
	}
	return nil, nil
}

// deviceAsymNames lists the signature algorithms of the device's slot-0
// keys (of those --algorithms allows).
func deviceAsymNames(dev *emu.Device, asym spdm.AsymAlgo) []string {
	if asym == 0 {
		asym = emu.AllAlgorithms
	}
	var have spdm.AsymAlgo
	for _, c := range dev.Chains() {
		have |= emu.KeyTypeAlgorithms(c.Type)
	}
	return asymNames(have & asym)
}

package report

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// Emulate is the start-up banner of `vfio-gate emulate` (--json kind
// "emulate").
type Emulate struct {
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
	// Top is the highest version offered, whose capabilities are listed.
	Top spdm.Version `json:"-"`
}

// EmulateBanner is the banner of dev, built from cfg and the settings s
// that gave it, listening on addr, with its anchors in caPath and (with
// --public-key-only) its public keys in pubPath.
func EmulateBanner(dev *emu.Device, cfg emu.Config, s emu.Settings, addr, caPath, pubPath string) Emulate {
	asym, vers := cfg.Algorithms, cfg.Versions
	out := Emulate{Listen: addr, Profile: s.Profile, CA: caPath, Faults: []string{},
		Algorithms: emu.AsymNames(asym), Identity: dev.Identity().CMAName(), Slots: cfg.Slots, PublicKey: pubPath, MultiKey: s.MultiKey}
	if cfg.PKI != nil {
		out.PKI = s.PKISource()
		out.Skipped = cfg.PKI.Skipped
		out.Algorithms = dev.KeyAsymNames(asym)
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
	out.Top = slices.Max(vers)
	out.Capabilities = spdm.CapabilityNames(dev.CapabilityFlags(out.Top))
	if out.Capabilities == nil {
		out.Capabilities = []string{}
	}
	if dev.CapabilityFlags(out.Top)&spdm.CapHBeat != 0 {
		out.HeartbeatPeriod = int(s.Heartbeat)
		if s.Heartbeat == 0 {
			out.HeartbeatPeriod = emu.DefaultHeartbeatPeriod
		}
	}
	return out
}

// WriteText writes the banner for a person: where it listens, what it
// offers, and the attest command line that verifies it.
func (r Emulate) WriteText(w io.Writer) {
	fmt.Fprintf(w, "vfio-gate emulate: listening on %s (spdm-socket, PCI_DOE), profile %s\n", r.Listen, r.Profile)
	fmt.Fprintf(w, "identity: %s\n", r.Identity)
	fmt.Fprintf(w, "algorithms: %s; versions: %s\n", strings.Join(r.Algorithms, ","), strings.Join(r.Versions, ", "))
	fmt.Fprintf(w, "capabilities (%s): %s\n", r.Top, strings.Join(r.Capabilities, ","))
	if r.PKI != "" {
		fmt.Fprintf(w, "keys and chains: %s (operator-supplied)\n", r.PKI)
		for _, sk := range r.Skipped {
			fmt.Fprintf(w, "skipped: %s\n", sk)
		}
	}
	if r.PublicKey != "" {
		fmt.Fprintf(w, "public keys (slot 0xFF): %s\n", r.PublicKey)
		fmt.Fprintf(w, "try: vfio-gate attest --socket %s --responder-public-key %s\n", r.Listen, r.PublicKey)
	} else {
		fmt.Fprintf(w, "root CA: %s\n", r.CA)
		fmt.Fprintf(w, "try: vfio-gate attest --socket %s --trust-anchor %s\n", r.Listen, r.CA)
	}
}

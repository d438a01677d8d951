package emu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vfio-gate/vfio-gate/spdm"
)

// IdentityQEMUNVMe is QEMU's emulated NVMe controller (hw/nvme): 1b36:0010,
// class 010802, revision 02, subsystem 1af4:1100, and no Device Serial Number
// capability.
var IdentityQEMUNVMe = Identity{Vendor: 0x1b36, Device: 0x0010, Class: 0x010802, Revision: 0x02,
	SubVendor: 0x1af4, SubDevice: 0x1100}

// ParseIdentity parses an identity as `vfio-gate emulate --identity` takes it: "" (DefaultIdentity), "qemu-nvme", or
// comma-separated KEY=VALUE pairs (hex, optional 0x) over the default:
// vendor, device (16 bits), class (24 bits), rev (8 bits), subsystem
// (SSSS:SSSS), dsn (64 bits, or "none" for no DSN capability). Each key at
// most once.
func ParseIdentity(s string) (Identity, error) {
	switch strings.TrimSpace(s) {
	case "":
		return DefaultIdentity, nil
	case "qemu-nvme":
		return IdentityQEMUNVMe, nil
	}
	id := DefaultIdentity
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.ToLower(strings.TrimSpace(v))
		if !ok || v == "" {
			return Identity{}, fmt.Errorf("%q: want KEY=VALUE (keys vendor, device, class, rev, subsystem, dsn)", kv)
		}
		if seen[k] {
			return Identity{}, fmt.Errorf("%s given twice", k)
		}
		seen[k] = true
		hex := func(bits int) (uint64, error) {
			n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, bits)
			if err != nil {
				return 0, fmt.Errorf("%s=%s: want a %d-bit hex number", k, v, bits)
			}
			return n, nil
		}
		var n uint64
		var err error
		switch k {
		case "vendor":
			n, err = hex(16)
			id.Vendor = uint16(n)
		case "device":
			n, err = hex(16)
			id.Device = uint16(n)
		case "class":
			n, err = hex(24)
			id.Class = uint32(n)
		case "rev", "revision":
			n, err = hex(8)
			id.Revision = uint8(n)
		case "subsystem":
			sv, sd, ok := strings.Cut(v, ":")
			a, err1 := strconv.ParseUint(strings.TrimPrefix(sv, "0x"), 16, 16)
			b, err2 := strconv.ParseUint(strings.TrimPrefix(sd, "0x"), 16, 16)
			if !ok || err1 != nil || err2 != nil {
				return Identity{}, fmt.Errorf("subsystem=%s: want SSSS:SSSS (hex subsystem vendor and ID)", v)
			}
			id.SubVendor, id.SubDevice = uint16(a), uint16(b)
		case "dsn":
			if v == "none" || v == "0" {
				id.DSN = 0
				break
			}
			n, err = hex(64)
			id.DSN = n
		default:
			return Identity{}, fmt.Errorf("unknown key %q (keys vendor, device, class, rev, subsystem, dsn)", k)
		}
		if err != nil {
			return Identity{}, err
		}
	}
	return id, nil
}

// ParseVersions parses a comma-separated list of SPDM versions ("1.2,1.3");
// "" is nil (every version).
func ParseVersions(s string) ([]spdm.Version, error) {
	if s == "" {
		return nil, nil
	}
	var out []spdm.Version
	for _, v := range strings.Split(s, ",") {
		switch strings.TrimSpace(v) {
		case "1.0":
			out = append(out, spdm.Version10)
		case "1.1":
			out = append(out, spdm.Version11)
		case "1.2":
			out = append(out, spdm.Version12)
		case "1.3":
			out = append(out, spdm.Version13)
		default:
			return nil, fmt.Errorf("unknown SPDM version %q (want 1.0, 1.1, 1.2, 1.3)", v)
		}
	}
	return out, nil
}

// ParseAEAD parses the name of the one AEAD a device selects ("" is 0:
// the device's preference).
func ParseAEAD(s string) (spdm.AEADAlgo, error) {
	switch s {
	case "":
		return 0, nil
	case spdm.AEADAES128GCM.String():
		return spdm.AEADAES128GCM, nil
	case spdm.AEADAES256GCM.String():
		return spdm.AEADAES256GCM, nil
	case spdm.AEADChaCha20Poly1305.String():
		return spdm.AEADChaCha20Poly1305, nil
	}
	return 0, fmt.Errorf("%q: want aes-128-gcm, aes-256-gcm or chacha20-poly1305", s)
}

// ParseMultiKey parses the MULTI_KEY_CAP mode: "" (none), "only" or
// "negotiated".
func ParseMultiKey(s string) (spdm.MultiKeyCap, error) {
	switch s {
	case "":
		return spdm.MultiKeyNone, nil
	case "only":
		return spdm.MultiKeyOnly, nil
	case "negotiated":
		return spdm.MultiKeyNegotiated, nil
	}
	return 0, fmt.Errorf("%q: want only or negotiated", s)
}

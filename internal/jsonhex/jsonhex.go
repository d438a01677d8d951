package jsonhex

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// U8 is a byte register ("0x02": PCI revision).
type U8 uint8

// U16 is a 16-bit ID ("0x1b36": vendor, device, subsystem IDs).
type U16 uint16

// U24 is a 24-bit value ("0x010802": PCI class code).
type U24 uint32

// U64 is a 64-bit value ("0x0123456789abcdef": the Device Serial Number). A
// string, because JSON numbers lose precision above 2^53.
type U64 uint64

func (v U8) MarshalJSON() ([]byte, error)  { return quote(fmt.Sprintf("0x%02x", uint8(v))), nil }
func (v U16) MarshalJSON() ([]byte, error) { return quote(fmt.Sprintf("0x%04x", uint16(v))), nil }
func (v U24) MarshalJSON() ([]byte, error) { return quote(fmt.Sprintf("0x%06x", uint32(v))), nil }
func (v U64) MarshalJSON() ([]byte, error) { return quote(fmt.Sprintf("0x%016x", uint64(v))), nil }

func (v *U8) UnmarshalJSON(b []byte) error {
	n, err := parse(b, 8)
	*v = U8(n)
	return err
}

func (v *U16) UnmarshalJSON(b []byte) error {
	n, err := parse(b, 16)
	*v = U16(n)
	return err
}

func (v *U24) UnmarshalJSON(b []byte) error {
	n, err := parse(b, 24)
	*v = U24(n)
	return err
}

func (v *U64) UnmarshalJSON(b []byte) error {
	n, err := parse(b, 64)
	*v = U64(n)
	return err
}

func quote(s string) []byte { return []byte(`"` + s + `"`) }

// parse reads "0x1b36", "1b36" or (older documents) the number 6966, and
// refuses anything wider than bits.
func parse(b []byte, bits int) (uint64, error) {
	s := string(b)
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return 0, err
		}
		h := strings.TrimPrefix(strings.TrimPrefix(str, "0x"), "0X")
		if h == "" || len(h) > 16 || strings.HasPrefix(h, "+") || strings.HasPrefix(h, "-") {
			return 0, fmt.Errorf("jsonhex: %q is not a hex value", str)
		}
		n, err := strconv.ParseUint(h, 16, bits)
		if err != nil {
			return 0, fmt.Errorf("jsonhex: %q is not a %d-bit hex value", str, bits)
		}
		return n, nil
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("jsonhex: %s is not a %d-bit value", s, bits)
	}
	return n, nil
}

// Bytes marshals as a lower-case hex string without a prefix (byte strings:
// digests, nonces, raw blocks; docs/json.md).
type Bytes []byte

// MarshalJSON implements json.Marshaler.
func (h Bytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

// UnmarshalJSON implements json.Unmarshaler.
func (h *Bytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

package attest

import (
	"encoding/json"

	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
)

// The JSON form of IDs, class, revision, DSN and offsets is a lowercase hex
// string ("0x1b36"), the DSN included (it exceeds 2^53); see docs/json.md.
// The Go fields stay plain integers. Decoding also accepts the numbers that
// evidence written before this form holds.

type identityJSON struct {
	identityPlain
	VendorID          jsonhex.U16  `json:"vendor_id"`
	DeviceID          jsonhex.U16  `json:"device_id"`
	SubsystemVendorID jsonhex.U16  `json:"subsystem_vendor_id"`
	SubsystemID       jsonhex.U16  `json:"subsystem_id"`
	Class             jsonhex.U24  `json:"class"`
	Revision          jsonhex.U8   `json:"revision"`
	DSN               *jsonhex.U64 `json:"dsn,omitempty"`
}

type identityPlain Identity

// MarshalJSON implements json.Marshaler.
func (id Identity) MarshalJSON() ([]byte, error) {
	return json.Marshal(identityJSON{identityPlain: identityPlain(id),
		VendorID: jsonhex.U16(id.VendorID), DeviceID: jsonhex.U16(id.DeviceID),
		SubsystemVendorID: jsonhex.U16(id.SubsystemVendorID), SubsystemID: jsonhex.U16(id.SubsystemID),
		Class: jsonhex.U24(id.Class), Revision: jsonhex.U8(id.Revision), DSN: (*jsonhex.U64)(id.DSN)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (id *Identity) UnmarshalJSON(b []byte) error {
	var j identityJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*id = Identity(j.identityPlain)
	id.VendorID, id.DeviceID = uint16(j.VendorID), uint16(j.DeviceID)
	id.SubsystemVendorID, id.SubsystemID = uint16(j.SubsystemVendorID), uint16(j.SubsystemID)
	id.Class, id.Revision, id.DSN = uint32(j.Class), uint8(j.Revision), (*uint64)(j.DSN)
	return nil
}

type cmaSANJSON struct {
	cmaSANPlain
	VendorID          jsonhex.U16  `json:"vendor_id"`
	DeviceID          jsonhex.U16  `json:"device_id"`
	Class             jsonhex.U24  `json:"class"`
	Revision          jsonhex.U8   `json:"revision"`
	SubsystemVendorID *jsonhex.U16 `json:"subsystem_vendor_id,omitempty"`
	SubsystemID       *jsonhex.U16 `json:"subsystem_id,omitempty"`
	DSN               *jsonhex.U64 `json:"dsn,omitempty"`
}

type cmaSANPlain CMASAN

// MarshalJSON implements json.Marshaler.
func (s CMASAN) MarshalJSON() ([]byte, error) {
	return json.Marshal(cmaSANJSON{cmaSANPlain: cmaSANPlain(s),
		VendorID: jsonhex.U16(s.VendorID), DeviceID: jsonhex.U16(s.DeviceID), Class: jsonhex.U24(s.Class),
		Revision: jsonhex.U8(s.Revision), SubsystemVendorID: (*jsonhex.U16)(s.SubsystemVendorID),
		SubsystemID: (*jsonhex.U16)(s.SubsystemID), DSN: (*jsonhex.U64)(s.DSN)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (s *CMASAN) UnmarshalJSON(b []byte) error {
	var j cmaSANJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = CMASAN(j.cmaSANPlain)
	s.VendorID, s.DeviceID, s.Class, s.Revision = uint16(j.VendorID), uint16(j.DeviceID), uint32(j.Class), uint8(j.Revision)
	s.SubsystemVendorID, s.SubsystemID, s.DSN = (*uint16)(j.SubsystemVendorID), (*uint16)(j.SubsystemID), (*uint64)(j.DSN)
	return nil
}

type mailboxJSON struct {
	mailboxPlain
	Offset jsonhex.U16 `json:"offset"` // "0x0150": config-space offset of the DOE capability
}

type mailboxPlain Mailbox

// MarshalJSON implements json.Marshaler.
func (m Mailbox) MarshalJSON() ([]byte, error) {
	return json.Marshal(mailboxJSON{mailboxPlain: mailboxPlain(m), Offset: jsonhex.U16(m.Offset)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (m *Mailbox) UnmarshalJSON(b []byte) error {
	var j mailboxJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = Mailbox(j.mailboxPlain)
	m.Offset = uint16(j.Offset)
	return nil
}

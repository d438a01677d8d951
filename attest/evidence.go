package attest

import (
	"time"
)

// Evidence is everything learned about one function during one attestation.
// Fields that were not reached are left zero; Failure says where it stopped.
type Evidence struct {
	Identity Identity `json:"identity"`

	// DOE: mailboxes and features found. HasCMA is true when a mailbox offers
	// CMA-SPDM (vendor 0x0001 type 0x01).
	DOE    []Mailbox `json:"doe"`
	HasCMA bool      `json:"has_cma"`

	// SPDM facts; empty Version means SPDM was never negotiated.
	Version      string       `json:"version,omitempty"` // "1.2"
	Capabilities []string     `json:"capabilities,omitempty"`
	Algorithms   Algorithms   `json:"algorithms"`
	Chains       []ChainState `json:"certificate_chains"`

	ChallengeVerified             bool               `json:"challenge_verified"`
	Measurements                  []MeasurementBlock `json:"measurements"`
	MeasurementsSignatureVerified bool               `json:"measurements_signature_verified"`

	Session *Session `json:"session,omitempty"`
	TDISP   *TDISP   `json:"tdisp,omitempty"`

	// Bundle holds what an offline verifier needs to re-check the signatures:
	// the exact transcript bytes, nonces and the chain.
	Bundle Bundle `json:"evidence"`

	RoundTrips int           `json:"round_trips"`
	BytesSent  int           `json:"bytes_sent"`
	BytesRecv  int           `json:"bytes_received"`
	Started    time.Time     `json:"started"`
	Duration   time.Duration `json:"duration_ns"`
	// Timings are the durations of the steps that ran, in order.
	Timings []Timing `json:"timings,omitempty"`
	// MeasurementsOneByOne is true when the device refused "all
	// measurements" and they were read one index at a time.
	MeasurementsOneByOne bool `json:"measurements_one_by_one,omitempty"`

	// Failure is set when attestation stopped early or a check failed.
	Failure *Failure `json:"failure,omitempty"`
}

// Identity is what sysfs (or the operator, for a socket device) says the function is.
type Identity struct {
	BDF               string  `json:"bdf,omitempty"` // "0000:3b:00.0"; empty for socket devices
	VendorID          uint16  `json:"vendor_id"`
	DeviceID          uint16  `json:"device_id"`
	SubsystemVendorID uint16  `json:"subsystem_vendor_id"`
	SubsystemID       uint16  `json:"subsystem_id"`
	Class             uint32  `json:"class"` // 24-bit class code
	Revision          uint8   `json:"revision"`
	DSN               *uint64 `json:"dsn,omitempty"` // Device Serial Number, if the capability exists
	Driver            string  `json:"driver,omitempty"`
	IOMMUGroup        *int    `json:"iommu_group,omitempty"`
	Socket            string  `json:"socket,omitempty"` // HOST:PORT for spdm-socket devices
	// FromCMASAN is true when the IDs were taken from the leaf certificate's
	// CMA SAN (socket devices without --pci-id): claimed, not observed.
	FromCMASAN bool `json:"from_cma_san,omitempty"`
}

// Timing is how long one attestation step took.
type Timing struct {
	Step     string        `json:"step"`
	Duration time.Duration `json:"duration_ns"`
}

// Mailbox is one DOE instance and its discovered features ("cma-spdm", ...).
type Mailbox struct {
	Offset   uint16   `json:"offset"`
	Features []string `json:"features"`
}

// Algorithms are the negotiated algorithm names ("ecdsa-p384", "sha-384", ...).
type Algorithms struct {
	BaseAsym        string `json:"base_asym,omitempty"`
	BaseHash        string `json:"base_hash,omitempty"`
	MeasurementHash string `json:"measurement_hash,omitempty"`
	DHE             string `json:"dhe,omitempty"`
	AEAD            string `json:"aead,omitempty"`
}

// ChainState is one provisioned certificate slot and how its chain verified.
type ChainState struct {
	Slot     uint8  `json:"slot"`
	Digest   string `json:"digest"` // hex, negotiated hash of the chain buffer
	Verified bool   `json:"verified"`
	// Error is empty when Verified; ErrorKind is one of ChainError*.
	Error     string `json:"error"`
	ErrorKind string `json:"error_kind,omitempty"`
	// AnchorSHA256 is the SHA-256 of the DER of the trust anchor that verified the chain.
	AnchorSHA256 string `json:"anchor_sha256,omitempty"`
	// CMASAN is the leaf's PCI-SIG CMA subjectAltName (OID 2.23.147), nil when absent.
	CMASAN *CMASAN `json:"cma_san"`
	// CMASANError is set when the leaf carries a CMA SAN that does not parse.
	CMASANError string `json:"cma_san_error,omitempty"`
	// DeviceInfo is the DMTF device-info otherName (1.3.6.1.4.1.412.274.1), nil when absent.
	DeviceInfo   *string    `json:"device_info"`
	Certificates []CertInfo `json:"certificates"`
	// Chain is the DER of each certificate, root side first, as the device sent it.
	Chain [][]byte `json:"-"`
}

// Chain error kinds.
const (
	ChainErrorUntrusted = "untrusted-root"
	ChainErrorBroken    = "broken-chain"
	ChainErrorExpired   = "expired"
	ChainErrorKeyUsage  = "key-usage"
	ChainErrorMalformed = "malformed"
)

// CMASAN is the decoded "Vendor=…:Device=…:CC=…:REV=…[:SSVID=…:SSID=…][:DSN]" name.
type CMASAN struct {
	Raw               string  `json:"raw"`
	VendorID          uint16  `json:"vendor_id"`
	DeviceID          uint16  `json:"device_id"`
	Class             uint32  `json:"class"`
	Revision          uint8   `json:"revision"`
	SubsystemVendorID *uint16 `json:"subsystem_vendor_id,omitempty"`
	SubsystemID       *uint16 `json:"subsystem_id,omitempty"`
	DSN               *uint64 `json:"dsn,omitempty"`
	// MatchesIdentity is nil when the real IDs are unknown, else whether every
	// present field equals the function's.
	MatchesIdentity *bool `json:"matches_identity"`
}

// CertInfo summarises one certificate for people and policy.
type CertInfo struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	SHA256   string    `json:"sha256"`
}

// MeasurementBlock is one DMTF measurement block.
type MeasurementBlock struct {
	Index    uint8    `json:"index"`
	Type     uint8    `json:"type"`      // DMTFSpecMeasurementValueType bits [6:0]
	TypeName string   `json:"type_name"` // "immutable-rom", "mutable-firmware", ...
	Raw      bool     `json:"raw"`       // bit 7: raw bit stream rather than digest
	Value    HexBytes `json:"value"`
	// Spec is the MeasurementSpecification byte (bit 0 = DMTF); non-DMTF blocks are kept whole in Value.
	Spec uint8 `json:"spec"`
}

// Session describes the SPDM secure session, if one was established.
type Session struct {
	Established bool   `json:"established"`
	Version     string `json:"version,omitempty"`
	AEAD        string `json:"aead,omitempty"`
	DHE         string `json:"dhe,omitempty"`
	SessionID   uint32 `json:"session_id"`
}

// TDISP is what the device reported about its TEE device interface.
type TDISP struct {
	Version string `json:"version,omitempty"`
	State   string `json:"state"` // CONFIG_UNLOCKED, CONFIG_LOCKED, RUN, ERROR
	// Report is the raw DEVICE_INTERFACE_REPORT, when read.
	Report HexBytes `json:"report,omitempty"`
	// LockedFor is set when vfio-gate itself locked the TDI, inside the
	// session this evidence was gathered in, before the decision: the
	// owner it was locked for (the libvirt domain, or "vfio-gate"). Absent
	// when State is what the TDI was found in.
	LockedFor string `json:"locked_for,omitempty"`
}

// Bundle is the re-verifiable record: exact bytes as exchanged (hex in JSON).
type Bundle struct {
	// M1 is the CHALLENGE transcript (without signature) and Sig its signature.
	ChallengeTranscript HexBytes `json:"challenge_transcript,omitempty"`
	ChallengeSignature  HexBytes `json:"challenge_signature,omitempty"`
	ChallengeNonce      HexBytes `json:"challenge_nonce,omitempty"`
	// ChallengeResponderNonce is CHALLENGE_AUTH's own nonce.
	ChallengeResponderNonce HexBytes `json:"challenge_responder_nonce,omitempty"`
	// MeasurementSummaryHash is CHALLENGE_AUTH's summary of all measurements.
	MeasurementSummaryHash HexBytes `json:"measurement_summary_hash,omitempty"`
	// L1 is the measurement transcript (without signature).
	MeasurementTranscript HexBytes `json:"measurement_transcript,omitempty"`
	MeasurementSignature  HexBytes `json:"measurement_signature,omitempty"`
	MeasurementNonce      HexBytes `json:"measurement_nonce,omitempty"`
	// MeasurementResponderNonce is the MEASUREMENTS response's own nonce.
	MeasurementResponderNonce HexBytes `json:"measurement_responder_nonce,omitempty"`
	// LeafChain is the full SPDM cert chain buffer of the slot used for signatures.
	CertChainBuffer HexBytes `json:"cert_chain_buffer,omitempty"`
	Slot            uint8    `json:"slot"`
}

// Failure classifies why attestation stopped or a check failed. policy maps
// Kind to a reason code.
type Failure struct {
	Step    string `json:"step"` // "doe-discovery", "version", "certificate", "challenge", ...
	Kind    Kind   `json:"kind"`
	Message string `json:"message"`
}

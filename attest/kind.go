package attest

import "fmt"

//go:generate go tool stringer -type Kind -linecomment -output kind_string.go

// Kind says why attestation stopped or which check failed. Its name (String)
// is what Evidence JSON, the TPM event log and `explain` show; names never
// change meaning. policy maps each Kind to a reason code and an exit class
// (policy.KindCode, policy.ClassOf): that table is the only one.
type Kind uint8

// Failure kinds. The zero Kind is not a failure kind: a Failure always has
// one of the others.
const (
	FailUnknown         Kind = iota // unknown
	FailNoDOE                       // no-doe
	FailNoCMA                       // no-cma
	FailLockdown                    // lockdown
	FailPermission                  // permission
	FailMailboxBusy                 // mailbox-busy
	FailMailboxOwned                // mailbox-owned
	FailTimeout                     // timeout
	FailDeviceGone                  // device-removed
	FailTransport                   // transport
	FailProtocol                    // protocol
	FailSignature                   // signature-invalid
	FailChain                       // chain
	FailNonce                       // nonce
	FailSession                     // session
	FailTDISP                       // tdisp
	FailMailboxTampered             // mailbox-tampered
	numKinds
)

// Kinds lists every failure kind, in a stable order.
func Kinds() []Kind {
	ks := make([]Kind, 0, numKinds-1)
	for k := FailUnknown + 1; k < numKinds; k++ {
		ks = append(ks, k)
	}
	return ks
}

// ParseKind returns the Kind named s ("no-cma", ...).
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds() {
		if k.String() == s {
			return k, nil
		}
	}
	return FailUnknown, fmt.Errorf("attest: unknown failure kind %q", s)
}

// MarshalText writes the kind's name; the zero Kind is an error.
func (k Kind) MarshalText() ([]byte, error) {
	if k == FailUnknown || k >= numKinds {
		return nil, fmt.Errorf("attest: failure kind %d has no name", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText reads a kind's name; unknown names are an error.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

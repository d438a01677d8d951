package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
)

// AnchorFileError is a trust anchor file ReadAnchorFiles cannot use. Path
// is the file as given.
type AnchorFileError struct {
	Path string
	Err  error
}

func (e *AnchorFileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *AnchorFileError) Unwrap() error { return e.Err }

// ReadAnchorFiles reads trust anchor files (regular files of at most max
// bytes: PEM CERTIFICATE blocks or DER) into one Anchor per certificate,
// in order, each with its file's absolute path and its SHA-256, as
// CaptureOptions.Anchors wants them.
func ReadAnchorFiles(paths []string, max int64) ([]*Anchor, error) {
	var out []*Anchor
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, &AnchorFileError{Path: p, Err: err}
		}
		b, err := ReadRegularFile(abs, max)
		if err != nil {
			return nil, &AnchorFileError{Path: p, Err: err}
		}
		cs, err := ParseCertificates(b)
		if err != nil {
			return nil, &AnchorFileError{Path: p, Err: err}
		}
		for _, c := range cs {
			sum := sha256.Sum256(c.Raw)
			out = append(out, &Anchor{File: abs, Cert: c, SHA256: hex.EncodeToString(sum[:])})
		}
	}
	return out, nil
}

// CaptureDocument is the policy document `vfio-gate policy capture` prints:
// the rule Capture builds from ev under o, headed by comments naming the
// capture time now, the device (BDF or spdm-socket address, IDs, the CMA
// SAN of its verified chain) and the evidence digest.
func CaptureDocument(ev *attest.Evidence, o CaptureOptions, now time.Time) (string, error) {
	r, err := Capture(ev, o)
	if err != nil {
		return "", err
	}
	id := ev.Identity
	dev := fmt.Sprintf("device %s [%04x:%04x]", id.BDF, id.VendorID, id.DeviceID)
	if id.BDF == "" {
		dev = fmt.Sprintf("spdm-socket %s [%04x:%04x]", id.Socket, id.VendorID, id.DeviceID)
	}
	for _, c := range ev.Chains {
		if c.Slot == ev.Bundle.Slot && c.Verified && c.CMASAN != nil {
			dev += ", CMA SAN " + c.CMASAN.Raw
		}
	}
	header := []string{"vfio-gate policy capture, " + now.UTC().Format(time.RFC3339), dev,
		fmt.Sprintf("evidence digest %x", ev.Digest())}
	return MarshalDocument(header, r), nil
}

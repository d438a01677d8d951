package attest

import "github.com/vfio-gate/vfio-gate/internal/jsonhex"

// HexBytes marshals as a lower-case hex string in JSON (jsonhex.Bytes).
type HexBytes = jsonhex.Bytes

//go:build !cgo

package tpm

import (
	"errors"

	"github.com/google/go-tpm/tpm2/transport"
)

func openSim() (transport.TPMCloser, error) {
	return nil, tpmErr("open sim", errors.New("built without cgo: the in-process simulator is unavailable"))
}

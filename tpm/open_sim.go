//go:build cgo

package tpm

import (
	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"
)

func openSim() (transport.TPMCloser, error) {
	s, err := simulator.Get()
	if err != nil {
		return nil, tpmErr("open sim", err)
	}
	return transport.FromReadWriteCloser(s), nil
}

package attest

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// Classify maps an error of the DOE/SPDM/PCI layers to a failure Kind, by
// errors.Is/As on their sentinels and types only (never the error's text).
// Errors it does not recognise are protocol failures: fail closed.
func Classify(err error) Kind {
	if err == nil {
		return FailUnknown
	}
	if k := classify(err); k != FailUnknown {
		return k
	}
	return FailProtocol
}

// blockedKind maps a pci.MayDriveDOE refusal to a Failure kind; an
// unrecognised refusal is a permission problem (the host would not let us look).
func blockedKind(err error) Kind {
	if k := classify(err); k != FailUnknown {
		return k
	}
	return FailPermission
}

func classify(err error) Kind {
	var (
		ve *spdm.VerificationError
		ce *spdm.ChainError
		pe *spdm.ProtocolError
		re *spdm.ResponderError
		de *spdm.DecodeError
		dp *doe.ProtocolError
		ne net.Error
	)
	switch {
	case errors.Is(err, pci.ErrDeviceRemoved), errors.Is(err, pci.ErrNoDevice):
		return FailDeviceGone
	case errors.Is(err, pci.ErrDriverOwnsMailbox), errors.Is(err, pci.ErrTSMOwnsMailbox):
		return FailMailboxOwned
	case errors.Is(err, doe.ErrMailboxBusy):
		return FailMailboxBusy
	case errors.Is(err, doe.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, context.Canceled):
		return FailTimeout
	case errors.Is(err, pci.ErrLockdown):
		return FailLockdown
	case errors.Is(err, pci.ErrNeedCapSysAdmin), errors.Is(err, pci.ErrReadOnlyConfig), errors.Is(err, fs.ErrPermission),
		errors.Is(err, pci.ErrNotRoot):
		return FailPermission
	case errors.As(err, &ce):
		return FailChain
	case errors.As(err, &ve):
		switch ve.Step {
		case "certificate-chain", "root-hash", "digest":
			return FailChain
		}
		return FailSignature
	case errors.Is(err, spdm.ErrNonceNotEchoed):
		return FailNonce
	case errors.As(err, &pe), errors.As(err, &re), errors.As(err, &de):
		return FailProtocol
	case errors.Is(err, doe.ErrMailboxError), errors.As(err, &dp), errors.Is(err, doe.ErrTooLarge),
		errors.Is(err, doe.ErrAborted), errors.Is(err, doe.ErrNoMailbox):
		return FailTransport
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNREFUSED):
		return FailTransport
	}
	return FailUnknown
}

package socket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vfio-gate/vfio-gate/doe"
)

// Command is the spdm-socket command word.
type Command uint32

// Commands used with DOE (SPEC-FACTS §6.2; values shared by QEMU and spdm-emu).
const (
	CommandNormal   Command = 0x0001
	CommandShutdown Command = 0xFFFE
	CommandUnknown  Command = 0xFFFF
)

// Transport is the spdm-socket transport type.
type Transport uint32

// TransportPCIDOE: the payload is a DOE data object.
const TransportPCIDOE Transport = 0x02

func (c Command) String() string {
	switch c {
	case CommandNormal:
		return "NORMAL"
	case CommandShutdown:
		return "SHUTDOWN"
	case CommandUnknown:
		return "UNKNOWN"
	}
	return fmt.Sprintf("Command(%#x)", uint32(c))
}

func (t Transport) String() string {
	if t == TransportPCIDOE {
		return "PCI_DOE"
	}
	return fmt.Sprintf("Transport(%#x)", uint32(t))
}

const (
	headerSize = 12
	// MaxMessage caps a message payload: the largest DOE object (2^18 DW).
	MaxMessage = doe.MaxObjectDW * 4
)

// ErrMessageTooLarge: the peer announced a payload over the limit.
var ErrMessageTooLarge = errors.New("doe/socket: message payload over the limit")

// message is one spdm-socket message.
type message struct {
	cmd       Command
	transport Transport
	payload   []byte
}

// writeMessage sends m as one write.
func writeMessage(w io.Writer, m message) error {
	b := make([]byte, headerSize, headerSize+len(m.payload))
	binary.BigEndian.PutUint32(b[0:], uint32(m.cmd))
	binary.BigEndian.PutUint32(b[4:], uint32(m.transport))
	binary.BigEndian.PutUint32(b[8:], uint32(len(m.payload)))
	_, err := w.Write(append(b, m.payload...))
	return err
}

// readMessage reads one message whose payload is at most max bytes. The
// payload buffer grows with the bytes actually received, so a peer that
// announces a large size and sends nothing costs no large allocation.
func readMessage(r io.Reader, max int) (message, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return message{}, err
	}
	m := message{
		cmd:       Command(binary.BigEndian.Uint32(h[0:])),
		transport: Transport(binary.BigEndian.Uint32(h[4:])),
	}
	n := int64(binary.BigEndian.Uint32(h[8:]))
	if n > int64(max) {
		return message{}, fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, n, max)
	}
	var buf bytes.Buffer
	buf.Grow(int(min(n, 4096)))
	if _, err := io.CopyN(&buf, r, n); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return message{}, fmt.Errorf("doe/socket: payload of %d bytes: %w", n, err)
	}
	m.payload = buf.Bytes()
	if m.payload == nil {
		m.payload = []byte{}
	}
	return m, nil
}

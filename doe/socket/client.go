package socket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
)

// Conn is an spdm-socket client carrying DOE objects: a doe.Conn. After an
// I/O or protocol error the stream may be out of step, so the error is
// sticky: every later Exchange returns it.
type Conn struct {
	mu          sync.Mutex
	c           net.Conn
	r           io.Reader // c, with TCP_QUICKACK re-armed before each read (Linux)
	maxResponse int
	err         error
}

// Dial connects to an spdm-socket responder (QEMU's peer: spdm-emu
// `spdm_responder_emu --trans PCI_DOE`, default port 2323) at addr.
func Dial(ctx context.Context, addr string) (*Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("doe/socket: %w", err)
	}
	return NewConn(c), nil
}

// NewConn wraps an established connection.
func NewConn(c net.Conn) *Conn { return &Conn{c: c, r: newReader(c), maxResponse: doe.MaxPayload} }

// SetMaxResponse caps response payloads (bytes, at most doe.MaxPayload).
func (c *Conn) SetMaxResponse(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > 0 && n <= doe.MaxPayload {
		c.maxResponse = n
	}
}

// Exchanger returns a doe.Exchanger bound to feature f of this connection.
func (c *Conn) Exchanger(f doe.Feature) *doe.Exchanger { return doe.NewExchanger(c, f) }

// bindCtx applies ctx's deadline to the connection and makes cancellation
// interrupt blocked I/O. The returned func undoes both.
func (c *Conn) bindCtx(ctx context.Context) func() {
	d, _ := ctx.Deadline()
	c.c.SetDeadline(d) // zero: none
	stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		c.c.SetDeadline(time.Time{})
	}
}

// ioErr wraps an I/O failure, preferring the context's reason.
func ioErr(ctx context.Context, what string, err error) error {
	if d, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && time.Until(d) < time.Second {
		<-ctx.Done() // the conn deadline is ctx's; its timer may fire a hair later
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("doe/socket: %s: %w: %w", what, doe.ErrTimeout, cerr)
		}
		return fmt.Errorf("doe/socket: %s: %w", what, cerr)
	}
	return fmt.Errorf("doe/socket: %s: %w", what, err)
}

// Exchange sends req as one DOE object of feature f (NORMAL, PCI_DOE) and
// returns the response payload, DW-padded. The response must be a NORMAL
// PCI_DOE message holding exactly one object of feature f whose header
// Length matches its size and whose payload is within the limit; anything
// else is a *doe.ProtocolError.
func (c *Conn) Exchange(ctx context.Context, f doe.Feature, req []byte) ([]byte, error) {
	obj, err := doe.EncodeObject(f, req)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	rsp, err := c.exchange(ctx, f, obj)
	if err != nil {
		c.err = fmt.Errorf("doe/socket: connection unusable after: %w", err)
		return nil, err
	}
	return rsp, nil
}

func (c *Conn) exchange(ctx context.Context, f doe.Feature, obj []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, ioErr(ctx, "exchange", err)
	}
	defer c.bindCtx(ctx)()
	if err := writeMessage(c.c, message{cmd: CommandNormal, transport: TransportPCIDOE, payload: obj}); err != nil {
		return nil, ioErr(ctx, "sending request", err)
	}
	m, err := readMessage(c.r, c.maxResponse+doe.HeaderSize)
	if err != nil {
		if errors.Is(err, ErrMessageTooLarge) {
			return nil, &doe.ProtocolError{Field: "PayloadSize", Reason: err.Error()}
		}
		return nil, ioErr(ctx, "reading response", err)
	}
	if m.cmd != CommandNormal || m.transport != TransportPCIDOE {
		return nil, &doe.ProtocolError{Field: "socket header",
			Reason: fmt.Sprintf("command %v transport %v, want NORMAL and PCI_DOE", m.cmd, m.transport)}
	}
	if len(m.payload) == 0 {
		return nil, &doe.ProtocolError{Field: "PayloadSize", Reason: "empty response: the responder dropped the request"}
	}
	got, payload, err := doe.DecodeObject(m.payload, c.maxResponse)
	if err != nil {
		return nil, err
	}
	if got != f {
		return nil, &doe.ProtocolError{Field: "header", Reason: fmt.Sprintf("response object is %s, request was %s", got.Name(), f.Name())}
	}
	return bytes.Clone(payload), nil
}

// Close sends SHUTDOWN (which ends this connection on the responder, not
// the responder itself), waits up to a second for its echo, and closes.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.c.SetDeadline(time.Now().Add(time.Second))
		if writeMessage(c.c, message{cmd: CommandShutdown, transport: TransportPCIDOE, payload: []byte{}}) == nil {
			readMessage(c.r, 0) // spdm-emu echoes SHUTDOWN; QEMU's peers may just close
		}
	}
	c.err = net.ErrClosed
	return c.c.Close()
}

var _ doe.Conn = (*Conn)(nil)

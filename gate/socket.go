package gate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/policy"
)

// spdm-socket protocol (QEMU backends/spdm-socket.c, DMTF spdm-emu
// command.h; SPEC-FACTS §6.2): every message in both directions is
// Command u32 BE ‖ TransportType u32 BE ‖ PayloadSize u32 BE ‖ payload. With
// the PCI_DOE transport the payload is a whole DOE data object.
const (
	sockCmdNormal      = 0x0001
	sockCmdShutdown    = 0xFFFE
	sockTransportDOE   = 0x02
	sockMaxPayload     = 1 << 20 // cap on what a server may announce
	sockDefaultTimeout = 10 * time.Second
)

// ErrSocketProtocol is a malformed or unexpected spdm-socket message.
var ErrSocketProtocol = errors.New("gate: spdm-socket protocol error")

// SocketTransport carries CMA-SPDM to a responder behind the spdm-socket
// protocol (DMTF spdm-emu, `vfio-gate emulate`), as QEMU does for its
// emulated devices. It implements spdm.Transport. One exchange at a time.
type SocketTransport struct {
	mu   sync.Mutex
	conn net.Conn
}

// DialSocket connects to HOST:PORT.
func DialSocket(ctx context.Context, addr string) (*SocketTransport, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gate: spdm-socket %s: %w", addr, err)
	}
	return &SocketTransport{conn: c}, nil
}

// Exchange sends one SPDM request and returns the response payload
// (DW-padded, as over DOE).
func (s *SocketTransport) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj, err := doe.EncodeObject(doe.FeatureCMA, req)
	if err != nil {
		return nil, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(sockDefaultTimeout)
	}
	if err := s.conn.SetDeadline(dl); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := s.send(sockCmdNormal, obj); err != nil {
		return nil, s.ctxErr(ctx, err)
	}
	cmd, tt, payload, err := s.recv()
	if err != nil {
		return nil, s.ctxErr(ctx, err)
	}
	if cmd != sockCmdNormal || tt != sockTransportDOE {
		return nil, fmt.Errorf("%w: reply command %#x transport %#x, want NORMAL over PCI_DOE", ErrSocketProtocol, cmd, tt)
	}
	f, rsp, err := doe.DecodeObject(payload, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSocketProtocol, err)
	}
	if f != doe.FeatureCMA {
		return nil, fmt.Errorf("%w: reply object is %s, want CMA-SPDM", ErrSocketProtocol, f)
	}
	return rsp, nil
}

func (s *SocketTransport) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("gate: spdm-socket: %w", ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("gate: spdm-socket: %w", context.DeadlineExceeded)
	}
	return fmt.Errorf("gate: spdm-socket: %w", err)
}

func (s *SocketTransport) send(cmd uint32, payload []byte) error {
	b := make([]byte, 12, 12+len(payload))
	binary.BigEndian.PutUint32(b[0:], cmd)
	binary.BigEndian.PutUint32(b[4:], sockTransportDOE)
	binary.BigEndian.PutUint32(b[8:], uint32(len(payload)))
	_, err := s.conn.Write(append(b, payload...))
	return err
}

func (s *SocketTransport) recv() (cmd, tt uint32, payload []byte, err error) {
	var h [12]byte
	if _, err := io.ReadFull(s.conn, h[:]); err != nil {
		return 0, 0, nil, err
	}
	cmd, tt = binary.BigEndian.Uint32(h[0:]), binary.BigEndian.Uint32(h[4:])
	n := binary.BigEndian.Uint32(h[8:])
	if n > sockMaxPayload {
		return 0, 0, nil, fmt.Errorf("%w: reply announces %d bytes", ErrSocketProtocol, n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(s.conn, payload); err != nil {
		return 0, 0, nil, err
	}
	return cmd, tt, payload, nil
}

// Close tells the server the session ends (SHUTDOWN, best effort) and closes.
func (s *SocketTransport) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn.SetDeadline(time.Now().Add(time.Second))
	_ = s.send(sockCmdShutdown, nil)
	return s.conn.Close()
}

// CheckSocket attests a responder behind the spdm-socket protocol at addr
// (HOST:PORT), evaluates id (the operator's word for what the device is:
// vendor and device ID) against the policy and records the decision. No
// sysfs function is involved, so there is no lock and nothing to bind.
func (g *Gate) CheckSocket(ctx context.Context, addr string, id attest.Identity, confidential bool) (Decision, error) {
	id.Socket = addr
	it := &item{}
	it.d.Identity = id
	t, err := DialSocket(ctx, addr)
	var ev *attest.Evidence
	if err == nil {
		ev, err = attest.Transport(ctx, t, id, g.attestOptions(id))
		t.Close()
	}
	if err != nil || ev == nil {
		kind := attest.FailTransport
		if errors.Is(err, context.DeadlineExceeded) {
			kind = attest.FailTimeout
		}
		msg := "no evidence"
		if err != nil {
			msg = err.Error()
		}
		ev = &attest.Evidence{Identity: id, Started: g.now(), Failure: &attest.Failure{Step: "connect", Kind: kind, Message: msg}}
	}
	if ev.Identity.Socket == "" {
		ev.Identity.Socket = addr
	}
	it.d.Evidence = ev
	it.d.Identity = ev.Identity
	it.d.Verdict = g.o.Policy.Evaluate(ev, policy.Input{Confidential: confidential, Now: g.now()})
	it.d.EvidenceDigest = ev.Digest()
	g.record(ctx, []*item{it}, confidential)
	return it.d, nil
}

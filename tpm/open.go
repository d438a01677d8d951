package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"golang.org/x/sys/unix"
)

// Largest command or response we accept from any backend. TPM 2.0 buffers
// are a few KiB (TPM2_PT_MAX_COMMAND_SIZE is typically 4096); this bounds
// what a broken or hostile peer can make us allocate.
const maxResponse = 64 << 10

// TPM command/response header: tag u16, size u32, code u32 (big-endian).
// TPM 2.0 Part 1 §18.
const tpmHeaderLen = 10

// dialTimeout bounds connecting to swtpm; sendTimeout one command on a
// socket (a hung swtpm must not hang the gate: a decision waits at most
// this long for a TPM that never answers, since the connection is dropped
// and the next command fails or redials; the kernel driver has its own
// timeouts for /dev/tpmrm0).
const (
	dialTimeout = 5 * time.Second
	sendTimeout = 10 * time.Second
)

// Open opens a TPM backend:
//
//	/dev/tpmrm0 (or any path)  the kernel resource manager, blocking syscalls
//	tcp:HOST:PORT              swtpm / MS simulator command port (TPM_SEND_COMMAND framing)
//	unix:PATH                  a unix stream socket speaking raw TPM commands (swtpm --server type=unixio)
//	sim                        go-tpm-tools' in-process reference simulator (cgo), powered on and started;
//	                           fresh (manufactured) on every Open, one handle per process at a time:
//	                           a second Open("sim") blocks until the first handle is closed
//
// Errors match ErrTPM.
func Open(spec string) (transport.TPMCloser, error) {
	switch {
	case spec == "sim":
		return openSim()
	case strings.HasPrefix(spec, "tcp:"):
		addr := strings.TrimPrefix(spec, "tcp:")
		return openStream("tcp", addr, true, sendTimeout)
	case strings.HasPrefix(spec, "unix:"):
		return openStream("unix", strings.TrimPrefix(spec, "unix:"), false, sendTimeout)
	case strings.HasPrefix(spec, "/"):
		return openDevice(spec)
	default:
		return nil, tpmErr("open", fmt.Errorf("unknown TPM %q: want /dev/tpmrm0, tcp:HOST:PORT, unix:PATH or sim", spec))
	}
}

// deviceTPM talks to a character device with plain blocking read(2) and
// write(2). os.OpenFile would put the fd under the runtime poller in
// non-blocking mode, and a read on /dev/tpmrm0 then sometimes returns 0
// bytes (EOF) before the response is ready.
type deviceTPM struct {
	mu   sync.Mutex
	fd   int
	path string
	buf  []byte
}

func openDevice(path string) (*deviceTPM, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, tpmErr("open "+path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return nil, tpmErr("open "+path, errors.New("not a character device"))
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, tpmErr("open "+path, err)
	}
	return &deviceTPM{fd: fd, path: path, buf: make([]byte, maxResponse)}, nil
}

// Send writes one command and reads its whole response.
func (d *deviceTPM) Send(cmd []byte) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil, tpmErr("send", errors.New("device closed"))
	}
	for {
		n, err := unix.Write(d.fd, cmd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, tpmErr("write "+d.path, err)
		}
		if n != len(cmd) {
			return nil, tpmErr("write "+d.path, fmt.Errorf("short write %d of %d bytes", n, len(cmd)))
		}
		break
	}
	for {
		n, err := unix.Read(d.fd, d.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, tpmErr("read "+d.path, err)
		}
		if n < tpmHeaderLen {
			return nil, tpmErr("read "+d.path, fmt.Errorf("response of %d bytes, shorter than a header", n))
		}
		return append([]byte(nil), d.buf[:n]...), nil
	}
}

// Close closes the fd.
func (d *deviceTPM) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// streamTPM speaks to a TPM over a byte stream. With msSim it wraps each
// command in the TPM simulator's TPM_SEND_COMMAND framing (TCG reference
// implementation TpmTcpProtocol.h), which swtpm's TCP server accepts:
// u32 8, u8 locality, u32 len, command; response u32 len, response, u32 0.
// Without it, raw TPM commands go back to back. Reads use io.ReadFull: a
// large response may arrive in several segments.
//
// A connection that failed in any way (a timeout above all) is closed and
// never used again: a late answer to a command that timed out would
// otherwise be read as the answer to the next one. The next Send dials
// afresh.
type streamTPM struct {
	mu       sync.Mutex
	conn     net.Conn // nil after a failure: redial
	network  string
	addr     string
	msSim    bool
	timeout  time.Duration
	closed   bool
	lastFail error
}

func openStream(network, addr string, msSim bool, timeout time.Duration) (*streamTPM, error) {
	s := &streamTPM{network: network, addr: addr, msSim: msSim, timeout: timeout}
	c, err := net.DialTimeout(network, addr, dialTimeout)
	if err != nil {
		return nil, tpmErr("open "+network+":"+addr, err)
	}
	s.conn = c
	return s, nil
}

const tpmSendCommand = 8

// Send writes one command and reads its whole response, on a connection
// that has never failed (dialled again after a failure).
func (s *streamTPM) Send(cmd []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(cmd) > maxResponse {
		return nil, tpmErr("send", fmt.Errorf("command of %d bytes too large", len(cmd)))
	}
	if s.closed {
		return nil, tpmErr("send", errors.New("connection closed"))
	}
	if s.conn == nil {
		c, err := net.DialTimeout(s.network, s.addr, dialTimeout)
		if err != nil {
			return nil, tpmErr("send", fmt.Errorf("reconnecting after %v: %w", s.lastFail, err))
		}
		s.conn = c
	}
	rsp, err := s.exchange(cmd)
	if err != nil {
		// Never reuse a connection that failed: drop it.
		s.conn.Close()
		s.conn, s.lastFail = nil, err
		return nil, err
	}
	return rsp, nil
}

func (s *streamTPM) exchange(cmd []byte) ([]byte, error) {
	if err := s.conn.SetDeadline(time.Now().Add(s.timeout)); err != nil {
		return nil, tpmErr("send", err)
	}
	var out []byte
	if s.msSim {
		out = binary.BigEndian.AppendUint32(out, tpmSendCommand)
		out = append(out, 0) // locality 0
		out = binary.BigEndian.AppendUint32(out, uint32(len(cmd)))
	}
	out = append(out, cmd...)
	if _, err := s.conn.Write(out); err != nil {
		return nil, tpmErr("send", err)
	}
	if s.msSim {
		var n [4]byte
		if _, err := io.ReadFull(s.conn, n[:]); err != nil {
			return nil, tpmErr("receive", err)
		}
		l := binary.BigEndian.Uint32(n[:])
		if l < tpmHeaderLen || l > maxResponse {
			return nil, tpmErr("receive", fmt.Errorf("simulator announced a %d-byte response", l))
		}
		rsp := make([]byte, l)
		if _, err := io.ReadFull(s.conn, rsp); err != nil {
			return nil, tpmErr("receive", err)
		}
		if _, err := io.ReadFull(s.conn, n[:]); err != nil {
			return nil, tpmErr("receive", err)
		}
		if ack := binary.BigEndian.Uint32(n[:]); ack != 0 {
			return nil, tpmErr("receive", fmt.Errorf("simulator acknowledged with %d", ack))
		}
		return rsp, nil
	}
	hdr := make([]byte, tpmHeaderLen)
	if _, err := io.ReadFull(s.conn, hdr); err != nil {
		return nil, tpmErr("receive", err)
	}
	l := binary.BigEndian.Uint32(hdr[2:6])
	if l < tpmHeaderLen || l > maxResponse {
		return nil, tpmErr("receive", fmt.Errorf("response header says %d bytes", l))
	}
	rsp := make([]byte, l)
	copy(rsp, hdr)
	if _, err := io.ReadFull(s.conn, rsp[tpmHeaderLen:]); err != nil {
		return nil, tpmErr("receive", err)
	}
	return rsp, nil
}

// Close closes the connection.
func (s *streamTPM) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

//go:build linux

package socket

import (
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// quickAckReader reads a TCP connection with TCP_QUICKACK re-armed before
// every read (tcp(7): the flag is not permanent, the kernel drops back to
// delayed ACKs on its own). A peer that writes an spdm-socket header and
// its payload separately with Nagle's algorithm on (DMTF spdm-emu, QEMU's
// spdm-socket) sends the payload only once the header is ACKed; with
// delayed ACKs every exchange would stall ~40 ms.
type quickAckReader struct {
	c  net.Conn
	rc syscall.RawConn
}

// newReader returns the reader for c: quickAckReader for TCP, c itself
// otherwise.
func newReader(c net.Conn) io.Reader {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckReader{c: c, rc: rc}
}

func (q *quickAckReader) Read(p []byte) (int, error) {
	// A failure only costs latency, never correctness: ignore it.
	_ = q.rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
	return q.c.Read(p)
}

//go:build linux

package main

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// blockingTPM is a go-tpm transport.TPM on a TPM character device using plain
// blocking read(2)/write(2): one command write, one response read. (Go's
// os.File on /dev/tpmrm0 goes through the runtime poller; a guest run once
// saw a read return EOF there. Blocking syscalls have no such failure mode.)
type blockingTPM struct {
	fd   int
	path string
}

func openTPM(path string) (*blockingTPM, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &blockingTPM{fd: fd, path: path}, nil
}

func (t *blockingTPM) Close() error { return unix.Close(t.fd) }

const tpmMaxResponse = 4096

// Send implements go-tpm's transport.TPM.
func (t *blockingTPM) Send(cmd []byte) ([]byte, error) {
	n, err := unix.Write(t.fd, cmd)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", t.path, err)
	}
	if n != len(cmd) {
		return nil, fmt.Errorf("write %s: %d of %d bytes", t.path, n, len(cmd))
	}
	buf := make([]byte, tpmMaxResponse)
	n, err = unix.Read(t.fd, buf)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.path, err)
	}
	if n < 10 {
		return nil, fmt.Errorf("read %s: %d bytes, shorter than a response header", t.path, n)
	}
	if size := binary.BigEndian.Uint32(buf[2:]); int(size) != n {
		return nil, fmt.Errorf("read %s: %d bytes, response header says %d", t.path, n, size)
	}
	return buf[:n], nil
}

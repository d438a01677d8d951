//go:build !linux

package socket

import (
	"io"
	"net"
)

// newReader returns c: TCP_QUICKACK is Linux-only.
func newReader(c net.Conn) io.Reader { return c }

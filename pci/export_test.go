package pci

import "encoding/binary"

// WriteU8 writes one byte of config space (tests only: production writes
// are dwords, the DOE registers' width).
func WriteU8(cfg ConfigSpace, off int64, v uint8) error { return write(cfg, off, []byte{v}) }

// WriteU16 writes an aligned little-endian word (tests only).
func WriteU16(cfg ConfigSpace, off int64, v uint16) error {
	return write(cfg, off, binary.LittleEndian.AppendUint16(nil, v))
}

// SetAfterFound installs a hook that runs once Function has found a device.
func SetAfterFound(s *System, f func()) { s.afterFound = f }

// WriteErr exposes the classification of failed config writes.
func WriteErr(s *System, bdf BDF, err error) error { return s.writeErr(bdf, err) }

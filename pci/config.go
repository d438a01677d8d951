package pci

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ConfigSpace is a function's configuration space. *os.File on
// /sys/bus/pci/devices/<bdf>/config satisfies it; so does the software device.
// Accesses are aligned and 1, 2 or 4 bytes wide: sysfs turns an aligned dword
// into one config cycle.
type ConfigSpace interface {
	io.ReaderAt
	io.WriterAt
}

// ConfigSize is the size of PCIe configuration space.
const ConfigSize = 4096

// ErrShortConfig is returned when a read returns fewer bytes than asked: sysfs
// gives processes without CAP_SYS_ADMIN only the first 64 bytes.
var ErrShortConfig = errors.New("pci: short config space access (config space beyond 64 bytes needs CAP_SYS_ADMIN)")

// ErrUnaligned is returned for an access that is not naturally aligned.
var ErrUnaligned = errors.New("pci: unaligned config space access")

func checkAccess(off int64, size int) error {
	if off < 0 || off+int64(size) > ConfigSize {
		return fmt.Errorf("pci: config offset %#x size %d out of range", off, size)
	}
	if off%int64(size) != 0 {
		return fmt.Errorf("%w: offset %#x size %d", ErrUnaligned, off, size)
	}
	return nil
}

func read(cfg ConfigSpace, off int64, b []byte) error {
	if err := checkAccess(off, len(b)); err != nil {
		return err
	}
	n, err := cfg.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: read %d of %d bytes at %#x", ErrShortConfig, n, len(b), off)
	}
	return fmt.Errorf("pci: config read at %#x: %w", off, err)
}

func write(cfg ConfigSpace, off int64, b []byte) error {
	if err := checkAccess(off, len(b)); err != nil {
		return err
	}
	n, err := cfg.WriteAt(b, off)
	if err != nil {
		return fmt.Errorf("pci: config write at %#x: %w", off, err)
	}
	if n != len(b) {
		return fmt.Errorf("pci: short config write at %#x: %d of %d bytes", off, n, len(b))
	}
	return nil
}

// ReadU8 reads one byte of config space.
func ReadU8(cfg ConfigSpace, off int64) (uint8, error) {
	var b [1]byte
	err := read(cfg, off, b[:])
	return b[0], err
}

// ReadU16 reads an aligned little-endian word.
func ReadU16(cfg ConfigSpace, off int64) (uint16, error) {
	var b [2]byte
	err := read(cfg, off, b[:])
	return binary.LittleEndian.Uint16(b[:]), err
}

// ReadU32 reads an aligned little-endian dword.
func ReadU32(cfg ConfigSpace, off int64) (uint32, error) {
	var b [4]byte
	err := read(cfg, off, b[:])
	return binary.LittleEndian.Uint32(b[:]), err
}

// WriteU32 writes an aligned little-endian dword.
func WriteU32(cfg ConfigSpace, off int64, v uint32) error {
	return write(cfg, off, binary.LittleEndian.AppendUint32(nil, v))
}

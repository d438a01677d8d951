//go:build linux

package main

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// VFIO ioctls (include/uapi/linux/vfio.h): _IO(VFIO_TYPE=';', VFIO_BASE=100 + n).
const (
	vfioGetAPIVersion   = 0x3b64 // VFIO_GET_API_VERSION
	vfioGroupGetStatus  = 0x3b67 // VFIO_GROUP_GET_STATUS
	vfioAPIVersion      = 0
	vfioGroupFlagViable = 1 << 0
)

type vfioGroupStatus struct {
	Argsz uint32
	Flags uint32
}

// vfioAPI opens the container device and returns VFIO_GET_API_VERSION.
func vfioAPI(dev string) (int, error) {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	v, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), vfioGetAPIVersion, 0)
	if errno != 0 {
		return 0, fmt.Errorf("VFIO_GET_API_VERSION: %w", errno)
	}
	return int(v), nil
}

// vfioGroupFlags opens /dev/vfio/N and returns VFIO_GROUP_GET_STATUS flags.
func vfioGroupFlags(dev string) (uint32, error) {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	st := vfioGroupStatus{Argsz: uint32(unsafe.Sizeof(vfioGroupStatus{}))}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), vfioGroupGetStatus, uintptr(unsafe.Pointer(&st)))
	if errno != 0 {
		return 0, fmt.Errorf("VFIO_GROUP_GET_STATUS on %s: %w", dev, errno)
	}
	return st.Flags, nil
}

//go:build linux

package audit

import (
	"time"

	"golang.org/x/sys/unix"
)

func monotonicNow() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

package audit

import "errors"

// Sentinels for what the kernel or the process lacks. Each error built on
// them says what would fix it.
var (
	ErrNoBTF        = errors.New("audit: kernel has no BTF")
	ErrNoKprobes    = errors.New("audit: kprobes unavailable")
	ErrPermission   = errors.New("audit: not permitted")
	ErrNotSupported = errors.New("audit: not supported on this platform")
)

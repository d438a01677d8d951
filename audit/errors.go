package audit

import "errors"

// Sentinels for what the kernel or the process lacks. Each error built on
// them says what would fix it.
var (
	ErrNoBTF        = errors.New("audit: kernel has no BTF")
	ErrNoKprobes    = errors.New("audit: kprobes unavailable")
	ErrNoFentry     = errors.New("audit: fentry unavailable")
	ErrPermission   = errors.New("audit: not permitted")
	ErrNotSupported = errors.New("audit: not supported on this platform")
)

// Mode is how the probes attach.
type Mode string

const (
	ModeAuto   Mode = ""       // fentry where the kernel allows, else kprobes
	ModeFentry Mode = "fentry" // BPF trampolines
	ModeKprobe Mode = "kprobe" // kprobes and kretprobes
)

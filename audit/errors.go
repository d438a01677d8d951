package audit

import "errors"

// Sentinels for what the kernel or the process lacks. Each error built on
// them says what would fix it.
var (
	ErrNoBTF     = errors.New("audit: kernel has no BTF")
	ErrNoKprobes = errors.New("audit: kprobes unavailable")
	ErrNoFentry  = errors.New("audit: fentry unavailable")
	// ErrNoKprobeMulti: kprobe.multi links (fprobe) did not load or
	// attach; the kernel's reason follows.
	ErrNoKprobeMulti = errors.New("audit: kprobe.multi unavailable")
	ErrPermission    = errors.New("audit: not permitted")
	ErrNotSupported  = errors.New("audit: not supported on this platform")
)

// Mode is how the probes attach.
type Mode string

const (
	ModeAuto        Mode = ""             // fentry where the kernel allows, else kprobe.multi, else kprobes
	ModeFentry      Mode = "fentry"       // BPF trampolines
	ModeKprobeMulti Mode = "kprobe-multi" // kprobe.multi links (fprobe: Linux >= 5.18, CONFIG_FPROBE)
	ModeKprobe      Mode = "kprobe"       // classic kprobes (on ftrace at a function's entry)
)

// ParseMode reads a mode as a person names it: auto, fentry, kprobe-multi
// or kprobe.
func ParseMode(s string) (m Mode, ok bool) {
	switch s {
	case "auto":
		return ModeAuto, true
	case string(ModeFentry), string(ModeKprobeMulti), string(ModeKprobe):
		return Mode(s), true
	}
	return "", false
}

// Probe loads the monitor's BPF programs and unloads them again: nil when
// audit can run here, else why not (New's error: ErrNotSupported,
// ErrPermission, ...).
func Probe() error {
	m, err := New(Options{})
	if err != nil {
		return err
	}
	return m.Close()
}

package libvirt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DropInName is the file vfio-gate installs under hooks/qemu.d/.
const DropInName = "vfio-gate"

// dropInMarker identifies files we wrote, so uninstall never removes anyone else's.
const dropInMarker = "# installed by vfio-gate install-hook"

// InstallOptions configure InstallHook.
type InstallOptions struct {
	LibvirtDir   string // default /etc/libvirt
	Binary       string // absolute path of the vfio-gate binary
	DaemonSocket string // passed to libvirt-hook
	// Dispatcher also creates hooks/qemu running hooks/qemu.d/* when no
	// hooks/qemu exists. Only for libvirt < 6.5, which does not run qemu.d
	// drop-ins itself; on newer libvirt it would run every drop-in twice.
	Dispatcher bool
	// LibvirtVersion is the installed libvirt's version ("9.0.0"; "" =
	// unknown): below 6.5 the dispatcher is created without Dispatcher.
	LibvirtVersion string
	// Reload SIGHUPs the libvirt daemon that runs (SystemReloader) after
	// installing, so it sees the hook; what it did, or why it failed, is
	// added to the result's notes.
	Reload bool

	reloader func() ([]string, error) // tests; nil: SystemReloader().Reload
}

// NeedsDispatcher reports whether libvirt version v ("major.minor[.micro]")
// predates 6.5, the first to run hooks/qemu.d/ drop-ins itself; ok is false
// when v does not parse.
func NeedsDispatcher(v string) (needs, ok bool) {
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return false, false
	}
	return major < 6 || (major == 6 && minor < 5), true
}

// InstallResult says what InstallHook did.
type InstallResult struct {
	DropIn     string
	Dispatcher string // "" when none was created
	Notes      []string
}

// InstallHook writes hooks/qemu.d/vfio-gate. It never overwrites an existing
// hooks/qemu, nor a drop-in it did not write itself. An empty o.Binary is
// this executable, symlinks resolved.
func InstallHook(o InstallOptions) (*InstallResult, error) {
	if o.LibvirtDir == "" {
		o.LibvirtDir = "/etc/libvirt"
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		o.Binary, _ = filepath.EvalSymlinks(exe) // "" when it fails: refused below
	}
	if !filepath.IsAbs(o.Binary) {
		return nil, fmt.Errorf("install-hook: binary path %q must be absolute", o.Binary)
	}
	if strings.ContainsAny(o.Binary+o.DaemonSocket, "'\"\\$`\n") {
		return nil, errors.New("install-hook: binary or socket path contains shell metacharacters")
	}
	hooks := filepath.Join(o.LibvirtDir, "hooks")
	dropDir := filepath.Join(hooks, "qemu.d")
	if err := os.MkdirAll(dropDir, 0o755); err != nil {
		return nil, fmt.Errorf("install-hook: %w", err)
	}
	res := &InstallResult{DropIn: filepath.Join(dropDir, DropInName)}
	if b, err := os.ReadFile(res.DropIn); err == nil && !strings.Contains(string(b), dropInMarker) {
		return nil, fmt.Errorf("install-hook: %s exists and was not written by vfio-gate; not overwriting", res.DropIn)
	}
	script := fmt.Sprintf("#!/bin/sh\n%s\n# libvirt runs this as: qemu.d/vfio-gate DOMNAME OPERATION SUBOP EXTRA, domain XML on stdin.\nexec '%s' libvirt-hook --daemon-socket '%s' -- \"$@\"\n",
		dropInMarker, o.Binary, o.DaemonSocket)
	if err := writeExec(res.DropIn, script); err != nil {
		return nil, err
	}
	main := filepath.Join(hooks, "qemu")
	_, statErr := os.Stat(main)
	old, known := NeedsDispatcher(o.LibvirtVersion)
	switch {
	case statErr == nil:
		res.Notes = append(res.Notes, fmt.Sprintf("left the existing %s alone; libvirt >= 6.5 runs qemu.d/ drop-ins after it", main))
	case !errors.Is(statErr, fs.ErrNotExist):
		return nil, fmt.Errorf("install-hook: %w", statErr)
	case o.Dispatcher || (known && old):
		disp := fmt.Sprintf("#!/bin/sh\n%s (dispatcher for libvirt < 6.5)\nxml=$(cat)\nfor h in %s/*; do\n  [ -x \"$h\" ] || continue\n  printf '%%s' \"$xml\" | \"$h\" \"$@\" || exit $?\ndone\n", dropInMarker, dropDir)
		if err := writeExec(main, disp); err != nil {
			return nil, err
		}
		res.Dispatcher = main
		res.Notes = append(res.Notes, "created "+main+" to run qemu.d/ drop-ins (libvirt < 6.5 does not run them itself)")
	case known:
		res.Notes = append(res.Notes, fmt.Sprintf("no %s dispatcher created: libvirt %s runs qemu.d/ drop-ins itself", main, o.LibvirtVersion))
	default:
		res.Notes = append(res.Notes, fmt.Sprintf("no %s dispatcher created: libvirt's version is unknown; libvirt < 6.5 needs one (--dispatcher)", main))
	}
	res.Notes = append(res.Notes, "libvirtd reads hooks only at start: reload it (systemctl reload libvirtd, or SIGHUP) or pass --reload")
	if o.Reload {
		if o.reloader == nil {
			o.reloader = SystemReloader().Reload
		}
		done, err := o.reloader()
		res.Notes = append(res.Notes, done...)
		if err != nil {
			res.Notes = append(res.Notes, "reload failed: "+err.Error())
		}
	}
	return res, nil
}

// UninstallHook removes exactly what InstallHook wrote.
func UninstallHook(libvirtDir string) ([]string, error) {
	if libvirtDir == "" {
		libvirtDir = "/etc/libvirt"
	}
	var removed []string
	for _, p := range []string{filepath.Join(libvirtDir, "hooks/qemu.d", DropInName), filepath.Join(libvirtDir, "hooks/qemu")} {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, err
		}
		if !strings.Contains(string(b), dropInMarker) {
			continue // not ours
		}
		if err := os.Remove(p); err != nil {
			return removed, err
		}
		removed = append(removed, p)
	}
	return removed, nil
}

func writeExec(path, content string) error {
	tmp := path + ".vfio-gate-tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o755); err != nil {
		return fmt.Errorf("install-hook: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("install-hook: %w", err), os.Remove(tmp))
	}
	return nil
}

package libvirt

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// InstalledVersion is the installed libvirtd's version ("9.0.0"), or "" when
// `libvirtd --version` does not answer.
func InstalledVersion(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "libvirtd", "--version").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out)) // "libvirtd (libvirt) 9.0.0"
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// libvirtDaemons are the daemons that run qemu hooks: the monolithic
// libvirtd, or virtqemud with modular daemons (the default since libvirt
// 9.x in several distributions). Each writes /run/NAME.pid.
var libvirtDaemons = []string{"libvirtd", "virtqemud"}

// Reloader sends SIGHUP to whichever libvirt daemon runs (so that it
// rereads its hooks); tests replace its pieces.
type Reloader struct {
	RunDir string                        // where the pid files are: /run
	Comm   func(pid int) (string, error) // /proc/PID/comm
	Signal func(pid int) error           // SIGHUP
}

// SystemReloader is the Reloader of this host.
func SystemReloader() Reloader {
	return Reloader{RunDir: "/run",
		Comm: func(pid int) (string, error) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			return strings.TrimSpace(string(b)), err
		},
		Signal: func(pid int) error { return syscall.Kill(pid, syscall.SIGHUP) }}
}

// Reload SIGHUPs every libvirt daemon that runs (its pid file names a live
// process of that name: a stale pid file never signals a stranger) and says
// which; an error when none runs.
func (r Reloader) Reload() ([]string, error) {
	var done, why []string
	for _, name := range libvirtDaemons {
		b, err := os.ReadFile(filepath.Join(r.RunDir, name+".pid"))
		if err != nil {
			why = append(why, name+": not running (no pid file)")
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			why = append(why, fmt.Sprintf("%s: pid file holds %q", name, strings.TrimSpace(string(b))))
			continue
		}
		if c, err := r.Comm(pid); err != nil || c != name {
			why = append(why, fmt.Sprintf("%s: stale pid file (pid %d is %q)", name, pid, c))
			continue
		}
		if err := r.Signal(pid); err != nil {
			return done, fmt.Errorf("SIGHUP %s (pid %d): %w", name, pid, err)
		}
		done = append(done, fmt.Sprintf("sent SIGHUP to %s (pid %d)", name, pid))
	}
	if len(done) == 0 {
		return nil, fmt.Errorf("no libvirt daemon to reload (%s)", strings.Join(why, "; "))
	}
	return done, nil
}

package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// listen returns the API socket: the one systemd passes (socket
// activation, vfio-gate.socket: LISTEN_FDS) or one Run creates (Listen). A
// passed socket must be exactly one unix stream socket at path with mode
// 0600, so that clients find it and only root connects (peer credentials are
// checked on every request either way). fromSystemd says which.
func listen(path string) (ln net.Listener, fromSystemd bool, err error) {
	files := activation.Files(true)
	if len(files) == 0 {
		ln, err := Listen(path)
		return ln, false, err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if len(files) != 1 {
		return nil, false, fmt.Errorf("vfio-gate daemon: systemd passed %d sockets, want 1 (ListenStream=%s)", len(files), path)
	}
	ln, err = net.FileListener(files[0])
	if err != nil {
		return nil, false, fmt.Errorf("vfio-gate daemon: the socket systemd passed: %w", err)
	}
	ua, ok := ln.Addr().(*net.UnixAddr)
	if !ok || ua.Name != path {
		ln.Close()
		return nil, false, fmt.Errorf("vfio-gate daemon: systemd passed %v, but --daemon-socket is %s: make ListenStream= and daemon-socket agree", ln.Addr(), path)
	}
	if fi, err := os.Stat(ua.Name); err != nil || fi.Mode().Perm()&0o077 != 0 {
		ln.Close()
		return nil, false, fmt.Errorf("vfio-gate daemon: the socket systemd passed (%s) is not mode 0600 (%v): set SocketMode=0600", ua.Name, err)
	}
	return ln, true, nil
}

// sdNotify tells systemd (Type=notify) how the start goes: READY=1 once the
// daemon listens and has recovered, STATUS= lines meanwhile. Without
// NOTIFY_SOCKET (not under systemd) it does nothing.
func sdNotify(log *slog.Logger) func(string) {
	return func(state string) {
		if _, err := sddaemon.SdNotify(false, state); err != nil {
			log.Warn("sd_notify failed", "state", state, "err", err)
		}
	}
}

// WaitForDevice waits up to d for a TPM given as a device path to appear:
// at boot the TPM driver may bind after the daemon starts (there is no
// tpm2.target before systemd 256). Other TPM specs return at once; a node
// still missing after d is left for the TPM's open to report. notify (nil:
// sd_notify) says what the daemon waits for.
func WaitForDevice(ctx context.Context, path string, d time.Duration, log *slog.Logger, notify func(string)) {
	if !strings.HasPrefix(path, "/") {
		return
	}
	if _, err := os.Stat(path); err == nil || d <= 0 {
		return
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if notify == nil {
		notify = sdNotify(log)
	}
	notify("STATUS=waiting for " + path)
	log.Info("waiting for the TPM device", "path", path, "up_to", d)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := os.Stat(path); err == nil {
				return
			}
		}
	}
}

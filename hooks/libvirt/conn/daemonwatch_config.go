package conn

import (
	"log/slog"
	"os"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/policy"
)

// DaemonWatch is daemon.Config.Watch for the libvirt at uri through socket
// (NewDaemonWatcher; hotplug is the policy's libvirt.hotplug): nil, and
// logged, when socket does not exist (no libvirtd on this host).
func DaemonWatch(uri, socket string, hotplug policy.Hotplug, log *slog.Logger) func(*daemon.GateBackend) daemon.Watcher {
	if _, err := os.Stat(socket); err != nil {
		if log != nil {
			log.Info("libvirtd socket absent: not watching libvirt", "socket", socket)
		}
		return nil
	}
	return func(b *daemon.GateBackend) daemon.Watcher { return NewDaemonWatcher(uri, socket, b, hotplug, log) }
}

package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vfio-gate/vfio-gate/daemon"
)

// Args is a `vfio-gate libvirt-hook` command line taken apart.
type Args struct {
	Socket  string        // the daemon's socket (--daemon-socket)
	Budget  time.Duration // the time budget of this invocation (--budget)
	Libvirt []string      // DOMNAME OPERATION SUBOP EXTRA
}

// ParseArgs splits a libvirt-hook command line; socket and budget are the
// values in force without a flag (the default or the configuration file's).
// Only --daemon-socket and --budget (as "--flag value" or "--flag=value")
// are read, and only before the first argument that is neither; "--" ends
// them. What follows must be exactly libvirt's four arguments: a domain named
// like a flag that a drop-in without "--" let through is consumed as one,
// leaves fewer than four, and is an error (the hook denies), never a shifted
// operation.
func ParseArgs(args []string, socket string, budget time.Duration) (Args, error) {
	p := Args{Socket: socket, Budget: budget}
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		name, val, hasVal := strings.Cut(a, "=")
		if name != "--daemon-socket" && name != "--budget" {
			break
		}
		if !hasVal {
			if i+1 >= len(args) {
				return p, fmt.Errorf("hook flag %s needs a value", name)
			}
			val = args[i+1]
			i++
		}
		i++
		switch name {
		case "--daemon-socket":
			if val == "" {
				return p, errors.New("hook flag --daemon-socket is empty")
			}
			p.Socket = val
		case "--budget":
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return p, fmt.Errorf("hook flag --budget %q is not a positive duration", val)
			}
			p.Budget = d
		}
	}
	p.Libvirt = args[i:]
	if len(p.Libvirt) != 4 {
		return p, fmt.Errorf("hook called with %d arguments after its flags, want DOMNAME OPERATION SUBOP EXTRA (reinstall the drop-in: vfio-gate install-hook)", len(p.Libvirt))
	}
	return p, nil
}

// Main is `vfio-gate libvirt-hook`: it takes args apart (ParseArgs; socket
// and budget are the values in force without a flag) and runs the hook
// against the daemon, returning the exit status libvirt acts on. Arguments
// that do not parse deny (1), with the reason on stderr.
func Main(ctx context.Context, args []string, socket string, budget time.Duration, stdin io.Reader, stderr io.Writer) int {
	ha, err := ParseArgs(args, socket, budget)
	if err != nil {
		fmt.Fprintf(stderr, "vfio-gate: %v: denying\n", err)
		return 1
	}
	h := &Hook{Client: DaemonClient{C: daemon.NewClient(ha.Socket)}, Budget: ha.Budget}
	return h.Run(ctx, ha.Libvirt, stdin, stderr)
}

package report

import (
	"fmt"
	"io"
	"time"

	"github.com/vfio-gate/vfio-gate/audit"
)

// WriteAuditText writes one access `vfio-gate audit` saw, as one line for a
// person: time, device, process, path, operation, offset and size, the value
// written, the region and how the probes attached. The --json form is the
// access itself, one compact document (kind "audit-event") per line.
func WriteAuditText(w io.Writer, a *audit.Access) {
	val := ""
	if a.Value != nil {
		val = fmt.Sprintf(" value=%#x", *a.Value)
	}
	fmt.Fprintf(w, "%s %s pid=%d comm=%s %s %s+%#x/%d%s region=%s attach=%s\n",
		a.WallTime.Format(time.RFC3339Nano), a.Device, a.PID, a.Comm, a.Path, a.Op, a.Offset, a.Size, val, a.Region, a.Attach)
}

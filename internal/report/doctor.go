package report

import (
	"fmt"
	"io"

	"github.com/vfio-gate/vfio-gate/internal/doctor"
)

// WriteDoctorText writes `vfio-gate doctor`'s report for a person: one line
// per check (status, name, message), and under a check that is not ok what
// to do about it. The --json form is the report itself (kind "doctor").
func WriteDoctorText(w io.Writer, r *doctor.Report) {
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%-4s  %-9s  %s\n", c.Status, c.Name, c.Message)
		if c.Fix != "" {
			fmt.Fprintf(w, "                 -> %s\n", c.Fix)
		}
	}
}

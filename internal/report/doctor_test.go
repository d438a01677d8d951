package report

import (
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/doctor"
)

func TestWriteDoctorText(t *testing.T) {
	r := &doctor.Report{Checks: []doctor.Check{
		{Name: "iommu", Status: doctor.OK, Message: "enabled, 12 groups"},
		{Name: "state-dir", Status: doctor.Warn, Message: "mode 0777", Fix: "chmod go-w /var/lib/vfio-gate"},
		{Name: "bpf", Status: doctor.Fail, Message: "no BTF"},
	}}
	var w strings.Builder
	WriteDoctorText(&w, r)
	want := "ok    iommu      enabled, 12 groups\n" +
		"warn  state-dir  mode 0777\n" +
		"                 -> chmod go-w /var/lib/vfio-gate\n" +
		"fail  bpf        no BTF\n"
	if w.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", w.String(), want)
	}
}

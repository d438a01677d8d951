package report

import (
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/audit"
)

func TestWriteAuditText(t *testing.T) {
	v := uint32(0x80000000)
	at := time.Date(2026, 12, 5, 1, 2, 3, 4000, time.UTC)
	var w strings.Builder
	WriteAuditText(&w, &audit.Access{WallTime: at, Device: "0000:3b:00.0", PID: 42, Comm: "setpci", Path: "sysfs", Op: "write",
		Offset: 0x168, Size: 4, Value: &v, Region: "doe-mailbox", Attach: audit.ModeFentry})
	WriteAuditText(&w, &audit.Access{WallTime: at, Device: "0000:3b:00.0", PID: 7, Comm: "lspci", Path: "procfs", Op: "read",
		Offset: 0, Size: 2, Region: "header", Attach: audit.ModeKprobe})
	want := "2026-12-05T01:02:03.000004Z 0000:3b:00.0 pid=42 comm=setpci sysfs write+0x168/4 value=0x80000000 region=doe-mailbox attach=fentry\n" +
		"2026-12-05T01:02:03.000004Z 0000:3b:00.0 pid=7 comm=lspci procfs read+0x0/2 region=header attach=kprobe\n"
	if w.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", w.String(), want)
	}
}

package libvirt

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReloadWhicheverLibvirtRuns: --reload signals virtqemud on a host with
// modular daemons (it used to read only /run/libvirtd.pid and fail there),
// libvirtd on a monolithic one, and never a process a stale pid file names.
func TestReloadWhicheverLibvirtRuns(t *testing.T) {
	procs := map[int]string{100: "virtqemud", 200: "libvirtd", 300: "bash"}
	for _, c := range []struct {
		name    string
		pids    map[string]string
		want    []int
		wantErr string
	}{
		{"modular", map[string]string{"virtqemud": "100\n"}, []int{100}, ""},
		{"monolithic", map[string]string{"libvirtd": "200\n"}, []int{200}, ""},
		{"stale", map[string]string{"libvirtd": "300\n"}, nil, "stale pid file (pid 300 is \"bash\")"},
		{"none", nil, nil, "no libvirt daemon to reload"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, p := range c.pids {
				if err := os.WriteFile(filepath.Join(dir, n+".pid"), []byte(p), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var sent []int
			r := Reloader{RunDir: dir,
				Comm:   func(pid int) (string, error) { return procs[pid], nil },
				Signal: func(pid int) error { sent = append(sent, pid); return nil }}
			_, err := r.Reload()
			if fmt.Sprint(sent) != fmt.Sprint(c.want) {
				t.Errorf("signalled %v, want %v", sent, c.want)
			}
			if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
				t.Errorf("err %v, want %q", err, c.wantErr)
			}
		})
	}
}

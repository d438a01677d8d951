package libvirt

import (
	"strings"
	"testing"
	"time"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		ok      bool
		socket  string
		libvirt string
	}{
		{[]string{"--daemon-socket", "/s", "--", "vm", "prepare", "begin", "-"}, true, "/s", "vm prepare begin -"},
		{[]string{"--daemon-socket=/s", "--budget", "5s", "--", "--", "prepare", "begin", "-"}, true, "/s", "-- prepare begin -"},
		{[]string{"vm", "prepare", "begin", "-"}, true, "/default", "vm prepare begin -"},
		{[]string{"--daemon-socket", "/s", "--help", "prepare", "begin", "-"}, true, "/s", "--help prepare begin -"},
		{[]string{"--daemon-socket", "/s", "--budget=1h", "prepare", "begin", "-"}, false, "", ""},
		{[]string{"--daemon-socket", "/s", "--daemon-socket", "prepare", "begin", "-"}, false, "", ""},
		{[]string{"--daemon-socket", "/s", "--budget", "prepare", "begin", "-"}, false, "", ""},
		{[]string{"--daemon-socket", "/s", "--", "a", "b", "c", "d", "e"}, false, "", ""},
		{[]string{"--daemon-socket"}, false, "", ""},
		{[]string{"--daemon-socket=", "--", "vm", "prepare", "begin", "-"}, false, "", ""},
		{[]string{"--budget=-1s", "--", "vm", "prepare", "begin", "-"}, false, "", ""},
		{[]string{"--budget=soon", "--", "vm", "prepare", "begin", "-"}, false, "", ""},
	} {
		p, err := ParseArgs(tc.args, "/default", time.Minute)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.args, err, tc.ok)
			continue
		}
		wantBudget := time.Minute // the default passed in (the config file's libvirt-hook: budget)
		if strings.Contains(strings.Join(tc.args, " "), "--budget 5s") {
			wantBudget = 5 * time.Second
		}
		if tc.ok && p.Budget != wantBudget {
			t.Errorf("%q: budget %v, want %v", tc.args, p.Budget, wantBudget)
		}
		if tc.ok && (p.Socket != tc.socket || strings.Join(p.Libvirt, " ") != tc.libvirt) {
			t.Errorf("%q: socket %q args %q", tc.args, p.Socket, p.Libvirt)
		}
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--budget"}, "hook flag --budget needs a value"},
		{[]string{"--daemon-socket="}, "hook flag --daemon-socket is empty"},
		{[]string{"--budget=0s"}, `hook flag --budget "0s" is not a positive duration`},
		{[]string{"vm", "prepare"}, "hook called with 2 arguments after its flags, want DOMNAME OPERATION SUBOP EXTRA (reinstall the drop-in: vfio-gate install-hook)"},
	} {
		if _, err := ParseArgs(tc.args, "/default", time.Minute); err == nil || err.Error() != tc.want {
			t.Errorf("%q: err %v, want %q", tc.args, err, tc.want)
		}
	}
}

package report

import (
	"encoding/json"
	"strings"
	"testing"

	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
)

func TestInstallHook(t *testing.T) {
	r := NewInstallHook(&lvhook.InstallResult{DropIn: "/etc/libvirt/hooks/qemu.d/vfio-gate", Notes: []string{"a", "b"}})
	var w strings.Builder
	r.WriteText(&w)
	if want := "installed /etc/libvirt/hooks/qemu.d/vfio-gate\nnote: a\nnote: b\n"; w.String() != want {
		t.Fatalf("got %q, want %q", w.String(), want)
	}
	// The JSON body is what the map it replaced encoded: members in name
	// order, no notes as null.
	for _, res := range []*lvhook.InstallResult{
		{DropIn: "/d", Dispatcher: "/q", Notes: []string{"n"}},
		{DropIn: "/d"},
	} {
		got, err := json.Marshal(NewInstallHook(res))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(map[string]any{"drop_in": res.DropIn, "dispatcher": res.Dispatcher, "notes": res.Notes})
		if string(got) != string(want) {
			t.Errorf("JSON %s, want %s", got, want)
		}
	}
}

func TestUninstallHook(t *testing.T) {
	for _, c := range []struct {
		removed []string
		text    string
	}{
		{nil, "nothing to remove\n"},
		{[]string{"/a", "/b"}, "removed /a\nremoved /b\n"},
	} {
		r := UninstallHook{Removed: c.removed}
		var w strings.Builder
		r.WriteText(&w)
		if w.String() != c.text {
			t.Errorf("%q: text %q, want %q", c.removed, w.String(), c.text)
		}
		got, _ := json.Marshal(r)
		want, _ := json.Marshal(map[string]any{"removed": c.removed})
		if string(got) != string(want) {
			t.Errorf("JSON %s, want %s", got, want)
		}
	}
}

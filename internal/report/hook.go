package report

import (
	"fmt"
	"io"

	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
)

// InstallHook is what `vfio-gate install-hook` did (--json kind
// "install-hook"). Its members are in name order, as they always were.
type InstallHook struct {
	Dispatcher string   `json:"dispatcher"` // "" when none was created
	DropIn     string   `json:"drop_in"`
	Notes      []string `json:"notes"`
}

// NewInstallHook is the document of an installation's result.
func NewInstallHook(r *lvhook.InstallResult) InstallHook {
	return InstallHook{Dispatcher: r.Dispatcher, DropIn: r.DropIn, Notes: r.Notes}
}

// WriteText writes the installed drop-in and every note for a person.
func (r InstallHook) WriteText(w io.Writer) {
	fmt.Fprintf(w, "installed %s\n", r.DropIn)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// UninstallHook is what `vfio-gate uninstall-hook` removed (--json kind
// "uninstall-hook").
type UninstallHook struct {
	Removed []string `json:"removed"`
}

// WriteText writes each removed file for a person, or that there was
// nothing to remove.
func (r UninstallHook) WriteText(w io.Writer) {
	if len(r.Removed) == 0 {
		fmt.Fprintln(w, "nothing to remove")
	}
	for _, p := range r.Removed {
		fmt.Fprintf(w, "removed %s\n", p)
	}
}

package tdisp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"github.com/vfio-gate/vfio-gate/pci"
)

// The kernel PCI TSM interface (Linux 6.19+, Documentation/ABI/testing/
// sysfs-bus-pci, SPEC-FACTS §5). Where a platform TSM owns SPDM, vfio-gate
// must not drive DOE itself: it asks the kernel to connect and records what
// the kernel exposes.
//
//	class/tsm/tsmN                    registered TSMs
//	bus/pci/devices/BDF/tsm/          present once a TSM accepted the device
//	bus/pci/devices/BDF/tsm/connect   RW: write "tsmN" to connect; reads the TSM name or ""
//	bus/pci/devices/BDF/tsm/disconnect WO: write the connected TSM's name
//	bus/pci/devices/BDF/authenticated RO: authentication state
var (
	// ErrNoTSM: the function has no tsm/ directory (no TSM loaded, or the
	// device is not TSM-capable).
	ErrNoTSM = errors.New("tdisp: no kernel TSM interface for this function")
	// ErrTSMBusy: the kernel refused with EBUSY (already connected, or a
	// driver is bound).
	ErrTSMBusy = errors.New("tdisp: kernel TSM busy")
	// ErrNotConnected: disconnect asked for a function that is not connected.
	ErrNotConnected = errors.New("tdisp: function not connected to a TSM")
	// ErrUnknownTSM: the named TSM is not registered under class/tsm.
	ErrUnknownTSM = errors.New("tdisp: unknown TSM")
)

var tsmName = regexp.MustCompile(`^tsm[0-9]{1,6}$`)

// maxAttr caps how much of a sysfs attribute we read.
const maxAttr = 4096

// TSM is the kernel PCI TSM backend, rooted at a sysfs directory ("/sys" in
// production, a fixture tree in tests). Every access is confined by os.Root.
type TSM struct {
	root *os.Root
	// kernel, in tests, plays the kernel's side of a write (connect fills
	// connect, disconnect empties it, EBUSY); nil in production.
	kernel func(name, value string) error
}

// OpenTSM opens the backend on a sysfs root directory.
func OpenTSM(sysfs string) (*TSM, error) {
	r, err := os.OpenRoot(sysfs)
	if err != nil {
		return nil, fmt.Errorf("tdisp: open sysfs root: %w", err)
	}
	return &TSM{root: r}, nil
}

// Close releases the root.
func (t *TSM) Close() error { return t.root.Close() }

func devPath(b pci.BDF, elem ...string) string {
	return path.Join(append([]string{"bus/pci/devices", b.String()}, elem...)...)
}

func (t *TSM) read(name string) (string, error) {
	f, err := t.root.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAttr))
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// write performs one write(2) of v, as sysfs expects.
func (t *TSM) write(name, v string) error {
	f, err := t.root.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(v))
	if werr == nil && t.kernel != nil {
		werr = t.kernel(name, v)
	}
	cerr := f.Close()
	if errors.Is(werr, syscall.EBUSY) {
		return fmt.Errorf("%w: %w", ErrTSMBusy, werr)
	}
	return errors.Join(werr, cerr)
}

// Providers lists the registered TSMs (class/tsm entries), sorted.
func (t *TSM) Providers() ([]string, error) {
	d, err := t.root.Open("class/tsm")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tdisp: list TSMs: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("tdisp: list TSMs: %w", err)
	}
	var out []string
	for _, n := range names {
		if tsmName.MatchString(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// TSMStatus is what the kernel exposes about one function.
type TSMStatus struct {
	BDF string `json:"bdf"`
	// Present: the tsm/ directory exists (a TSM accepted the device).
	Present bool `json:"present"`
	// Connected is the TSM the function is connected to ("" if none).
	Connected string `json:"connected"`
	// Authenticated is the "authenticated" attribute, when present and
	// boolean; AuthenticatedRaw keeps its text.
	Authenticated    *bool  `json:"authenticated,omitempty"`
	AuthenticatedRaw string `json:"authenticated_raw,omitempty"`
	// Attributes holds the other readable files of tsm/ (name → text).
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Status reads the function's TSM state.
func (t *TSM) Status(ctx context.Context, b pci.BDF) (*TSMStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st := &TSMStatus{BDF: b.String()}
	if _, err := t.root.Stat(devPath(b)); err != nil {
		return nil, fmt.Errorf("tdisp: %s: %w", b, err)
	}
	if a, err := t.read(devPath(b, "authenticated")); err == nil {
		st.AuthenticatedRaw = a
		switch a {
		case "1", "true", "yes":
			v := true
			st.Authenticated = &v
		case "0", "false", "no":
			v := false
			st.Authenticated = &v
		}
	}
	d, err := t.root.Open(devPath(b, "tsm"))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tdisp: %s tsm: %w", b, err)
	}
	defer d.Close()
	st.Present = true
	entries, err := d.ReadDir(256)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("tdisp: %s tsm: %w", b, err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "disconnect" {
			continue
		}
		v, err := t.read(devPath(b, "tsm", e.Name()))
		if err != nil {
			continue // write-only or unreadable attribute
		}
		if e.Name() == "connect" {
			st.Connected = v
			continue
		}
		if st.Attributes == nil {
			st.Attributes = map[string]string{}
		}
		st.Attributes[e.Name()] = v
	}
	return st, nil
}

// Connect asks the kernel to have TSM provider (e.g. "tsm0") connect the
// function (SPDM session, maybe IDE). An empty provider picks the only
// registered TSM. It reads connect back to confirm.
func (t *TSM) Connect(ctx context.Context, b pci.BDF, provider string) error {
	st, err := t.Status(ctx, b)
	if err != nil {
		return err
	}
	if !st.Present {
		return fmt.Errorf("%w: %s has no tsm/ directory", ErrNoTSM, b)
	}
	ps, err := t.Providers()
	if err != nil {
		return err
	}
	if provider == "" {
		if len(ps) != 1 {
			return fmt.Errorf("%w: %d TSMs registered (%v), name one", ErrUnknownTSM, len(ps), ps)
		}
		provider = ps[0]
	}
	if !tsmName.MatchString(provider) || !contains(ps, provider) {
		return fmt.Errorf("%w %q (registered: %v)", ErrUnknownTSM, provider, ps)
	}
	if st.Connected == provider {
		return nil
	}
	if st.Connected != "" {
		return fmt.Errorf("%w: %s already connected to %s", ErrTSMBusy, b, st.Connected)
	}
	if err := t.write(devPath(b, "tsm", "connect"), provider); err != nil {
		return fmt.Errorf("tdisp: %s connect %s: %w", b, provider, err)
	}
	got, err := t.read(devPath(b, "tsm", "connect"))
	if err != nil {
		return fmt.Errorf("tdisp: %s connect read-back: %w", b, err)
	}
	if got != provider {
		return fmt.Errorf("tdisp: %s connect: kernel reports %q after writing %q", b, got, provider)
	}
	return nil
}

// Disconnect tears the TSM connection down (writes the connected TSM's name
// to tsm/disconnect) and confirms connect reads empty afterwards.
func (t *TSM) Disconnect(ctx context.Context, b pci.BDF) error {
	st, err := t.Status(ctx, b)
	if err != nil {
		return err
	}
	if !st.Present {
		return fmt.Errorf("%w: %s has no tsm/ directory", ErrNoTSM, b)
	}
	if st.Connected == "" {
		return fmt.Errorf("%w: %s", ErrNotConnected, b)
	}
	if err := t.write(devPath(b, "tsm", "disconnect"), st.Connected); err != nil {
		return fmt.Errorf("tdisp: %s disconnect: %w", b, err)
	}
	got, err := t.read(devPath(b, "tsm", "connect"))
	if err != nil {
		return fmt.Errorf("tdisp: %s disconnect read-back: %w", b, err)
	}
	if got != "" {
		return fmt.Errorf("tdisp: %s still connected to %q after disconnect", b, got)
	}
	return nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

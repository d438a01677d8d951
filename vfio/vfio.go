package vfio

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vfio-gate/vfio-gate/pci"
)

// Driver is the name of the vfio PCI driver.
const Driver = "vfio-pci"

// Sentinel errors (match with errors.Is).
var (
	ErrNoIOMMU        = errors.New("vfio: function has no IOMMU group (enable the IOMMU: intel_iommu=on or amd_iommu=on)")
	ErrGroupNotViable = errors.New("vfio: IOMMU group not viable")
	ErrAlreadyBound   = errors.New("vfio: function is already bound to vfio-pci")
	ErrNoVFIODriver   = errors.New("vfio: the vfio-pci driver is not loaded (modprobe vfio-pci)")
	ErrNoDevice       = errors.New("vfio: no such PCI function")
	ErrNotBound       = errors.New("vfio: function did not bind to the expected driver")
	ErrStateChanged   = errors.New("vfio: function changed driver since the plan was made")
	ErrTimeout        = errors.New("vfio: timed out waiting for the VFIO group device")
	ErrBadDriverName  = errors.New("vfio: malformed driver name")
)

// BindFailed reports whether err says that binding or releasing failed
// (cmd's exit 6): a *BindError, a *GroupError, or one of ErrNoIOMMU,
// ErrGroupNotViable, ErrAlreadyBound, ErrNoVFIODriver, ErrNotBound,
// ErrStateChanged, ErrTimeout. ErrNoDevice (the function is not there) and
// ErrBadDriverName are not bind failures.
func BindFailed(err error) bool {
	var be *BindError
	var ge *GroupError
	if errors.As(err, &be) || errors.As(err, &ge) {
		return true
	}
	for _, s := range []error{ErrNoIOMMU, ErrGroupNotViable, ErrAlreadyBound, ErrNoVFIODriver, ErrNotBound, ErrStateChanged, ErrTimeout} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// GroupError says which member makes a group not viable. It matches ErrGroupNotViable.
type GroupError struct {
	Group  int
	Member pci.BDF
	Class  uint32
	Driver string
}

func (e *GroupError) Error() string {
	d := e.Driver
	if d == "" {
		d = "none"
	}
	return fmt.Sprintf("vfio: IOMMU group %d not viable: member %s (class 0x%06x, driver %s) is neither being bound nor exempt",
		e.Group, e.Member, e.Class, d)
}

// Unwrap makes errors.Is(err, ErrGroupNotViable) true.
func (e *GroupError) Unwrap() error { return ErrGroupNotViable }

// Step names a sysfs operation.
type Step string

// Steps of a plan, and of undo and release.
const (
	StepOverride Step = "driver_override" // write "vfio-pci" to driver_override
	StepUnbind   Step = "unbind"          // write the BDF to drivers/<original>/unbind
	StepProbe    Step = "drivers_probe"   // write the BDF to drivers_probe, then check the driver link
	StepWait     Step = "wait"            // wait for /dev/vfio/<group>
	StepCheck    Step = "check"           // the function still has the planned driver
	StepRestore  Step = "restore"         // undo and release: clear driver_override, bind the original driver
)

// BindError is a failed step. Apply returns it joined (errors.Join) with any
// failures of the undo that followed, each also a *BindError whose Step
// starts with "undo ".
type BindError struct {
	BDF  pci.BDF
	Step Step
	Err  error
}

func (e *BindError) Error() string { return fmt.Sprintf("vfio: %s: %s: %v", e.BDF, e.Step, e.Err) }
func (e *BindError) Unwrap() error { return e.Err }

// Function is one member of a group the plan touches.
type Function struct {
	BDF   pci.BDF `json:"bdf"`
	Group int     `json:"iommu_group"`
	Class uint32  `json:"class"`
	// Driver is the driver bound when the plan was made ("" = none): the one
	// to restore on release.
	Driver   string `json:"driver"`
	Override string `json:"driver_override"` // "" when "(null)"
	InSet    bool   `json:"in_set"`          // asked to be bound
	Exempt   bool   `json:"exempt"`          // not in the set, allowed to stay
	Bound    bool   `json:"already_bound"`   // in the set and already on vfio-pci (PlanOptions.AllowBound)
}

// Action is one step of a plan. Path is relative to the sysfs root ("" for wait).
type Action struct {
	Step  Step    `json:"step"`
	BDF   pci.BDF `json:"bdf"`
	Group int     `json:"iommu_group"`
	Path  string  `json:"path,omitempty"`
	Value string  `json:"value,omitempty"`
	// Driver is, for unbind, the original driver; for probe, the driver expected after it.
	Driver string `json:"driver,omitempty"`
	// Undo is, for driver_override, what undo writes back: the previous
	// override, or "\n" (which clears it).
	Undo string `json:"undo,omitempty"`
}

// Plan is what binding a set of functions takes: deterministic (groups in
// ascending order, functions in BDF order within a group).
type Plan struct {
	Functions []Function `json:"functions"`
	Actions   []Action   `json:"actions"`
}

// PlanOptions adjust PlanBind.
type PlanOptions struct {
	// Exempt says whether a group member that is not being bound may stay
	// with its driver (bridges and ports; policy.Policy.Exempt on the class).
	// nil exempts nothing.
	Exempt func(bdf pci.BDF, class uint32) bool
	// AllowBound accepts functions already bound to vfio-pci (they get only
	// the wait step; their original driver is unknown). Otherwise such a
	// function is ErrAlreadyBound: it may be in use by a running VM.
	AllowBound bool
}

// Original returns the drivers to restore on release, for the functions the
// plan binds (absent: already on vfio-pci before).
func (p *Plan) Original() map[pci.BDF]string {
	m := map[pci.BDF]string{}
	for _, f := range p.Functions {
		if f.InSet && !f.Bound {
			m[f.BDF] = f.Driver
		}
	}
	return m
}

// Before is what a function had before Apply: the driver to bind again on
// release and its driver_override ("" = none for both).
type Before struct {
	Driver   string
	Override string
}

// Before returns, for every function the plan moves to vfio-pci, its driver
// and driver_override before the plan: what ReleaseTo restores.
func (p *Plan) Before() map[pci.BDF]Before {
	m := map[pci.BDF]Before{}
	for _, f := range p.Functions {
		if f.InSet && !f.Bound {
			m[f.BDF] = Before{Driver: f.Driver, Override: f.Override}
		}
	}
	return m
}

// Groups returns the IOMMU groups of the plan, ascending.
func (p *Plan) Groups() []int {
	var gs []int
	for _, f := range p.Functions {
		if !slices.Contains(gs, f.Group) {
			gs = append(gs, f.Group)
		}
	}
	slices.Sort(gs)
	return gs
}

func devPath(b pci.BDF, attr string) string { return "bus/pci/devices/" + b.String() + "/" + attr }

var driverName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$`)

func checkDriverName(d string) error {
	if !driverName.MatchString(d) || d == "." || d == ".." {
		return fmt.Errorf("%w %q", ErrBadDriverName, d)
	}
	return nil
}

// state reads what a plan needs about one function.
func state(root *pci.Root, b pci.BDF) (Function, error) {
	f := Function{BDF: b, Group: -1}
	if !root.Exists(devPath(b, "")) {
		return f, fmt.Errorf("%w: %s", ErrNoDevice, b)
	}
	g, err := root.LinkBase(devPath(b, "iommu_group"))
	if errors.Is(err, fs.ErrNotExist) {
		return f, fmt.Errorf("%w: %s", ErrNoIOMMU, b)
	} else if err != nil {
		return f, fmt.Errorf("vfio: %s: iommu_group: %w", b, err)
	}
	if f.Group, err = strconv.Atoi(g); err != nil || f.Group < 0 {
		return f, fmt.Errorf("vfio: %s: iommu_group link %q is not a group number", b, g)
	}
	cls, err := root.ReadString(devPath(b, "class"))
	if err != nil {
		return f, fmt.Errorf("vfio: %s: class: %w", b, err)
	}
	c, err := strconv.ParseUint(strings.TrimSpace(cls), 0, 32)
	if err != nil || c > 0xffffff {
		return f, fmt.Errorf("vfio: %s: class %q is not a 24-bit number", b, cls)
	}
	f.Class = uint32(c)
	if f.Driver, err = currentDriver(root, b); err != nil {
		return f, err
	}
	ov, err := root.ReadString(devPath(b, "driver_override"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return f, fmt.Errorf("vfio: %s: driver_override: %w", b, err)
	}
	if ov = strings.TrimSpace(ov); ov != "(null)" {
		f.Override = ov
	}
	return f, nil
}

func currentDriver(root *pci.Root, b pci.BDF) (string, error) {
	d, err := root.LinkBase(devPath(b, "driver"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("vfio: %s: driver: %w", b, err)
	}
	if err := checkDriverName(d); err != nil {
		return "", fmt.Errorf("vfio: %s: %w", b, err)
	}
	return d, nil
}

// PlanBind reads the IOMMU group of every function in bdfs, applies the
// group rule, and returns the actions that bind them all to vfio-pci. It
// writes nothing.
func PlanBind(root *pci.Root, bdfs []pci.BDF, opts PlanOptions) (*Plan, error) {
	if len(bdfs) == 0 {
		return nil, errors.New("vfio: nothing to bind")
	}
	if !root.Exists("bus/pci/drivers/" + Driver) {
		return nil, ErrNoVFIODriver
	}
	set := map[pci.BDF]bool{}
	for _, b := range bdfs {
		set[b] = true
	}
	groups := map[int]bool{}
	for b := range set {
		f, err := state(root, b)
		if err != nil {
			return nil, err
		}
		groups[f.Group] = true
	}
	p := &Plan{}
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		dir := fmt.Sprintf("kernel/iommu_groups/%d/devices", g)
		ents, err := root.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("vfio: IOMMU group %d: %w", g, err)
		}
		var members []Function
		for _, e := range ents {
			b, err := pci.ParseBDF(e.Name())
			if err != nil {
				return nil, fmt.Errorf("vfio: IOMMU group %d lists %q: %w", g, e.Name(), err)
			}
			f, err := state(root, b)
			if err != nil {
				return nil, err
			}
			if f.Group != g {
				return nil, fmt.Errorf("vfio: %s is listed in IOMMU group %d but links to group %d", b, g, f.Group)
			}
			f.InSet = set[b]
			if !f.InSet {
				if opts.Exempt == nil || !opts.Exempt(b, f.Class) {
					return nil, &GroupError{Group: g, Member: b, Class: f.Class, Driver: f.Driver}
				}
				f.Exempt = true
			}
			members = append(members, f)
		}
		slices.SortFunc(members, func(a, b Function) int { return pci.CompareBDF(a.BDF, b.BDF) })
		for i := range members {
			f := &members[i]
			if !f.InSet {
				continue
			}
			if f.Driver == Driver {
				if !opts.AllowBound {
					return nil, fmt.Errorf("%w: %s", ErrAlreadyBound, f.BDF)
				}
				f.Bound = true
				continue
			}
			p.Actions = append(p.Actions, Action{Step: StepOverride, BDF: f.BDF, Group: g, Path: devPath(f.BDF, "driver_override"), Value: Driver, Undo: cmp.Or(f.Override, "\n")})
			if f.Driver != "" {
				p.Actions = append(p.Actions, Action{Step: StepUnbind, BDF: f.BDF, Group: g,
					Path: "bus/pci/drivers/" + f.Driver + "/unbind", Value: f.BDF.String(), Driver: f.Driver})
			}
			p.Actions = append(p.Actions, Action{Step: StepProbe, BDF: f.BDF, Group: g, Path: "bus/pci/drivers_probe", Value: f.BDF.String(), Driver: Driver})
		}
		first := members[0].BDF
		for _, f := range members {
			if f.InSet {
				first = f.BDF
				break
			}
		}
		p.Actions = append(p.Actions, Action{Step: StepWait, BDF: first, Group: g})
		p.Functions = append(p.Functions, members...)
	}
	return p, nil
}

// ApplyOptions adjust Apply and Release.
type ApplyOptions struct {
	// DevVFIO is the directory of VFIO group devices; "" = "/dev/vfio".
	DevVFIO string
	// Wait bounds the wait for each /dev/vfio/N; 0 = 10 s.
	Wait time.Duration
	// Poll is the interval of that wait; 0 = 10 ms.
	Poll time.Duration
	// Write performs one sysfs write (name relative to the root); nil =
	// root.WriteString. Tests set it to play the kernel.
	Write func(name, value string) error
	// Logger receives one Debug record per write; nil discards.
	Logger *slog.Logger
}

type applier struct {
	root *pci.Root
	o    ApplyOptions
	log  *slog.Logger
}

func newApplier(root *pci.Root, o ApplyOptions) *applier {
	if o.DevVFIO == "" {
		o.DevVFIO = "/dev/vfio"
	}
	if o.Wait <= 0 {
		o.Wait = 10 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 10 * time.Millisecond
	}
	if o.Write == nil {
		o.Write = root.WriteString
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &applier{root: root, o: o, log: log}
}

func (a *applier) write(ctx context.Context, name, value string) error {
	a.log.DebugContext(ctx, "sysfs write", "path", name, "value", value)
	return a.o.Write(name, value)
}

// Apply performs plan. If a step fails, the steps already done are undone in
// reverse order (driver_override cleared, original driver bound again) and
// the error is the failing step's *BindError joined with any undo failures.
func Apply(ctx context.Context, root *pci.Root, plan *Plan, opts ApplyOptions) error {
	a := newApplier(root, opts)
	orig := map[pci.BDF]Function{}
	for _, f := range plan.Functions {
		orig[f.BDF] = f
	}
	var done []Action
	for _, act := range plan.Actions {
		if err := ctx.Err(); err != nil {
			return a.undo(ctx, done, orig, &BindError{BDF: act.BDF, Step: act.Step, Err: err})
		}
		if err := a.do(ctx, act, orig[act.BDF]); err != nil {
			// A probe that failed may still have bound the function: undo it too.
			if act.Step == StepProbe {
				done = append(done, act)
			}
			return a.undo(ctx, done, orig, err)
		}
		done = append(done, act)
	}
	return nil
}

func (a *applier) do(ctx context.Context, act Action, f Function) error {
	fail := func(err error) error { return &BindError{BDF: act.BDF, Step: act.Step, Err: err} }
	switch act.Step {
	case StepOverride:
		// Nothing may have changed since the plan: the function still has its driver.
		d, err := currentDriver(a.root, act.BDF)
		if err != nil {
			return &BindError{BDF: act.BDF, Step: StepCheck, Err: err}
		}
		if !a.root.Exists(devPath(act.BDF, "")) {
			return &BindError{BDF: act.BDF, Step: StepCheck, Err: ErrNoDevice}
		}
		if d != f.Driver {
			return &BindError{BDF: act.BDF, Step: StepCheck, Err: fmt.Errorf("%w: planned %q, now %q", ErrStateChanged, f.Driver, d)}
		}
		if err := a.write(ctx, act.Path, act.Value); err != nil {
			return fail(err)
		}
	case StepUnbind:
		if err := checkDriverName(act.Driver); err != nil {
			return fail(err)
		}
		if err := a.write(ctx, act.Path, act.Value); err != nil {
			return fail(err)
		}
	case StepProbe:
		if err := a.write(ctx, act.Path, act.Value); err != nil {
			return fail(err)
		}
		d, err := currentDriver(a.root, act.BDF)
		if err != nil {
			return fail(err)
		}
		if d != act.Driver {
			if d == "" {
				d = "none"
			}
			return fail(fmt.Errorf("%w: driver is %s, want %s", ErrNotBound, d, act.Driver))
		}
	case StepWait:
		if err := a.wait(ctx, act.Group); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("vfio: unknown step %q", act.Step))
	}
	return nil
}

func (a *applier) wait(ctx context.Context, group int) error {
	path := filepath.Join(a.o.DevVFIO, strconv.Itoa(group))
	ctx, cancel := context.WithTimeout(ctx, a.o.Wait)
	defer cancel()
	t := time.NewTicker(a.o.Poll)
	defer t.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w %s: %w", ErrTimeout, path, ctx.Err())
		case <-t.C:
		}
	}
}

// undo reverses done (newest first) and joins failures to cause.
func (a *applier) undo(ctx context.Context, done []Action, orig map[pci.BDF]Function, cause error) error {
	errs := []error{cause}
	// Undo must run even when ctx was cancelled: use a context without its cancellation.
	ctx = context.WithoutCancel(ctx)
	overrideRestored := map[pci.BDF]bool{}
	restoreOverride := func(b pci.BDF) error {
		if overrideRestored[b] {
			return nil
		}
		for _, d := range done {
			if d.BDF == b && d.Step == StepOverride {
				overrideRestored[b] = true
				return a.write(ctx, d.Path, cmp.Or(d.Undo, "\n"))
			}
		}
		return nil
	}
	for i := len(done) - 1; i >= 0; i-- {
		act := done[i]
		var err error
		switch act.Step {
		case StepProbe:
			// Unbind whatever the probe bound, unless it is the original driver.
			d, _ := currentDriver(a.root, act.BDF)
			if d != "" && d != orig[act.BDF].Driver {
				err = a.write(ctx, "bus/pci/drivers/"+d+"/unbind", act.BDF.String())
			}
		case StepOverride:
			err = restoreOverride(act.BDF)
		case StepUnbind:
			// The kernel binds only the override driver: restore it first.
			if err = restoreOverride(act.BDF); err == nil {
				err = a.bindTo(ctx, act.BDF, act.Driver)
			}
		}
		if err != nil {
			errs = append(errs, &BindError{BDF: act.BDF, Step: "undo " + act.Step, Err: err})
		}
	}
	return errors.Join(errs...)
}

func (a *applier) bindTo(ctx context.Context, b pci.BDF, drv string) error {
	if err := checkDriverName(drv); err != nil {
		return err
	}
	if d, err := currentDriver(a.root, b); err == nil && d == drv {
		return nil
	}
	if err := a.write(ctx, "bus/pci/drivers/"+drv+"/bind", b.String()); err != nil {
		return err
	}
	d, err := currentDriver(a.root, b)
	if err != nil {
		return err
	}
	if d != drv {
		return fmt.Errorf("%w: driver is %q, want %q", ErrNotBound, d, drv)
	}
	return nil
}

// Release is ReleaseTo with original[bdf] as each function's driver and no
// driver_override before the bind.
func Release(ctx context.Context, root *pci.Root, bdfs []pci.BDF, original map[pci.BDF]string, opts ApplyOptions) error {
	before := make(map[pci.BDF]Before, len(bdfs))
	for _, b := range bdfs {
		before[b] = Before{Driver: original[b]}
	}
	return ReleaseTo(ctx, root, before, opts)
}

// ErrForeignOverride is wrapped when release finds a driver_override that
// vfio-gate did not write (driverctl's, an operator's): it is left alone.
var ErrForeignOverride = errors.New("vfio: driver_override set by someone else")

// ReleaseTo gives functions back: unbind from vfio-pci, put driver_override
// back to what it was before the bind, and bind the original driver when
// there was one (none: left unbound). driver_override is changed only when
// it still holds the "vfio-pci" vfio-gate wrote: an override that was
// already "vfio-pci" before the bind (driverctl) stays, and any other value
// (set since the bind) is left alone and reported (ErrForeignOverride; the
// original driver is then not bound, the kernel would refuse it). A function
// bound to another driver than vfio-pci is left alone and reported. It goes
// on after a failure and returns every failure joined.
func ReleaseTo(ctx context.Context, root *pci.Root, before map[pci.BDF]Before, opts ApplyOptions) error {
	a := newApplier(root, opts)
	sorted := slices.SortedFunc(maps.Keys(before), pci.CompareBDF)
	var errs []error
	for _, b := range sorted {
		if err := ctx.Err(); err != nil {
			errs = append(errs, &BindError{BDF: b, Step: StepRestore, Err: err})
			break
		}
		if err := a.release(ctx, b, before[b]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *applier) release(ctx context.Context, b pci.BDF, was Before) error {
	orig := was.Driver
	if !a.root.Exists(devPath(b, "")) {
		return &BindError{BDF: b, Step: StepCheck, Err: ErrNoDevice}
	}
	d, err := currentDriver(a.root, b)
	if err != nil {
		return &BindError{BDF: b, Step: StepCheck, Err: err}
	}
	switch d {
	case Driver:
		if err := a.write(ctx, "bus/pci/drivers/"+Driver+"/unbind", b.String()); err != nil {
			return &BindError{BDF: b, Step: StepUnbind, Err: err}
		}
	case "":
	default:
		return &BindError{BDF: b, Step: StepCheck, Err: fmt.Errorf("%w: bound to %s, not vfio-pci: left alone", ErrStateChanged, d)}
	}
	ov, err := a.root.ReadString(devPath(b, "driver_override"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &BindError{BDF: b, Step: StepRestore, Err: fmt.Errorf("driver_override: %w", err)}
	}
	switch ov = strings.TrimSpace(ov); {
	case ov == "(null)" || ov == "":
		// Cleared already: nothing of ours to undo.
	case ov != Driver:
		return &BindError{BDF: b, Step: StepRestore, Err: fmt.Errorf("%w: driver_override is %q, not the %q vfio-gate wrote: left alone "+
			"(the function stays unbound; clear it with driverctl unset-override or by writing a newline to driver_override)", ErrForeignOverride, ov, Driver)}
	case was.Override == Driver:
		// It was "vfio-pci" before the bind (driverctl): not ours, it stays.
		a.log.InfoContext(ctx, "driver_override was vfio-pci before vfio-gate bound the function: left in place", "bdf", b.String())
	default:
		if err := a.write(ctx, devPath(b, "driver_override"), cmp.Or(was.Override, "\n")); err != nil {
			return &BindError{BDF: b, Step: StepRestore, Err: err}
		}
	}
	if orig == "" || orig == Driver {
		return nil
	}
	if err := a.bindTo(ctx, b, orig); err != nil {
		return &BindError{BDF: b, Step: StepRestore, Err: err}
	}
	return nil
}

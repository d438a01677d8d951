package vfio_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/vfio"
)

func actions(p *vfio.Plan) []string {
	var out []string
	for _, a := range p.Actions {
		s := string(a.Step) + " " + a.BDF.String()
		if a.Path != "" {
			s += " " + a.Path + "=" + a.Value
		}
		out = append(out, s)
	}
	return out
}

func TestPlanBindGroup(t *testing.T) {
	_, root, _ := fixture(t)
	// Order of the input does not matter, duplicates neither.
	p, err := vfio.PlanBind(root, bdfs(t, "0000:3b:00.1", "0000:3b:00.0", "0000:3b:00.1"), vfio.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"driver_override 0000:3b:00.0 bus/pci/devices/0000:3b:00.0/driver_override=vfio-pci",
		"unbind 0000:3b:00.0 bus/pci/drivers/ixgbe/unbind=0000:3b:00.0",
		"drivers_probe 0000:3b:00.0 bus/pci/drivers_probe=0000:3b:00.0",
		"driver_override 0000:3b:00.1 bus/pci/devices/0000:3b:00.1/driver_override=vfio-pci",
		"unbind 0000:3b:00.1 bus/pci/drivers/ixgbe/unbind=0000:3b:00.1",
		"drivers_probe 0000:3b:00.1 bus/pci/drivers_probe=0000:3b:00.1",
		"wait 0000:3b:00.0",
	}
	if d := cmp.Diff(want, actions(p)); d != "" {
		t.Errorf("actions (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[pci.BDF]string{bdf(t, "0000:3b:00.0"): "ixgbe", bdf(t, "0000:3b:00.1"): "ixgbe"}, p.Original()); d != "" {
		t.Errorf("original (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]int{1}, p.Groups()); d != "" {
		t.Error(d)
	}
}

func TestPlanBindErrors(t *testing.T) {
	_, root, _ := fixture(t)
	cases := []struct {
		name string
		bdfs []string
		opts vfio.PlanOptions
		want error
		msg  string
	}{
		{"member not in set", []string{"0000:3b:00.0"}, vfio.PlanOptions{}, vfio.ErrGroupNotViable, "member 0000:3b:00.1 (class 0x020000, driver ixgbe)"},
		{"bridge not exempt", []string{"0000:5e:00.0"}, vfio.PlanOptions{}, vfio.ErrGroupNotViable, "member 0000:5d:00.0"},
		{"exempt does not cover a NIC", []string{"0000:3b:00.0"}, vfio.PlanOptions{Exempt: bridgeExempt}, vfio.ErrGroupNotViable, "0000:3b:00.1"},
		{"no iommu", []string{"0000:80:00.0"}, vfio.PlanOptions{}, vfio.ErrNoIOMMU, "0000:80:00.0"},
		{"already bound", []string{"0000:90:00.0"}, vfio.PlanOptions{}, vfio.ErrAlreadyBound, "0000:90:00.0"},
		{"no such device", []string{"0000:99:00.0"}, vfio.PlanOptions{}, vfio.ErrNoDevice, "0000:99:00.0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := vfio.PlanBind(root, bdfs(t, c.bdfs...), c.opts)
			if p != nil || !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("plan %v, error %v; want %v mentioning %q", p, err, c.want, c.msg)
			}
		})
	}
	var ge *vfio.GroupError
	_, err := vfio.PlanBind(root, bdfs(t, "0000:3b:00.0"), vfio.PlanOptions{})
	if !errors.As(err, &ge) || ge.Group != 1 || ge.Member != bdf(t, "0000:3b:00.1") || ge.Driver != "ixgbe" {
		t.Fatalf("GroupError %+v", ge)
	}
}

func TestPlanBindExemptBridgeAndBound(t *testing.T) {
	tree, root, _ := fixture(t)
	p, err := vfio.PlanBind(root, bdfs(t, "0000:5e:00.0", "0000:70:00.0", "0000:90:00.0"), vfio.PlanOptions{Exempt: bridgeExempt, AllowBound: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"driver_override 0000:5e:00.0 bus/pci/devices/0000:5e:00.0/driver_override=vfio-pci",
		"unbind 0000:5e:00.0 bus/pci/drivers/nvme/unbind=0000:5e:00.0",
		"drivers_probe 0000:5e:00.0 bus/pci/drivers_probe=0000:5e:00.0",
		"wait 0000:5e:00.0",
		// no driver: nothing to unbind
		"driver_override 0000:70:00.0 bus/pci/devices/0000:70:00.0/driver_override=vfio-pci",
		"drivers_probe 0000:70:00.0 bus/pci/drivers_probe=0000:70:00.0",
		"wait 0000:70:00.0",
		"wait 0000:90:00.0",
	}
	if d := cmp.Diff(want, actions(p)); d != "" {
		t.Errorf("actions (-want +got):\n%s", d)
	}
	var bridge vfio.Function
	for _, f := range p.Functions {
		if f.BDF == bdf(t, "0000:5d:00.0") {
			bridge = f
		}
	}
	if !bridge.Exempt || bridge.InSet || bridge.Driver != "pcieport" {
		t.Errorf("bridge %+v", bridge)
	}
	orig := p.Original()
	if _, ok := orig[bdf(t, "0000:90:00.0")]; ok || orig[bdf(t, "0000:70:00.0")] != "" || orig[bdf(t, "0000:5e:00.0")] != "nvme" {
		t.Errorf("original %v", orig)
	}
	// Without the vfio-pci driver nothing can be planned.
	if err := os.RemoveAll(filepath.Join(tree.Dir, "bus/pci/drivers/vfio-pci")); err != nil {
		t.Fatal(err)
	}
	if _, err := vfio.PlanBind(root, bdfs(t, "0000:70:00.0"), vfio.PlanOptions{}); !errors.Is(err, vfio.ErrNoVFIODriver) {
		t.Fatalf("no vfio-pci: %v", err)
	}
}

func opts(k *fakeKernel) vfio.ApplyOptions {
	return vfio.ApplyOptions{DevVFIO: k.devDir, Write: k.Write, Wait: 200 * time.Millisecond, Poll: time.Millisecond}
}

func TestApplyAndRelease(t *testing.T) {
	_, root, k := fixture(t)
	set := bdfs(t, "0000:3b:00.0", "0000:3b:00.1", "0000:5e:00.0")
	p, err := vfio.PlanBind(root, set, vfio.PlanOptions{Exempt: bridgeExempt})
	if err != nil {
		t.Fatal(err)
	}
	if err := vfio.Apply(context.Background(), root, p, opts(k)); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"0000:3b:00.0", "0000:3b:00.1", "0000:5e:00.0"} {
		if d := k.driverOf(b); d != "vfio-pci" {
			t.Errorf("%s driver %q", b, d)
		}
		if o := k.override(b); o != "vfio-pci" {
			t.Errorf("%s override %q", b, o)
		}
	}
	if d := k.driverOf("0000:5d:00.0"); d != "pcieport" {
		t.Errorf("exempt bridge moved to %q", d)
	}
	for _, g := range []string{"1", "2"} {
		if !exists(filepath.Join(k.devDir, g)) {
			t.Errorf("/dev/vfio/%s missing", g)
		}
	}
	// Every write is one of the plan's, in order (no new_id, nothing else).
	var planned []string
	for _, a := range p.Actions {
		if a.Path != "" {
			planned = append(planned, a.Path+"="+a.Value)
		}
	}
	if d := cmp.Diff(planned, k.log()); d != "" {
		t.Errorf("writes (-plan +kernel):\n%s", d)
	}

	if err := vfio.Release(context.Background(), root, set, p.Original(), opts(k)); err != nil {
		t.Fatal(err)
	}
	for b, want := range map[string]string{"0000:3b:00.0": "ixgbe", "0000:3b:00.1": "ixgbe", "0000:5e:00.0": "nvme"} {
		if d := k.driverOf(b); d != want {
			t.Errorf("released %s driver %q, want %q", b, d, want)
		}
		if o := k.override(b); o != "" {
			t.Errorf("released %s override %q", b, o)
		}
	}
	if exists(filepath.Join(k.devDir, "1")) {
		t.Error("/dev/vfio/1 still present after release")
	}
}

func TestApplyUndoesAfterFailure(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(k *fakeKernel)
		step    vfio.Step
		failBDF string
		is      error
	}{
		{"probe write fails on the second function", func(k *fakeKernel) {
			k.fail["bus/pci/drivers_probe=0000:3b:00.1"] = syscall.EIO
		}, vfio.StepProbe, "0000:3b:00.1", syscall.EIO},
		{"unbind fails", func(k *fakeKernel) {
			k.fail["bus/pci/drivers/ixgbe/unbind=0000:3b:00.1"] = syscall.EBUSY
		}, vfio.StepUnbind, "0000:3b:00.1", syscall.EBUSY},
		{"probe binds the wrong driver", func(k *fakeKernel) { k.ignoreOverride = true }, vfio.StepProbe, "0000:3b:00.0", vfio.ErrNotBound},
		{"/dev/vfio never appears", func(k *fakeKernel) { k.noDevNode = true }, vfio.StepWait, "0000:3b:00.0", vfio.ErrTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, root, k := fixture(t)
			p, err := vfio.PlanBind(root, bdfs(t, "0000:3b:00.0", "0000:3b:00.1"), vfio.PlanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			c.setup(k)
			err = vfio.Apply(context.Background(), root, p, opts(k))
			var be *vfio.BindError
			if !errors.As(err, &be) || be.Step != c.step || be.BDF != bdf(t, c.failBDF) || !errors.Is(err, c.is) {
				t.Fatalf("error %v (%+v), want step %s on %s wrapping %v", err, be, c.step, c.failBDF, c.is)
			}
			if strings.Contains(err.Error(), "undo") {
				t.Errorf("undo failed: %v", err)
			}
			for _, b := range []string{"0000:3b:00.0", "0000:3b:00.1"} {
				if d := k.driverOf(b); d != "ixgbe" {
					t.Errorf("%s left on %q after undo", b, d)
				}
				if o := k.override(b); o != "" {
					t.Errorf("%s override %q after undo", b, o)
				}
			}
		})
	}
}

func TestApplyReportsUndoFailure(t *testing.T) {
	_, root, k := fixture(t)
	p, err := vfio.PlanBind(root, bdfs(t, "0000:3b:00.0", "0000:3b:00.1"), vfio.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k.fail["bus/pci/drivers_probe=0000:3b:00.1"] = syscall.EIO
	k.fail["bus/pci/drivers/ixgbe/bind=0000:3b:00.0"] = syscall.ENOMEM
	err = vfio.Apply(context.Background(), root, p, opts(k))
	if !errors.Is(err, syscall.EIO) || !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("error %v: want both the failure and the undo failure", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "0000:3b:00.1: drivers_probe") || !strings.Contains(msg, "0000:3b:00.0: undo unbind") {
		t.Fatalf("error text %q", msg)
	}
	// The rest of the undo still ran.
	if d := k.driverOf("0000:3b:00.1"); d != "ixgbe" {
		t.Errorf("3b:00.1 on %q", d)
	}
}

func TestApplyRefusesChangedState(t *testing.T) {
	tree, root, k := fixture(t)
	p, err := vfio.PlanBind(root, bdfs(t, "0000:3b:00.0", "0000:3b:00.1"), vfio.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Someone rebinds 3b:00.1 between plan and apply.
	if err := tree.Unbind("0000:3b:00.1"); err != nil {
		t.Fatal(err)
	}
	if err := tree.Bind("0000:3b:00.1", "other"); err != nil {
		t.Fatal(err)
	}
	err = vfio.Apply(context.Background(), root, p, opts(k))
	var be *vfio.BindError
	if !errors.As(err, &be) || be.Step != vfio.StepCheck || !errors.Is(err, vfio.ErrStateChanged) {
		t.Fatalf("error %v", err)
	}
	if d := k.driverOf("0000:3b:00.0"); d != "ixgbe" {
		t.Errorf("3b:00.0 not restored: %q", d)
	}
}

func TestApplyDeviceRemovedMidway(t *testing.T) {
	tree, root, k := fixture(t)
	p, err := vfio.PlanBind(root, bdfs(t, "0000:3b:00.0", "0000:3b:00.1"), vfio.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Remove("0000:3b:00.1"); err != nil {
		t.Fatal(err)
	}
	err = vfio.Apply(context.Background(), root, p, opts(k))
	if !errors.Is(err, vfio.ErrNoDevice) && !errors.Is(err, vfio.ErrStateChanged) {
		t.Fatalf("error %v", err)
	}
	if d := k.driverOf("0000:3b:00.0"); d != "ixgbe" {
		t.Errorf("3b:00.0 not restored: %q", d)
	}
}

func TestApplyCancelled(t *testing.T) {
	_, root, k := fixture(t)
	p, err := vfio.PlanBind(root, bdfs(t, "0000:3b:00.0", "0000:3b:00.1"), vfio.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k.noDevNode = true
	ctx, cancel := context.WithCancel(context.Background())
	o := opts(k)
	o.Wait = time.Hour
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	err = vfio.Apply(ctx, root, p, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
	if d := k.driverOf("0000:3b:00.0"); d != "ixgbe" {
		t.Errorf("3b:00.0 not restored after cancel: %q", d)
	}
}

func TestReleaseEdgeCases(t *testing.T) {
	tree, root, k := fixture(t)
	// 70:00.0 had no driver: after release it stays unbound. 3b:00.0 is on
	// another driver: left alone and reported. Bad names never reach a path.
	p, err := vfio.PlanBind(root, bdfs(t, "0000:70:00.0"), vfio.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := vfio.Apply(context.Background(), root, p, opts(k)); err != nil {
		t.Fatal(err)
	}
	err = vfio.Release(context.Background(), root, bdfs(t, "0000:70:00.0", "0000:3b:00.0"), p.Original(), opts(k))
	if !errors.Is(err, vfio.ErrStateChanged) || !strings.Contains(err.Error(), "0000:3b:00.0") {
		t.Fatalf("release error %v", err)
	}
	if d := k.driverOf("0000:70:00.0"); d != "" {
		t.Errorf("70:00.0 on %q", d)
	}
	if d := k.driverOf("0000:3b:00.0"); d != "ixgbe" {
		t.Errorf("3b:00.0 moved to %q", d)
	}
	if err := tree.Bind("0000:70:00.0", "vfio-pci"); err != nil {
		t.Fatal(err)
	}
	err = vfio.Release(context.Background(), root, bdfs(t, "0000:70:00.0"), map[pci.BDF]string{bdf(t, "0000:70:00.0"): "../../../kernel"}, opts(k))
	if !errors.Is(err, vfio.ErrBadDriverName) {
		t.Fatalf("bad driver name: %v", err)
	}
}

// TestReleaseLeavesForeignOverrides: release puts back only what vfio-gate
// wrote. A driver_override of vfio-pci that was there before the bind
// (driverctl set-override) stays; one set since the bind is left alone and
// reported.
func TestReleaseLeavesForeignOverrides(t *testing.T) {
	_, root, k := fixture(t)
	ctx := context.Background()
	// driverctl's override on a function without a driver.
	fn := "0000:70:00.0"
	if err := k.Write("bus/pci/devices/"+fn+"/driver_override", "vfio-pci"); err != nil {
		t.Fatal(err)
	}
	p, err := vfio.PlanBind(root, bdfs(t, fn), vfio.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := vfio.Apply(ctx, root, p, opts(k)); err != nil {
		t.Fatal(err)
	}
	if got := p.Before()[bdf(t, fn)]; got != (vfio.Before{Override: "vfio-pci"}) {
		t.Fatalf("Before = %+v", got)
	}
	if err := vfio.ReleaseTo(ctx, root, p.Before(), opts(k)); err != nil {
		t.Fatal(err)
	}
	if o := k.override(fn); o != "vfio-pci" {
		t.Errorf("driverctl's override after release: %q, want vfio-pci", o)
	}

	// An override someone set after the bind.
	set := bdfs(t, "0000:3b:00.0", "0000:3b:00.1")
	p, err = vfio.PlanBind(root, set, vfio.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := vfio.Apply(ctx, root, p, opts(k)); err != nil {
		t.Fatal(err)
	}
	if err := k.Write("bus/pci/devices/0000:3b:00.1/driver_override", "ixgbevf"); err != nil {
		t.Fatal(err)
	}
	err = vfio.Release(ctx, root, set, p.Original(), opts(k))
	if !errors.Is(err, vfio.ErrForeignOverride) || !strings.Contains(err.Error(), "0000:3b:00.1") || !strings.Contains(err.Error(), "left alone") {
		t.Fatalf("release over a foreign override: %v", err)
	}
	if o := k.override("0000:3b:00.1"); o != "ixgbevf" {
		t.Errorf("foreign override after release: %q, want ixgbevf kept", o)
	}
	// The other function is released as usual.
	if o, d := k.override("0000:3b:00.0"), k.driverOf("0000:3b:00.0"); o != "" || d != "ixgbe" {
		t.Errorf("0000:3b:00.0 after release: override %q driver %q, want none and ixgbe", o, d)
	}
}

package tdisp

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vfio-gate/vfio-gate/pci"
)

// fixture builds a sysfs-like tree: the real device directory under
// devices/pci0000:00/, reached through the relative symlink
// bus/pci/devices/BDF, as the kernel lays it out.
func fixture(t *testing.T, tsms []string, withTSMDir bool, connected, authenticated string) (string, pci.BDF) {
	t.Helper()
	root := t.TempDir()
	bdf, _ := pci.ParseBDF("0000:3b:00.0")
	dev := filepath.Join(root, "devices/pci0000:00/0000:00:01.0", bdf.String())
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(dev, 0o755))
	must(os.MkdirAll(filepath.Join(root, "bus/pci/devices"), 0o755))
	must(os.Symlink("../../../devices/pci0000:00/0000:00:01.0/"+bdf.String(), filepath.Join(root, "bus/pci/devices", bdf.String())))
	must(os.WriteFile(filepath.Join(dev, "vendor"), []byte("0x8086\n"), 0o444))
	if authenticated != "" {
		must(os.WriteFile(filepath.Join(dev, "authenticated"), []byte(authenticated+"\n"), 0o444))
	}
	if withTSMDir {
		must(os.MkdirAll(filepath.Join(dev, "tsm"), 0o755))
		must(os.WriteFile(filepath.Join(dev, "tsm/connect"), []byte(connected+"\n"), 0o644))
		must(os.WriteFile(filepath.Join(dev, "tsm/disconnect"), nil, 0o200))
		must(os.WriteFile(filepath.Join(dev, "tsm/connect_mode"), []byte("link [selective]\n"), 0o444))
	}
	for _, n := range tsms {
		must(os.MkdirAll(filepath.Join(root, "devices/virtual/tsm", n), 0o755))
		must(os.MkdirAll(filepath.Join(root, "class/tsm"), 0o755))
		must(os.Symlink("../../devices/virtual/tsm/"+n, filepath.Join(root, "class/tsm", n)))
	}
	return root, bdf
}

// fakeKernel plays the kernel's side of the writes.
func fakeKernel(t *testing.T, tm *TSM, bdf pci.BDF, busy bool) {
	tm.kernel = func(name, v string) error {
		switch {
		case busy:
			return syscall.EBUSY
		case strings.HasSuffix(name, "tsm/connect"):
			return nil // the written name is what connect reads back
		case strings.HasSuffix(name, "tsm/disconnect"):
			return tm.root.WriteFile(devPath(bdf, "tsm", "connect"), []byte("\n"), 0)
		}
		t.Fatalf("unexpected write %s", name)
		return nil
	}
}

func TestTSMConnectDisconnect(t *testing.T) {
	ctx := context.Background()
	root, bdf := fixture(t, []string{"tsm0"}, true, "", "0")
	tm, err := OpenTSM(root)
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	fakeKernel(t, tm, bdf, false)
	ps, err := tm.Providers()
	if err != nil || len(ps) != 1 || ps[0] != "tsm0" {
		t.Fatal(ps, err)
	}
	st, err := tm.Status(ctx, bdf)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Present || st.Connected != "" || st.Authenticated == nil || *st.Authenticated || st.Attributes["connect_mode"] != "link [selective]" {
		t.Fatalf("status %+v", st)
	}
	if err := tm.Disconnect(ctx, bdf); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("disconnect while not connected: %v", err)
	}
	if err := tm.Connect(ctx, bdf, "tsm1"); !errors.Is(err, ErrUnknownTSM) {
		t.Fatalf("unknown TSM: %v", err)
	}
	if err := tm.Connect(ctx, bdf, "../../x"); !errors.Is(err, ErrUnknownTSM) {
		t.Fatalf("path-like TSM name: %v", err)
	}
	if err := tm.Connect(ctx, bdf, ""); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(root, "bus/pci/devices", bdf.String(), "tsm/connect"))
	if string(b) != "tsm0" {
		t.Fatalf("connect file holds %q", b)
	}
	st, _ = tm.Status(ctx, bdf)
	if st.Connected != "tsm0" {
		t.Fatalf("status after connect %+v", st)
	}
	if err := tm.Connect(ctx, bdf, "tsm0"); err != nil {
		t.Fatalf("idempotent connect: %v", err)
	}
	if err := tm.Disconnect(ctx, bdf); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(filepath.Join(root, "devices/pci0000:00/0000:00:01.0", bdf.String(), "tsm/disconnect"))
	if string(b) != "tsm0" {
		t.Fatalf("disconnect got %q", b)
	}
	if st, _ = tm.Status(ctx, bdf); st.Connected != "" {
		t.Fatalf("still connected: %+v", st)
	}
}

func TestTSMFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("no tsm dir", func(t *testing.T) {
		root, bdf := fixture(t, []string{"tsm0"}, false, "", "")
		tm, _ := OpenTSM(root)
		defer tm.Close()
		st, err := tm.Status(ctx, bdf)
		if err != nil || st.Present || st.Authenticated != nil {
			t.Fatalf("%+v %v", st, err)
		}
		if err := tm.Connect(ctx, bdf, "tsm0"); !errors.Is(err, ErrNoTSM) {
			t.Fatal(err)
		}
	})
	t.Run("busy", func(t *testing.T) {
		root, bdf := fixture(t, []string{"tsm0"}, true, "", "")
		tm, _ := OpenTSM(root)
		defer tm.Close()
		fakeKernel(t, tm, bdf, true)
		if err := tm.Connect(ctx, bdf, "tsm0"); !errors.Is(err, ErrTSMBusy) || !errors.Is(err, syscall.EBUSY) {
			t.Fatal(err)
		}
	})
	t.Run("connected elsewhere", func(t *testing.T) {
		root, bdf := fixture(t, []string{"tsm0", "tsm1"}, true, "tsm1", "1")
		tm, _ := OpenTSM(root)
		defer tm.Close()
		st, _ := tm.Status(ctx, bdf)
		if st.Authenticated == nil || !*st.Authenticated || st.Connected != "tsm1" {
			t.Fatalf("%+v", st)
		}
		if err := tm.Connect(ctx, bdf, "tsm0"); !errors.Is(err, ErrTSMBusy) {
			t.Fatal(err)
		}
		if err := tm.Connect(ctx, bdf, ""); !errors.Is(err, ErrUnknownTSM) {
			t.Fatalf("ambiguous provider: %v", err)
		}
	})
	t.Run("kernel ignores connect", func(t *testing.T) {
		root, bdf := fixture(t, []string{"tsm0"}, true, "", "")
		tm, _ := OpenTSM(root)
		defer tm.Close()
		tm.kernel = func(name, v string) error {
			return tm.root.WriteFile(devPath(bdf, "tsm", "connect"), []byte("\n"), 0)
		}
		if err := tm.Connect(ctx, bdf, "tsm0"); err == nil {
			t.Fatal("connect not confirmed but accepted")
		}
	})
	t.Run("kernel ignores disconnect", func(t *testing.T) {
		root, bdf := fixture(t, []string{"tsm0"}, true, "tsm0", "")
		tm, _ := OpenTSM(root)
		defer tm.Close()
		tm.kernel = func(string, string) error { return nil }
		if err := tm.Disconnect(ctx, bdf); err == nil {
			t.Fatal("disconnect not confirmed but accepted")
		}
	})
	t.Run("no such device", func(t *testing.T) {
		root, _ := fixture(t, nil, false, "", "")
		tm, _ := OpenTSM(root)
		defer tm.Close()
		other, _ := pci.ParseBDF("0000:3c:00.0")
		if _, err := tm.Status(ctx, other); !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if ps, err := tm.Providers(); err != nil || len(ps) != 0 {
			t.Fatal(ps, err)
		}
	})
	t.Run("escaping symlink", func(t *testing.T) {
		root, _ := fixture(t, nil, false, "", "")
		outside := t.TempDir()
		bdf, _ := pci.ParseBDF("0000:3d:00.0")
		if err := os.Symlink(outside, filepath.Join(root, "bus/pci/devices", bdf.String())); err != nil {
			t.Fatal(err)
		}
		tm, _ := OpenTSM(root)
		defer tm.Close()
		if _, err := tm.Status(ctx, bdf); err == nil {
			t.Fatal("symlink out of the sysfs root followed")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		root, bdf := fixture(t, []string{"tsm0"}, true, "", "")
		tm, _ := OpenTSM(root)
		defer tm.Close()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := tm.Connect(cctx, bdf, "tsm0"); !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	})
}

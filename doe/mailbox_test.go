package doe_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/internal/testutil/doetest"
	"github.com/vfio-gate/vfio-gate/pci"
)

func TestFeatureName(t *testing.T) {
	cases := map[doe.Feature]string{
		doe.FeatureDiscovery:         "discovery",
		doe.FeatureCMA:               "cma-spdm",
		doe.FeatureSecuredCMA:        "secured-cma-spdm",
		doe.FeatureCXLCDAT:           "cxl-cdat",
		doe.FeatureCXLCompliance:     "cxl-compliance",
		{Vendor: 0x1234, Type: 0x0a}: "1234:0a",
		{Vendor: 0x0001, Type: 0x03}: "0001:03",
	}
	for f, want := range cases {
		if got := f.Name(); got != want {
			t.Errorf("%#v.Name() = %q, want %q", f, got, want)
		}
	}
}

func TestDiscoverOneMailbox(t *testing.T) {
	_, mb, _ := newMailbox(t, nil)
	if mb.Offset() != 0x100 {
		t.Fatalf("offset %#x, want 0x100", mb.Offset())
	}
	if mb.Features() != nil || mb.Supports(doe.FeatureCMA) {
		t.Fatal("features known before Discover")
	}
	fs, err := mb.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []doe.Feature{doe.FeatureDiscovery, doe.FeatureCMA, doe.FeatureSecuredCMA}
	if !slices.Equal(fs, want) || !slices.Equal(mb.Features(), want) {
		t.Fatalf("Discover = %v, Features = %v, want %v", fs, mb.Features(), want)
	}
	if !mb.Supports(doe.FeatureSecuredCMA) || mb.Supports(doe.FeatureCXLCDAT) {
		t.Fatal("Supports disagrees with the discovered list")
	}
	if s := mb.Stats(); s.Exchanges != 3 || s.Failures != 0 || s.Aborts != 0 {
		t.Fatalf("stats %+v, want 3 exchanges", s)
	}
}

func TestDiscoverSeveralMailboxes(t *testing.T) {
	lists := [][]doe.Feature{
		{doe.FeatureCMA, doe.FeatureSecuredCMA},
		{doe.FeatureCXLCDAT},
		{{Vendor: 0x8086, Type: 0x7f}, doe.FeatureCXLCompliance},
	}
	var models []*doe.Model
	for _, l := range lists {
		models = append(models, doe.NewModel(l, nil))
	}
	cfg := doetest.NewConfig(models...)
	dsn := cfg.AddExtCap(pci.ExtCapIDDSN, 1, make([]byte, 8)) // a non-DOE cap after them
	mbs, err := doe.Find(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(mbs) != 3 || dsn != 0x148 {
		t.Fatalf("%d mailboxes, DSN at %#x", len(mbs), dsn)
	}
	for i, mb := range mbs {
		if want := uint16(0x100 + 0x18*i); mb.Offset() != want {
			t.Errorf("mailbox %d at %#x, want %#x", i, mb.Offset(), want)
		}
		fs, err := mb.Discover(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := append([]doe.Feature{doe.FeatureDiscovery}, lists[i]...)
		if !slices.Equal(fs, want) {
			t.Errorf("mailbox %d: %v, want %v", i, fs, want)
		}
	}
}

func TestFindNoMailbox(t *testing.T) {
	cfg := doetest.NewConfig()
	if _, err := doe.Find(cfg, nil); !errors.Is(err, doe.ErrNoMailbox) {
		t.Fatalf("err = %v, want ErrNoMailbox", err)
	}
	cfg.AddExtCap(pci.ExtCapIDDSN, 1, make([]byte, 8))
	if _, err := doe.Find(cfg, nil); !errors.Is(err, doe.ErrNoMailbox) {
		t.Fatalf("err = %v, want ErrNoMailbox", err)
	}
}

// shortConfig returns only the first 64 bytes, like sysfs for readers
// without CAP_SYS_ADMIN.
type shortConfig struct{ *doetest.Config }

func (s shortConfig) ReadAt(p []byte, off int64) (int, error) {
	if off >= 64 {
		return 0, nil
	}
	return s.Config.ReadAt(p[:min(len(p), int(64-off))], off)
}

func TestFindWithoutCapSysAdmin(t *testing.T) {
	cfg := shortConfig{doetest.NewConfig(doe.NewModel(nil, nil))}
	if _, err := doe.Find(cfg, nil); !errors.Is(err, pci.ErrShortConfig) {
		t.Fatalf("err = %v, want pci.ErrShortConfig", err)
	}
	mb := doe.New(cfg, 0x100, nil)
	if _, err := mb.Exchange(context.Background(), doe.FeatureCMA, []byte{1}); !errors.Is(err, pci.ErrShortConfig) {
		t.Fatalf("Exchange err = %v, want pci.ErrShortConfig", err)
	}
}

func TestFindHostileCapList(t *testing.T) {
	cfg := doetest.NewConfig(doe.NewModel(nil, nil))
	// Next pointer of the DOE capability points back to itself.
	cfg.Poke(0x100, binary.LittleEndian.AppendUint32(nil, 0x2E|1<<16|0x100<<20))
	mbs, err := doe.Find(cfg, nil)
	if !errors.Is(err, pci.ErrCapLoop) || len(mbs) != 1 {
		t.Fatalf("Find = %d mailboxes, %v; want 1 and ErrCapLoop", len(mbs), err)
	}
}

func TestExchangeMultipleObjects(t *testing.T) {
	_, mb, _ := newMailbox(t, nil)
	for _, n := range []int{0, 1, 3, 4, 5, 64, 4095, 4096, 70000} {
		req := make([]byte, n)
		for i := range req {
			req[i] = byte(i*7 + n)
		}
		mustEcho(t, mb, req)
	}
	x := mb.Exchanger(doe.FeatureCMA)
	var tr interface {
		Exchange(context.Context, []byte) ([]byte, error)
	} = x
	rsp, err := tr.Exchange(context.Background(), []byte{1, 2, 3, 4})
	if err != nil || !bytes.Equal(rsp, []byte{4, 3, 2, 1}) {
		t.Fatalf("Exchanger = %x, %v", rsp, err)
	}
	if x.Feature() != doe.FeatureCMA {
		t.Fatal("Exchanger feature")
	}
	if s := mb.Stats(); s.Exchanges != 10 || s.Aborts != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestExchangeTooLarge(t *testing.T) {
	_, mb, _ := newMailbox(t, nil)
	if _, err := mb.Exchange(context.Background(), doe.FeatureCMA, make([]byte, doe.MaxPayload+1)); !errors.Is(err, doe.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

// TestExchangeAccessCount pins the register access pattern: one write per
// request DW, GO, two accesses per response DW, and four Status reads
// (entry, DOR poll, before the last pop, after it).
func TestExchangeAccessCount(t *testing.T) {
	_, mb, cfg := newMailbox(t, nil)
	r0, w0 := cfg.Accesses()
	mustEcho(t, mb, make([]byte, 4096))
	const dw = 2 + 1024
	s := mb.Stats()
	r, w := cfg.Accesses()
	if s.Writes != dw+1+dw || s.Reads != dw+4 {
		t.Fatalf("stats %+v, want %d writes and %d reads", s, 2*dw+1, dw+4)
	}
	if r-r0 != s.Reads || w-w0 != s.Writes {
		t.Fatalf("config saw %d reads %d writes, mailbox counted %+v", r, w, s)
	}
}

// faultCase is one injected fault and the error it must produce.
type faultCase struct {
	name  string
	fault doe.Fault
	h     doe.Handler
	check func(error) bool
	// aborted: the error says the mailbox was aborted successfully.
	aborted bool
}

func protoField(field string) func(error) bool {
	return func(err error) bool {
		var pe *doe.ProtocolError
		return errors.As(err, &pe) && pe.Field == field
	}
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

func TestFaults(t *testing.T) {
	cases := []faultCase{
		{name: "stuck busy", fault: doe.Fault{StuckBusy: true}, check: is(doe.ErrMailboxBusy)},
		{name: "error bit", fault: doe.Fault{Error: true}, check: is(doe.ErrMailboxError), aborted: true},
		{name: "sticky error", fault: doe.Fault{Error: true, StickyError: true}, check: is(doe.ErrMailboxError)},
		{name: "handler error", h: func(doe.Feature, []byte) ([]byte, error) { return nil, errors.New("no") },
			check: is(doe.ErrMailboxError), aborted: true},
		{name: "never ready", fault: doe.Fault{NeverReady: true}, check: func(err error) bool {
			return errors.Is(err, doe.ErrTimeout) && errors.Is(err, context.DeadlineExceeded)
		}, aborted: true},
		{name: "slower than timeout", fault: doe.Fault{Latency: 1500 * time.Millisecond}, check: is(doe.ErrTimeout), aborted: true},
		{name: "length too long", fault: doe.Fault{LengthDelta: 1}, check: protoField("Data Object Ready"), aborted: true},
		{name: "length too short", fault: doe.Fault{LengthDelta: -1}, check: protoField("Length"), aborted: true},
		{name: "length 1", fault: doe.Fault{SetLength: true, Length: 1}, check: protoField("Length"), aborted: true},
		{name: "oversize (length 0 = 2^18 DW)", fault: doe.Fault{SetLength: true, Length: 0}, check: protoField("Length"), aborted: true},
		{name: "oversize (over MaxResponse)", fault: doe.Fault{SetLength: true, Length: 4096/4 + 3}, check: protoField("Length"), aborted: true},
		{name: "wrong vendor", fault: doe.Fault{WrongVendor: true}, check: protoField("header"), aborted: true},
		{name: "wrong type", fault: doe.Fault{WrongType: true}, check: protoField("header"), aborted: true},
		{name: "truncated", fault: doe.Fault{Truncate: 1}, check: protoField("Data Object Ready"), aborted: true},
		{name: "truncated to nothing", fault: doe.Fault{Truncate: 100}, check: is(doe.ErrTimeout), aborted: true},
		{name: "DOR drops mid-read", fault: doe.Fault{DropDORAfter: 3}, check: protoField("Data Object Ready"), aborted: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := tc.h
				if h == nil {
					h = echo
				}
				m := doe.NewModel([]doe.Feature{doe.FeatureCMA}, h)
				cfg := doetest.NewConfig(m)
				mb := doe.New(cfg, 0x100, &doe.Options{MaxResponse: 4096})
				if tc.h == nil {
					mustEcho(t, mb, []byte("before"))
				}
				m.SetFault(tc.fault)
				start := time.Now()
				rsp, err := mb.Exchange(context.Background(), doe.FeatureCMA, []byte("0123456789abcdef"))
				if err == nil || rsp != nil {
					t.Fatalf("Exchange = %x, %v; want an error", rsp, err)
				}
				if !tc.check(err) {
					t.Fatalf("wrong error: %v", err)
				}
				if got := errors.Is(err, doe.ErrAborted); got != tc.aborted {
					t.Fatalf("errors.Is(ErrAborted) = %v, want %v: %v", got, tc.aborted, err)
				}
				if el := time.Since(start); el > 2*doe.DefaultTimeout+time.Millisecond {
					t.Fatalf("took %v", el)
				}
				if m.Stats().Aborts == 0 {
					t.Fatal("no abort written")
				}
				// Usable again once the device behaves.
				m.SetFault(doe.Fault{})
				if tc.h != nil {
					return
				}
				mustEcho(t, mb, []byte("after the fault"))
			})
		})
	}
}

func TestBusyOnEntryAbortsOnce(t *testing.T) {
	m, mb, _ := newMailbox(t, nil)
	m.SetFault(doe.Fault{BusyUntilAbort: true})
	mustEcho(t, mb, []byte("other owner was interrupted"))
	if s := mb.Stats(); s.Aborts != 1 {
		t.Fatalf("aborts = %d, want 1", s.Aborts)
	}
}

func TestStuckBusyRefusesWithReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, mb, _ := newMailbox(t, nil)
		m.SetFault(doe.Fault{StuckBusy: true})
		start := time.Now()
		_, err := mb.Exchange(context.Background(), doe.FeatureCMA, []byte{1})
		if !errors.Is(err, doe.ErrMailboxBusy) {
			t.Fatalf("err = %v", err)
		}
		if el := time.Since(start); el != doe.DefaultTimeout {
			t.Fatalf("gave up after %v, want exactly the 1 s abort budget", el)
		}
		if s := m.Stats(); s.Aborts != 1 || s.Objects != 0 {
			t.Fatalf("model stats %+v: want exactly one abort and no object", s)
		}
		if want := "another owner is using the mailbox"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Fatalf("error %q does not say %q", err, want)
		}
	})
}

func TestSlowReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, mb, _ := newMailbox(t, nil)
		m.SetFault(doe.Fault{Latency: 300 * time.Millisecond})
		start := time.Now()
		mustEcho(t, mb, []byte("slow"))
		el := time.Since(start)
		// Polling backs off to 1 ms: done within a poll interval of ready.
		if el < 300*time.Millisecond || el > 301*time.Millisecond {
			t.Fatalf("took %v, want 300..301 ms", el)
		}
		if p := mb.Stats().Polls; p > 400 {
			t.Fatalf("%d polls for 300 ms", p)
		}
		if s := m.Stats(); s.Ready != 1 || s.Late > time.Millisecond {
			t.Fatalf("model %+v: response noticed later than one 1 ms poll interval", s)
		}
	})
}

// TestPollDelay pins the polling schedule on the bubble clock: within the
// spin window (2 ms) a ready response is seen within 32 µs, later within
// one 1 ms interval; the number of Status reads stays small.
func TestPollDelay(t *testing.T) {
	cases := []struct {
		lat, maxLate time.Duration
		maxPolls     uint64
	}{
		{0, 0, 1},
		{3 * time.Microsecond, 3 * time.Microsecond, 3},
		{50 * time.Microsecond, 32 * time.Microsecond, 7},
		{time.Millisecond, 32 * time.Microsecond, 40},
		{1900 * time.Microsecond, 32 * time.Microsecond, 70},
		{50 * time.Millisecond, time.Millisecond, 130},
	}
	for _, tc := range cases {
		synctest.Test(t, func(t *testing.T) {
			m, mb, _ := newMailbox(t, nil)
			m.SetFault(doe.Fault{Latency: tc.lat})
			mustEcho(t, mb, make([]byte, 64))
			s, ms := mb.Stats(), m.Stats()
			t.Logf("latency %v: noticed %v late, %d polls", tc.lat, ms.Late, s.Polls)
			if ms.Late > tc.maxLate || s.Polls > tc.maxPolls {
				t.Errorf("latency %v: noticed %v late after %d polls, want <= %v and <= %d", tc.lat, ms.Late, s.Polls, tc.maxLate, tc.maxPolls)
			}
		})
	}
}

// TestPollDelayFixedInterval: the Linux doe.c schedule (Status at once, then
// every 7.8125 ms) notices a response up to a whole interval late.
func TestPollDelayFixedInterval(t *testing.T) {
	const linux = 7812500 * time.Nanosecond // HZ/128
	for _, lat := range []time.Duration{50 * time.Microsecond, time.Millisecond} {
		synctest.Test(t, func(t *testing.T) {
			m, mb, _ := newMailbox(t, &doe.Options{PollMin: linux, PollMax: linux, Spin: -1})
			m.SetFault(doe.Fault{Latency: lat})
			mustEcho(t, mb, make([]byte, 64))
			if late := m.Stats().Late; late != linux-lat {
				t.Errorf("latency %v: noticed %v late, want %v", lat, late, linux-lat)
			}
			t.Logf("latency %v: fixed 7.8 ms polling notices it %v late", lat, m.Stats().Late)
		})
	}
}

func TestTimeoutUsesCallerDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, mb, _ := newMailbox(t, nil)
		m.SetFault(doe.Fault{NeverReady: true})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := mb.Exchange(ctx, doe.FeatureCMA, []byte{1})
		if !errors.Is(err, doe.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, doe.ErrAborted) {
			t.Fatalf("err = %v", err)
		}
		if el := time.Since(start); el < 100*time.Millisecond || el > 102*time.Millisecond {
			t.Fatalf("took %v, want the caller's 100 ms", el)
		}
	})
}

func TestOptionsTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := doe.NewModel([]doe.Feature{doe.FeatureCMA}, echo)
		mb := doe.New(doetest.NewConfig(m), 0x100, &doe.Options{Timeout: 20 * time.Millisecond})
		m.SetFault(doe.Fault{Latency: 25 * time.Millisecond})
		start := time.Now()
		if _, err := mb.Exchange(context.Background(), doe.FeatureCMA, []byte{1}); !errors.Is(err, doe.ErrTimeout) {
			t.Fatalf("err = %v", err)
		}
		if el := time.Since(start); el < 20*time.Millisecond || el > 21*time.Millisecond {
			t.Fatalf("took %v, want 20 ms", el)
		}
		m.SetFault(doe.Fault{Latency: 15 * time.Millisecond})
		mustEcho(t, mb, []byte("in time"))
	})
}

func TestCancelMidExchangeAborts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, mb, _ := newMailbox(t, nil)
		m.SetFault(doe.Fault{NeverReady: true})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := mb.Exchange(ctx, doe.FeatureCMA, []byte{1, 2, 3})
		if !errors.Is(err, context.Canceled) || errors.Is(err, doe.ErrTimeout) || !errors.Is(err, doe.ErrAborted) {
			t.Fatalf("err = %v, want cancellation, aborted", err)
		}
		if s := m.Stats(); s.Aborts != 1 || s.Objects != 1 {
			t.Fatalf("model %+v: want the object taken and one abort", s)
		}
		m.SetFault(doe.Fault{})
		mustEcho(t, mb, []byte{9})
	})
}

func TestExplicitAbort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, mb, _ := newMailbox(t, nil)
		if err := mb.Abort(context.Background()); err != nil {
			t.Fatal(err)
		}
		m.SetFault(doe.Fault{StuckBusy: true})
		if err := mb.Abort(context.Background()); !errors.Is(err, doe.ErrMailboxBusy) {
			t.Fatalf("Abort on stuck busy = %v", err)
		}
		if m.Stats().Aborts != 2 {
			t.Fatal("abort not written")
		}
	})
}

// TestConcurrentExchangesDoNotInterleave: many goroutines share a mailbox;
// every response must answer its own request.
func TestConcurrentExchangesDoNotInterleave(t *testing.T) {
	_, mb, _ := newMailbox(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				req := []byte(fmt.Sprintf("goroutine %d request %d %s", g, i, bytes.Repeat([]byte{byte(g)}, g*9)))
				rsp, err := mb.Exchange(context.Background(), doe.FeatureCMA, req)
				if err != nil || !bytes.Equal(rsp, reversed(pad(req))) {
					errs <- fmt.Errorf("g%d i%d: %x %v", g, i, rsp, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// rawDiscovery is a model whose discovery answers come from script.
func rawDiscovery(script func(idx uint8) []byte) *doe.Mailbox {
	m := doe.NewModel(nil, func(f doe.Feature, req []byte) ([]byte, error) {
		if f != doe.FeatureDiscovery || len(req) != 4 {
			return nil, errors.New("bad request")
		}
		return script(req[0]), nil
	})
	m.SetRawDiscovery(true)
	return doe.New(doetest.NewConfig(m), 0x100, nil)
}

func entry(v uint16, typ, next uint8) []byte {
	return binary.LittleEndian.AppendUint32(nil, uint32(v)|uint32(typ)<<16|uint32(next)<<24)
}

func TestDiscoverHostile(t *testing.T) {
	ctx := context.Background()
	loop := rawDiscovery(func(idx uint8) []byte { return entry(1, idx, 1) }) // 0 → 1 → 1

	if _, err := loop.Discover(ctx); !protoField("Next Index")(err) {
		t.Errorf("self loop: %v", err)
	}
	cycle := rawDiscovery(func(idx uint8) []byte { return entry(1, idx, max(2, (idx+1)%5)) }) // 0..4 then back to 2
	if fs, err := cycle.Discover(ctx); err == nil {
		t.Errorf("cycle accepted: %v", fs)
	}
	long := rawDiscovery(func(idx uint8) []byte { return entry(1, idx, idx+1) }) // 255 → 0 ends it
	if fs, err := long.Discover(ctx); err != nil || len(fs) != 256 {
		t.Errorf("256-entry list: %d features, %v", len(fs), err)
	}
	empty := rawDiscovery(func(uint8) []byte { return nil })
	if _, err := empty.Discover(ctx); !protoField("discovery response")(err) {
		t.Errorf("empty response: %v", err)
	}
	big := rawDiscovery(func(uint8) []byte { return make([]byte, 12) })
	if _, err := big.Discover(ctx); !protoField("discovery response")(err) {
		t.Errorf("12-byte response: %v", err)
	}
	// QEMU answers an index past the end with 0xFFFF/0xFF: the list ends.
	qemu := rawDiscovery(func(idx uint8) []byte {
		if idx == 0 {
			return entry(1, 0, 7)
		}
		return entry(0xffff, 0xff, 0)
	})
	if fs, err := qemu.Discover(ctx); err != nil || !slices.Equal(fs, []doe.Feature{doe.FeatureDiscovery}) {
		t.Errorf("out-of-range next: %v, %v", fs, err)
	}
	dup := rawDiscovery(func(idx uint8) []byte { return entry(1, 1, (idx+1)%3) })
	if fs, err := dup.Discover(ctx); err != nil || !slices.Equal(fs, []doe.Feature{doe.FeatureCMA}) {
		t.Errorf("duplicates: %v, %v", fs, err)
	}
	v2 := rawDiscovery(func(uint8) []byte { return append(entry(1, 0, 0), 0, 1, 0, 0) })
	if fs, err := v2.Discover(ctx); err != nil || len(fs) != 1 {
		t.Errorf("discovery v2 extra DW: %v, %v", fs, err)
	}
	if len(loop.Features()) != 0 {
		t.Error("a failed discovery cached features")
	}
}

func TestStaleStateOnEntryIsAborted(t *testing.T) {
	m, mb, _ := newMailbox(t, nil)
	// Someone left a response unread: DOR set on entry.
	obj, _ := doe.EncodeObject(doe.FeatureCMA, []byte("stale"))
	for i := 0; i < len(obj); i += 4 {
		m.WriteReg(doe.RegWrite, binary.LittleEndian.Uint32(obj[i:]))
	}
	m.WriteReg(doe.RegCtrl, doe.CtrlGo)
	if m.ReadReg(doe.RegStatus)&doe.StatusDOR == 0 {
		t.Fatal("setup: no stale response")
	}
	mustEcho(t, mb, []byte("fresh"))
	// Someone left the Error bit set.
	m.WriteReg(doe.RegRead, 0)
	for m.ReadReg(doe.RegStatus)&doe.StatusErr == 0 {
		m.WriteReg(doe.RegRead, 0)
	}
	mustEcho(t, mb, []byte("fresh again"))
	if s := mb.Stats(); s.Aborts != 2 || s.Failures != 0 {
		t.Fatalf("stats %+v, want 2 aborts and no failure", s)
	}
}

func TestBusyOnEntryIsLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	m := doe.NewModel([]doe.Feature{doe.FeatureCMA}, echo)
	mb := doe.New(doetest.NewConfig(m), 0x100, &doe.Options{Logger: log})
	m.SetFault(doe.Fault{BusyUntilAbort: true})
	mustEcho(t, mb, []byte{1})
	if !strings.Contains(buf.String(), "busy on entry") || !strings.Contains(buf.String(), "doe_offset=0x100") {
		t.Fatalf("log = %q", buf.String())
	}
}

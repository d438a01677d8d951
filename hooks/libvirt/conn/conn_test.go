package conn

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

// TestRealLibvirtdTestDriver talks to a real libvirtd, through go-libvirt, with
// libvirt's built-in test driver (a real daemon, a fake hypervisor).
func TestRealLibvirtdTestDriver(t *testing.T) {
	testutil.StartLibvirtd(t)
	c, err := Dial("test:///default", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	names, err := c.Domains()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "test") {
		t.Fatalf("test driver domains = %v, want the built-in \"test\"", names)
	}
	x, err := c.DomainXML("test")
	if err != nil || !strings.Contains(x, "<name>test</name>") {
		t.Fatalf("xml %q err %v", x, err)
	}
	if run, err := c.RunningDomains(); err != nil || !slices.Contains(run, "test") {
		t.Fatalf("running domains = %v, %v; want the built-in \"test\"", run, err)
	}
	if mode, err := c.NetworkForwardMode("default"); err != nil || mode != "nat" {
		t.Fatalf("test driver network default: forward mode %q, %v; want nat", mode, err)
	}
	if _, err := c.DomainXML("no-such-domain"); err == nil {
		t.Fatal("lookup of a missing domain succeeded")
	}
}

// TestWatcherSeesLifecycle destroys the test driver's running domain and
// checks the watcher reports it stopped. The test driver keeps its state per
// connection, so the destroy goes through the watcher's own connection.
func TestWatcherSeesLifecycle(t *testing.T) {
	testutil.StartLibvirtd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events := make(chan Event, 16)
	destroyed := make(chan struct{})
	w := &Watcher{URI: "test:///default", Socket: "",
		OnReconnect: func(ctx context.Context, c *Conn) {
			go func() {
				// The destroy call must return before the watcher's
				// connection is closed (the test cancels after the event).
				defer close(destroyed)
				time.Sleep(300 * time.Millisecond)
				d, err := c.l.DomainLookupByName("test")
				if err != nil {
					t.Errorf("lookup: %v", err)
					return
				}
				if err := c.l.DomainDestroy(d); err != nil {
					t.Errorf("destroy: %v", err)
				}
			}()
		},
		OnEvent: func(_ context.Context, e Event) { events <- e },
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case e := <-events:
		if e.Domain != "test" || e.Kind != "stopped" {
			t.Fatalf("event %+v, want test stopped", e)
		}
	case <-ctx.Done():
		t.Fatal("no lifecycle event within 20 s")
	}
	<-destroyed
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestWatcherReconnects restarts a real libvirtd under the watcher: it
// reconnects on its own and lifecycle events flow again on the new
// connection (the test driver's "test" domain is destroyed through it and
// seen stopped).
func TestWatcherReconnects(t *testing.T) {
	if !testutil.StartLibvirtd(t) {
		t.Skip("libvirtd was already running: this test restarts only a libvirtd it started")
	}
	// The whole test may take long on a loaded machine (stopping libvirtd
	// alone may take up to 30 s); each wait below has its own 60 s.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conns := make(chan *Conn, 4)
	events := make(chan Event, 16)
	w := &Watcher{URI: "test:///default", MaxBackoff: 500 * time.Millisecond,
		OnReconnect: func(_ context.Context, c *Conn) { conns <- c },
		OnEvent:     func(_ context.Context, e Event) { events <- e }}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-conns:
	case <-time.After(60 * time.Second):
		t.Fatal("no first connection within 60 s")
	}
	testutil.RestartLibvirtd(t)
	var c *Conn
	select {
	case c = <-conns:
	case <-time.After(60 * time.Second):
		t.Fatal("the watcher did not reconnect within 60 s of libvirtd's restart")
	}
	d, err := c.l.DomainLookupByName("test")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.l.DomainDestroy(d); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Domain != "test" || e.Kind != "stopped" {
			t.Fatalf("event %+v, want test stopped", e)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no lifecycle event on the new connection within 60 s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

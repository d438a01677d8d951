package emu

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/doe/socket"
	"github.com/vfio-gate/vfio-gate/spdm"
)

func transports() map[string]transportFunc {
	return map[string]transportFunc{"doe": overDOE, "socket": overSocket}
}

// overSocket serves d over spdm-socket on a loopback port and dials it;
// the cleanup sends SHUTDOWN, stops the server and waits for it.
func overSocket(t testing.TB, d *Device) (spdm.Transport, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- socket.Serve(ctx, ln, d.Features(), d.Handler()) }()
	c, err := socket.Dial(ctx, ln.Addr().String())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	fs, err := doe.Discover(ctx, c)
	if err != nil || len(fs) != 3 || fs[1] != doe.FeatureCMA || fs[2] != doe.FeatureSecuredCMA {
		t.Fatalf("socket discovery: %v %v", fs, err)
	}
	return c.Exchanger(doe.FeatureCMA), func() {
		if err := c.Close(); err != nil {
			t.Errorf("SHUTDOWN: %v", err)
		}
		cancel()
		if err := <-served; !errors.Is(err, context.Canceled) {
			t.Errorf("server: %v", err)
		}
	}
}

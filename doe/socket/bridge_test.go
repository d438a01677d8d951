package socket

import (
	"bytes"
	"context"
	"net"
	"slices"
	"testing"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/internal/testutil/doetest"
)

// TestServeModelBehindSocket: a socket server whose handler forwards each
// object to a config-space mailbox on the register model (the shape of a
// software device exported to QEMU), driven by the socket client.
func TestServeModelBehindSocket(t *testing.T) {
	model := doe.NewModel([]doe.Feature{doe.FeatureCMA}, echo)
	mbs, err := doe.Find(doetest.NewConfig(model), nil)
	if err != nil {
		t.Fatal(err)
	}
	mb := mbs[0]
	feats, err := mb.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, feats, func(f doe.Feature, req []byte) ([]byte, error) {
			return mb.Exchange(ctx, f, req)
		})
	}()
	defer func() { cancel(); <-done }()

	c, err := Dial(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := doe.Discover(context.Background(), c)
	if err != nil || !slices.Equal(got, feats) {
		t.Fatalf("Discover over socket = %v, %v; mailbox said %v", got, err, feats)
	}
	rsp, err := c.Exchange(context.Background(), doe.FeatureCMA, []byte("spdm"))
	if err != nil || !bytes.Equal(rsp, []byte("re:spdm\x00")) {
		t.Fatalf("%q %v", rsp, err)
	}
	if s := mb.Stats(); s.Exchanges != 3 { // 2 discovery + 1 CMA
		t.Fatalf("mailbox stats %+v", s)
	}
}

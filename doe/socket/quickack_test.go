package socket

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
)

// A peer that writes the 12-byte header and the payload with two write
// calls and leaves Nagle's algorithm on (as DMTF's spdm-emu and QEMU's
// spdm-socket do) holds the payload back until the header is ACKed. A
// reader that delays its ACK (Linux: 40 ms minimum) then stalls every
// exchange; TCP_QUICKACK re-armed before each read avoids it.

// splitWrite sends m as two writes: header, then payload.
func splitWrite(c net.Conn, m message) error {
	var h [headerSize]byte
	binary.BigEndian.PutUint32(h[0:], uint32(m.cmd))
	binary.BigEndian.PutUint32(h[4:], uint32(m.transport))
	binary.BigEndian.PutUint32(h[8:], uint32(len(m.payload)))
	if _, err := c.Write(h[:]); err != nil {
		return err
	}
	if len(m.payload) == 0 {
		return nil
	}
	_, err := c.Write(m.payload)
	return err
}

// nagle turns Nagle's algorithm back on (Go disables it by default).
func nagle(t testing.TB, c net.Conn) {
	t.Helper()
	if err := c.(*net.TCPConn).SetNoDelay(false); err != nil {
		t.Fatal(err)
	}
}

// startSplitServer runs a responder that answers every NORMAL object with
// the object echoed, in split writes with Nagle on.
func startSplitServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			nagle(t, c)
			for {
				m, err := readMessage(c, MaxMessage)
				if err != nil || m.cmd == CommandShutdown {
					c.Close()
					break
				}
				if err := splitWrite(c, m); err != nil {
					c.Close()
					break
				}
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// exchangeTimes runs n exchanges of size-byte requests and returns their
// durations, sorted.
func exchangeTimes(t testing.TB, x *doe.Exchanger, n, size int) []time.Duration {
	t.Helper()
	req := bytes.Repeat([]byte{0xA5}, size)
	out := make([]time.Duration, n)
	for i := range out {
		start := time.Now()
		rsp, err := x.Exchange(context.Background(), req)
		out[i] = time.Since(start)
		if err != nil || !bytes.Contains(rsp, req) {
			t.Fatalf("exchange %d: %v", i, err)
		}
	}
	slices.Sort(out)
	return out
}

// maxMedian is the per-exchange bound on loopback: far below the 40 ms a
// delayed ACK costs, with room for a loaded CI machine.
const maxMedian = 10 * time.Millisecond

// TestClientQuickAckSplitWriter: the client reads a split-writing peer's
// responses without waiting for a delayed ACK.
func TestClientQuickAckSplitWriter(t *testing.T) {
	c, err := Dial(context.Background(), startSplitServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := exchangeTimes(t, c.Exchanger(doe.FeatureCMA), 21, 200)
	if med := d[len(d)/2]; med > maxMedian {
		t.Fatalf("median exchange %v over %v (delayed ACK?); all: %v", med, maxMedian, d)
	}
}

// splitClient is a requester that writes its requests split, Nagle on.
type splitClient struct{ c net.Conn }

func (s splitClient) Exchange(_ context.Context, f doe.Feature, req []byte) ([]byte, error) {
	obj, err := doe.EncodeObject(f, req)
	if err != nil {
		return nil, err
	}
	if err := splitWrite(s.c, message{cmd: CommandNormal, transport: TransportPCIDOE, payload: obj}); err != nil {
		return nil, err
	}
	m, err := readMessage(s.c, MaxMessage)
	if err != nil {
		return nil, err
	}
	_, p, err := doe.DecodeObject(m.payload, 0)
	return p, err
}

func dialSplitClient(t testing.TB, addr string) splitClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nagle(t, c)
	t.Cleanup(func() { c.Close() })
	return splitClient{c}
}

// TestServerQuickAckSplitWriter: the server reads a split-writing client's
// requests (QEMU writes header and payload separately) without waiting for
// a delayed ACK.
func TestServerQuickAckSplitWriter(t *testing.T) {
	addr, _, _ := startServer(t)
	x := doe.NewExchanger(dialSplitClient(t, addr), doe.FeatureCMA)
	d := exchangeTimes(t, x, 21, 200)
	if med := d[len(d)/2]; med > maxMedian {
		t.Fatalf("median exchange %v over %v (delayed ACK?); all: %v", med, maxMedian, d)
	}
}

// BenchmarkClientSplitWriter is one exchange (200-byte request and
// response) against a peer that splits its writes, on loopback.
func BenchmarkClientSplitWriter(b *testing.B) {
	c, err := Dial(context.Background(), startSplitServer(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	x := c.Exchanger(doe.FeatureCMA)
	req := bytes.Repeat([]byte{0xA5}, 200)
	for b.Loop() {
		if _, err := x.Exchange(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerSplitWriter is one exchange of a split-writing client with
// Server, on loopback.
func BenchmarkServerSplitWriter(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = Serve(ctx, ln, []doe.Feature{doe.FeatureCMA}, echo) }()
	defer func() { cancel(); <-done }()
	x := doe.NewExchanger(dialSplitClient(b, ln.Addr().String()), doe.FeatureCMA)
	req := bytes.Repeat([]byte{0xA5}, 200)
	for b.Loop() {
		if _, err := x.Exchange(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

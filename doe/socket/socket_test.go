package socket

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
)

func echo(f doe.Feature, req []byte) ([]byte, error) {
	if f != doe.FeatureCMA {
		return nil, errors.New("unsupported")
	}
	return append([]byte("re:"), req...), nil
}

func pad(b []byte) []byte { return append(bytes.Clone(b), make([]byte, (4-len(b)%4)%4)...) }

// startServer runs Serve on a loopback port until the test ends.
func startServer(t *testing.T) (addr string, done <-chan error, cancel func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ch <- Serve(ctx, ln, []doe.Feature{doe.FeatureCMA, doe.FeatureSecuredCMA}, echo)
	}()
	t.Cleanup(func() { cancel(); <-finished })
	return ln.Addr().String(), ch, cancel
}

func TestRoundTripAndShutdown(t *testing.T) {
	addr, done, cancel := startServer(t)
	ctx := context.Background()
	for round := range 2 { // SHUTDOWN ends the connection, not the server
		c, err := Dial(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := doe.Discover(ctx, c)
		want := []doe.Feature{doe.FeatureDiscovery, doe.FeatureCMA, doe.FeatureSecuredCMA}
		if err != nil || !slices.Equal(fs, want) {
			t.Fatalf("round %d: Discover = %v, %v", round, fs, err)
		}
		x := c.Exchanger(doe.FeatureCMA)
		for _, n := range []int{0, 1, 5, 4096, 100000} {
			req := bytes.Repeat([]byte{byte(n)}, n)
			rsp, err := x.Exchange(ctx, req)
			if err != nil || !bytes.Equal(rsp, pad(append([]byte("re:"), pad(req)...))) {
				t.Fatalf("round %d: %d bytes: %d-byte response, %v", round, n, len(rsp), err)
			}
		}
		// A handler error drops the request: empty reply, protocol error.
		_, err = c.Exchange(ctx, doe.FeatureCXLCDAT, []byte{1})
		var pe *doe.ProtocolError
		if !errors.As(err, &pe) || pe.Field != "PayloadSize" {
			t.Fatalf("dropped request: %v", err)
		}
		if _, err := c.Exchange(ctx, doe.FeatureCMA, nil); err == nil {
			t.Fatal("conn usable after a protocol error")
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

// rawClient speaks raw bytes to the server.
func rawClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func hdr(cmd Command, tr Transport, n uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(cmd))
	b = binary.BigEndian.AppendUint32(b, uint32(tr))
	return binary.BigEndian.AppendUint32(b, n)
}

func TestServerHostileClients(t *testing.T) {
	addr, _, _ := startServer(t)
	ctx := context.Background()

	// Oversize announcement: dropped without reading 4 GiB.
	c := rawClient(t, addr)
	c.Write(hdr(CommandNormal, TransportPCIDOE, 0xFFFFFFFF))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("server answered an oversize message (%d bytes)", n)
	}

	// Truncated header, then EOF.
	c = rawClient(t, addr)
	c.Write([]byte{0, 0, 0})
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}

	// Malformed DOE object (Length says 5 DW, 3 sent): empty NORMAL reply,
	// and the connection goes on.
	c = rawClient(t, addr)
	bad := []byte{1, 0, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0}
	c.Write(append(hdr(CommandNormal, TransportPCIDOE, uint32(len(bad))), bad...))
	m, err := readMessage(c, 64)
	if err != nil || m.cmd != CommandNormal || len(m.payload) != 0 {
		t.Fatalf("reply to a malformed object: %+v %v", m, err)
	}
	// Unknown command: UNKNOWN reply.
	c.Write(hdr(0xDEAD, TransportPCIDOE, 0))
	if m, err := readMessage(c, 64); err != nil || m.cmd != CommandUnknown {
		t.Fatalf("reply to an unknown command: %+v %v", m, err)
	}
	// Wrong transport: empty reply.
	c.Write(append(hdr(CommandNormal, 1, 4), 1, 2, 3, 4))
	if m, err := readMessage(c, 64); err != nil || len(m.payload) != 0 {
		t.Fatalf("reply to MCTP transport: %+v %v", m, err)
	}
	// Still a good exchange on the same connection, then SHUTDOWN is echoed.
	good, _ := doe.EncodeObject(doe.FeatureCMA, []byte("ok"))
	c.Write(append(hdr(CommandNormal, TransportPCIDOE, uint32(len(good))), good...))
	if m, err := readMessage(c, 64); err != nil || len(m.payload) != 16 {
		t.Fatalf("good exchange: %+v %v", m, err)
	}
	c.Write(hdr(CommandShutdown, TransportPCIDOE, 0))
	if m, err := readMessage(c, 64); err != nil || m.cmd != CommandShutdown {
		t.Fatalf("SHUTDOWN echo: %+v %v", m, err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("connection not closed after SHUTDOWN: %v", err)
	}

	// The server still serves.
	cl, err := Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if rsp, err := cl.Exchange(ctx, doe.FeatureCMA, []byte("x")); err != nil || !bytes.HasPrefix(rsp, []byte("re:x")) {
		t.Fatalf("after hostile clients: %q %v", rsp, err)
	}
}

// fakeServer answers the first request on a pipe with reply, then keeps
// the pipe open until the test ends.
func fakeServer(t *testing.T, reply []byte) *Conn {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	go func() {
		if _, err := readMessage(b, MaxMessage); err != nil {
			return
		}
		b.Write(reply)
	}()
	return NewConn(a)
}

func TestClientHostileServer(t *testing.T) {
	obj := func(f doe.Feature, p []byte) []byte { o, _ := doe.EncodeObject(f, p); return o }
	msg := func(cmd Command, tr Transport, p []byte) []byte { return append(hdr(cmd, tr, uint32(len(p))), p...) }
	good := obj(doe.FeatureCMA, []byte{1, 2, 3, 4})
	lengthLie := bytes.Clone(good)
	lengthLie[4] = 9
	cases := map[string]struct {
		reply []byte
		field string // ProtocolError field, or "" for an I/O error
	}{
		"wrong command":     {msg(CommandUnknown, TransportPCIDOE, good), "socket header"},
		"wrong transport":   {msg(CommandNormal, 1, good), "socket header"},
		"oversize":          {hdr(CommandNormal, TransportPCIDOE, 0x7FFFFFFF), "PayloadSize"},
		"empty":             {msg(CommandNormal, TransportPCIDOE, nil), "PayloadSize"},
		"wrong feature":     {msg(CommandNormal, TransportPCIDOE, obj(doe.FeatureSecuredCMA, []byte{1})), "header"},
		"length lie":        {msg(CommandNormal, TransportPCIDOE, lengthLie), "Length"},
		"short object":      {msg(CommandNormal, TransportPCIDOE, []byte{1, 0, 1}), "header"},
		"unaligned object":  {msg(CommandNormal, TransportPCIDOE, append(bytes.Clone(good), 0)), "Length"},
		"truncated message": {hdr(CommandNormal, TransportPCIDOE, 64)[:10], ""},
		"truncated payload": {append(hdr(CommandNormal, TransportPCIDOE, 64), good...), ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := fakeServer(t, tc.reply)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			rsp, err := c.Exchange(ctx, doe.FeatureCMA, []byte{1, 2, 3, 4})
			if err == nil || rsp != nil {
				t.Fatalf("accepted %x", rsp)
			}
			var pe *doe.ProtocolError
			if tc.field != "" && (!errors.As(err, &pe) || pe.Field != tc.field) {
				t.Fatalf("err = %v, want ProtocolError on %s", err, tc.field)
			}
			if _, err2 := c.Exchange(context.Background(), doe.FeatureCMA, nil); err2 == nil {
				t.Fatal("conn usable after a failed exchange")
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		c := fakeServer(t, msg(CommandNormal, TransportPCIDOE, good))
		rsp, err := c.Exchange(context.Background(), doe.FeatureCMA, []byte{9})
		if err != nil || !bytes.Equal(rsp, []byte{1, 2, 3, 4}) {
			t.Fatalf("%x %v", rsp, err)
		}
	})
}

func TestClientDeadlineAndCancel(t *testing.T) {
	c := fakeServer(t, nil) // never answers
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Exchange(ctx, doe.FeatureCMA, []byte{1})
	if !errors.Is(err, doe.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v", el)
	}

	c = fakeServer(t, nil)
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	_, err = c.Exchange(ctx, doe.FeatureCMA, []byte{1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzReadMessage(f *testing.F) {
	good, _ := doe.EncodeObject(doe.FeatureCMA, []byte{0x12, 0x84, 0, 0})
	f.Add(append(hdr(CommandNormal, TransportPCIDOE, uint32(len(good))), good...))
	f.Add(hdr(CommandShutdown, TransportPCIDOE, 0))
	f.Add(hdr(CommandNormal, TransportPCIDOE, 0xFFFFFFFF))
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readMessage(bytes.NewReader(b), 1<<16)
		if err != nil {
			if m.payload != nil {
				t.Fatal("payload with error")
			}
			return
		}
		if m.payload == nil {
			t.Fatal("nil payload without error")
		}
		var enc bytes.Buffer
		if err := writeMessage(&enc, m); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc.Bytes(), b[:enc.Len()]) {
			t.Fatalf("round trip: %x vs %x", enc.Bytes(), b)
		}
		for k := range enc.Len() {
			if _, err := readMessage(bytes.NewReader(enc.Bytes()[:k]), 1<<16); err == nil {
				t.Fatalf("proper prefix of %d bytes decoded", k)
			}
		}
	})
}

// FuzzClientResponse: whatever the server sends, the client never panics,
// returns a response iff no error, and a response is a checked payload.
func FuzzClientResponse(f *testing.F) {
	good, _ := doe.EncodeObject(doe.FeatureCMA, []byte{1, 2, 3, 4})
	f.Add(append(hdr(CommandNormal, TransportPCIDOE, uint32(len(good))), good...))
	f.Add(hdr(CommandNormal, TransportPCIDOE, 0))
	f.Add(append(hdr(CommandNormal, TransportPCIDOE, 8), 1, 0, 1, 0, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, reply []byte) {
		c := fakeServer(t, reply)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		rsp, err := c.Exchange(ctx, doe.FeatureCMA, []byte{1})
		if (err == nil) != (rsp != nil) {
			t.Fatalf("rsp %x err %v", rsp, err)
		}
		if err == nil {
			want := reply[headerSize+doe.HeaderSize:]
			if len(rsp)%4 != 0 || !bytes.HasPrefix(want, rsp) {
				t.Fatalf("response %x from reply %x", rsp, reply)
			}
		}
	})
}

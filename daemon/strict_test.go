package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRequestJSONIsStrict posts bodies encoding/json alone accepts; each
// must be refused 400 before the backend sees it.
func TestRequestJSONIsStrict(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the daemon answers only root peers") // TestAPIRoundTrip covers the non-root refusal
	}
	fb := &fakeBackend{}
	sock := startServer(t, fb)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	post := func(path, body string) (int, string) {
		t.Helper()
		resp, err := hc.Post("http://x"+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const bdfs = `"bdfs":["0000:3b:00.0"]`
	if code, body := post(PathCheck, `{"domain":"vm1",`+bdfs+`}`); code != 200 {
		t.Fatalf("valid request: %d %s", code, body)
	}
	for _, c := range []struct{ path, body, want string }{
		{PathCheck, `{` + bdfs + `}{"domain":"other"}`, "trailing data"},
		{PathCheck, `{` + bdfs + `} x`, "request body"},
		{PathCheck, `{` + bdfs + `}]`, "request body"},
		{PathCheck, `{"domain":"a","domain":"b",` + bdfs + `}`, `domain\" given twice`},
		{PathCheck, `{"domain":"a",` + bdfs + `,` + bdfs + `}`, `bdfs\" given twice`},
		{PathCheck, `{"DOMAIN":"a",` + bdfs + `}`, "case-sensitive"},
		{PathCheck, `{"domain":"a","Domain":"b",` + bdfs + `}`, "case-sensitive"},
		{PathCheck, `{"bdf\u017f":["0000:3b:00.0"]}`, "case-sensitive"}, // long s folds to s in encoding/json
		{PathCheck, `{"Confidential":true,` + bdfs + `}`, "case-sensitive"},
		{PathCheck, `null`, "one JSON object"},
		{PathCheck, `[` + bdfs + `]`, "one JSON object"},
		{PathRelease, `{"domain":"vm1"}{}`, "trailing data"},
		{PathRelease, `{"Domain":"vm1"}`, "case-sensitive"},
		{PathTDISPLock, `{"bdf":"0000:3b:00.0","BDF":"0000:3c:00.0"}`, "case-sensitive"},
	} {
		fb.lastCheck = CheckRequest{}
		code, body := post(c.path, c.body)
		if code != 400 || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %s, want 400 with %q", c.path, c.body, code, strings.TrimSpace(body), c.want)
		}
		if fb.lastCheck.Domain != "" || len(fb.lastCheck.BDFs) != 0 {
			t.Errorf("%s: the backend was called with %+v", c.body, fb.lastCheck)
		}
	}
	if len(fb.released) != 0 {
		t.Errorf("release reached the backend: %+v", fb.released)
	}
}

func TestCheckStrictJSONNames(t *testing.T) {
	// pci.BDF is a struct decoded from a string: its Go field names are not
	// member names of the request.
	if err := checkStrictJSON([]byte(`{"Domain":"x","bdf":"0000:00:00.0"}`), &TDIRequest{}); err == nil {
		t.Fatal(`"Domain" accepted for TDIRequest`)
	}
	if err := checkStrictJSON([]byte(`{"domain":"x","bdf":"0000:00:00.0"}`), &TDIRequest{}); err != nil {
		t.Fatal(err)
	}
	deep := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	if err := checkStrictJSON([]byte(`{"bdfs":`+deep+`}`), &CheckRequest{}); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Fatalf("deep nesting: %v", err)
	}
}

func FuzzCheckStrictJSON(f *testing.F) {
	for _, s := range []string{`{"domain":"a","bdfs":["0000:3b:00.0"]}`, `{"domain":"a"}{}`, `{"DOMAIN":1}`, `{"bdfs":[[[]]]}`, `null`, `{"a":{"b":[1,{"c":2}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req CheckRequest
		if checkStrictJSON(b, &req) != nil {
			return
		}
		// What the pre-pass lets through is one well-formed JSON value.
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
	})
}

// TestServerDropsSilentConnections: a client that never finishes its
// request headers is disconnected after ReadHeaderTimeout.
func TestServerDropsSilentConnections(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, &fakeBackend{}, ServerOptions{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	}()
	defer func() { cancel(); <-done }()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = bufio.NewReader(c).ReadString('\n')
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v with half a request", time.Since(start))
	}
	// The server closes it (a 408 may precede the close, depending on the Go version).
}

func TestListenKeepsARegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ln, err := Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
		t.Fatalf("file after Listen: %q %v", b, err)
	}
}

package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
)

// ErrNotRunning is returned when nothing answers on the daemon socket.
var ErrNotRunning = errors.New("vfio-gate daemon is not running (systemctl start vfio-gate)")

// Client talks to the daemon over its unix socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the daemon at socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vfio-gate"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (no answer on %s)", ErrNotRunning, c.socket)
		}
		return fmt.Errorf("vfio-gate daemon at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(b, ae) != nil || ae.Code == "" {
			ae.Code, ae.Message = "internal", fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, b)
		}
		return ae
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Check asks for decisions.
func (c *Client) Check(ctx context.Context, req CheckRequest) (*CheckResponse, error) {
	var r CheckResponse
	return &r, c.do(ctx, "POST", PathCheck, req, &r)
}

// Bind asks for decisions and binds allowed groups.
func (c *Client) Bind(ctx context.Context, req CheckRequest) (*CheckResponse, error) {
	var r CheckResponse
	return &r, c.do(ctx, "POST", PathBind, req, &r)
}

// Release releases a domain's functions.
func (c *Client) Release(ctx context.Context, req DomainRequest) error {
	return c.do(ctx, "POST", PathRelease, req, nil)
}

// StartDomain starts the TDIs locked for a domain.
func (c *Client) StartDomain(ctx context.Context, req DomainRequest) error {
	return c.do(ctx, "POST", PathStart, req, nil)
}

// TDISP sends one TDISP request (lock, start, stop, state) by path.
func (c *Client) TDISP(ctx context.Context, path string, req TDIRequest) (*TDIStatus, error) {
	var r TDIStatus
	return &r, c.do(ctx, "POST", path, req, &r)
}

// Status fetches the daemon's state.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var r Status
	return &r, c.do(ctx, "GET", PathStatus, nil, &r)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

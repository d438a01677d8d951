package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// MaxRequestBody caps request bodies.
const MaxRequestBody = 1 << 20

// ServerOptions configure Serve.
type ServerOptions struct {
	// AllowUID lists the peer UIDs allowed besides root (uid 0). Empty: root only.
	AllowUID []uint32
	Logger   *slog.Logger
	// ReadHeaderTimeout bounds how long a connection may take to send its
	// request headers (default DefaultReadHeaderTimeout); IdleTimeout how
	// long a keep-alive connection may sit idle (default DefaultIdleTimeout).
	ReadHeaderTimeout, IdleTimeout time.Duration
	// Metrics, when set, is served on GET /metrics (Metrics.Handler).
	Metrics http.Handler
}

// Connection limits of the API server. A check may take minutes (many
// devices, slow mailboxes), so there is no write timeout; a client that
// opens a connection and never sends a request is dropped.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	MaxHeaderBytes           = 16 << 10
)

type peerKey struct{}

// Listen creates the unix socket at path with mode 0600 in a 0700 directory,
// replacing a stale socket but refusing to replace a live one.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("daemon: another daemon is already listening on %s", path)
	}
	// Only a stale socket is replaced: anything else at path (a file given
	// by mistake, a directory, a symlink) is the operator's and stays.
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("daemon: %s exists and is not a socket (%s): refusing to replace it; give --daemon-socket a free path", path, st.Mode().Type())
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("daemon: removing stale socket: %w", err)
		}
	}
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("daemon: listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return ln, nil
}

// Serve answers the API on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, b Backend, o ServerOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rht, idle := o.ReadHeaderTimeout, o.IdleTimeout
	if rht <= 0 {
		rht = DefaultReadHeaderTimeout
	}
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	srv := &http.Server{
		Handler:           handler(b, o, log),
		ReadHeaderTimeout: rht,
		IdleTimeout:       idle,
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if uc, ok := c.(*net.UnixConn); ok {
				if cred, err := peerCred(uc); err == nil {
					return context.WithValue(ctx, peerKey{}, cred)
				}
			}
			return ctx
		},
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5e9)
		defer cancel()
		return srv.Shutdown(shut)
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

func handler(b Backend, o ServerOptions, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	post := func(path string, fn func(ctx context.Context, body []byte) (any, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBody+1))
			if err != nil || len(body) > MaxRequestBody {
				writeErr(w, &APIError{Code: "bad-request", Message: "request body unreadable or larger than 1 MiB", Status: 400})
				return
			}
			v, err := fn(r.Context(), body)
			if err != nil {
				log.InfoContext(r.Context(), "request failed", "path", path, "err", err)
				writeErr(w, err)
				return
			}
			writeJSON(w, 200, v)
		})
	}
	post(PathCheck, func(ctx context.Context, body []byte) (any, error) {
		var req CheckRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return b.Check(ctx, req)
	})
	post(PathBind, func(ctx context.Context, body []byte) (any, error) {
		var req CheckRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return b.Bind(ctx, req)
	})
	post(PathRelease, func(ctx context.Context, body []byte) (any, error) {
		var req DomainRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return struct{}{}, b.Release(ctx, req)
	})
	post(PathStart, func(ctx context.Context, body []byte) (any, error) {
		var req DomainRequest
		if err := decode(body, &req); err != nil {
			return nil, err
		}
		return struct{}{}, b.StartDomain(ctx, req)
	})
	for path, fn := range map[string]func(context.Context, TDIRequest) (*TDIStatus, error){
		PathTDISPLock: b.TDISPLock, PathTDISPStart: b.TDISPStart, PathTDISPStop: b.TDISPStop, PathTDISPState: b.TDISPState,
	} {
		post(path, func(ctx context.Context, body []byte) (any, error) {
			var req TDIRequest
			if err := decode(body, &req); err != nil {
				return nil, err
			}
			return fn(ctx, req)
		})
	}
	mux.HandleFunc("GET "+PathStatus, func(w http.ResponseWriter, r *http.Request) {
		st, err := b.Status(r.Context())
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, 200, st)
	})
	if o.Metrics != nil {
		mux.Handle("GET "+PathMetrics, o.Metrics)
	}
	// Peer credentials gate every request.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, _ := r.Context().Value(peerKey{}).(*unix.Ucred)
		if !allowed(cred, o.AllowUID) {
			writeErr(w, &APIError{Code: "forbidden", Message: "only root may use the vfio-gate daemon", Status: 403})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func allowed(cred *unix.Ucred, uids []uint32) bool {
	if cred == nil {
		return false // not a unix socket peer we can identify: refuse
	}
	if cred.Uid == 0 {
		return true
	}
	for _, u := range uids {
		if cred.Uid == u {
			return true
		}
	}
	return false
}

// decode decodes one request object strictly: checkStrictJSON first (one
// object, no trailing data, no duplicate or case-folded member names), then
// encoding/json with unknown fields refused.
func decode(body []byte, v any) error {
	if err := checkStrictJSON(body, v); err != nil {
		return &APIError{Code: "bad-request", Message: err.Error(), Status: 400}
	}
	dec := json.NewDecoder(bytesReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &APIError{Code: "bad-request", Message: err.Error(), Status: 400}
	}
	return nil
}

// httpStatus is the HTTP status of each Error code; any other is 500.
var httpStatus = map[string]int{
	CodeBadRequest:       http.StatusBadRequest,
	CodeForbidden:        http.StatusForbidden,
	CodeNotHeld:          http.StatusNotFound,
	CodeNotChecked:       http.StatusConflict,
	CodeTDIHeld:          http.StatusConflict,
	CodeTDINotHeld:       http.StatusConflict,
	CodeInternal:         http.StatusInternalServerError,
	CodeReleaseFailed:    http.StatusInternalServerError,
	CodeTDISPUnavailable: http.StatusNotImplemented,
	CodeTDISPFailed:      http.StatusBadGateway,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeStarting:         http.StatusServiceUnavailable,
}

// apiError is the answer to e: its code and message with the status the
// code has (httpStatus).
func (e *Error) apiError() *APIError {
	st, ok := httpStatus[e.Code]
	if !ok {
		st = http.StatusInternalServerError
	}
	return &APIError{Code: e.Code, Message: e.Message, Status: st}
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *APIError
	if !errors.As(err, &ae) {
		ae = &APIError{Code: "internal", Message: err.Error(), Status: 500}
	}
	if ae.Status == 0 {
		ae.Status = 500
	}
	writeJSON(w, ae.Status, ae)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

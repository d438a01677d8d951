package daemon

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

// errBackend answers StartDomain with a typed Error of its code.
type errBackend struct {
	fakeBackend
	code string
}

func (e *errBackend) StartDomain(context.Context, DomainRequest) error {
	return fmt.Errorf("wrapped: %w", errorf(e.code, "refused %s", e.code))
}

// TestErrorStatus: the backend's typed errors carry no HTTP status; the
// server gives each code its status (and the client reads it back), an
// unknown code 500.
func TestErrorStatus(t *testing.T) {
	want := map[string]int{
		CodeBadRequest: 400, CodeNotHeld: 404, CodeNotChecked: 409, CodeTDIHeld: 409, CodeTDINotHeld: 409,
		CodeInternal: 500, CodeReleaseFailed: 500, CodeTDISPUnavailable: 501, CodeTDISPFailed: 502,
		CodeUnavailable: 503, CodeStarting: 503, "no-such-code": 500,
	}
	for code, status := range want {
		var ae *APIError
		if err := error(errorf(code, "x")); !errors.As(err, &ae) || ae.Status != status || ae.Code != code || ae.Message != "x" {
			t.Errorf("%s: as APIError %+v, want status %d", code, ae, status)
		}
	}
	testutil.Require(t, testutil.Root) // the server answers root peers only
	for _, code := range []string{CodeNotChecked, CodeTDISPUnavailable, "no-such-code"} {
		c := NewClient(startServer(t, &errBackend{code: code}))
		var ae *APIError
		err := c.StartDomain(t.Context(), DomainRequest{Domain: "vm1"})
		if !errors.As(err, &ae) || ae.Status != want[code] || ae.Code != code || ae.Message != "refused "+code {
			t.Errorf("%s over the socket: %v (%+v), want HTTP %d", code, err, ae, want[code])
		}
	}
}

// TestErrTDISPUnavailable: the sentinel matches what the TDISP endpoints
// return without a session owner, and nothing else.
func TestErrTDISPUnavailable(t *testing.T) {
	if err := fmt.Errorf("x: %w", tdispUnavailable("lock")); !errors.Is(err, ErrTDISPUnavailable) {
		t.Errorf("%v does not match ErrTDISPUnavailable", err)
	}
	if errors.Is(errorf(CodeTDISPFailed, "x"), ErrTDISPUnavailable) {
		t.Error("tdisp-failed matches ErrTDISPUnavailable")
	}
}

// TestTDISPSentinels: ErrTDISPFailed and ErrTDISPUnavailable match their
// codes only, on the backend's Error and on the client's APIError alike.
func TestTDISPSentinels(t *testing.T) {
	for _, c := range []struct {
		code            string
		failed, unavail bool
	}{{CodeTDISPFailed, true, false}, {CodeTDISPUnavailable, false, true}, {CodeNotHeld, false, false}, {CodeInternal, false, false}} {
		for _, err := range []error{errorf(c.code, "x"), fmt.Errorf("y: %w", &APIError{Code: c.code, Message: "x"})} {
			if errors.Is(err, ErrTDISPFailed) != c.failed || errors.Is(err, ErrTDISPUnavailable) != c.unavail {
				t.Errorf("%T %s: failed %v unavailable %v", err, c.code, errors.Is(err, ErrTDISPFailed), errors.Is(err, ErrTDISPUnavailable))
			}
		}
	}
}

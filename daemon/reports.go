package daemon

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// maxReports caps what Reports keeps.
const maxReports = 64

// Reports keeps what the daemon noticed and could not prevent (a TDI left
// locked by an earlier run, a lost TDISP session, a hot-plugged hostdev, a
// failed release): the last maxReports, for Status. Safe for concurrent
// use; it exists before the backend and the TDISP session owner, so that
// either may report from any goroutine.
type Reports struct {
	log   *slog.Logger
	now   func() time.Time
	mu    sync.Mutex
	items []Report
}

// NewReports returns an empty list that logs every Add at warn level on log
// (nil: nowhere) and stamps reports without a time with now (nil: time.Now).
func NewReports(log *slog.Logger, now func() time.Time) *Reports {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Reports{log: log, now: now}
}

// Add keeps r and logs it at warn level.
func (rs *Reports) Add(ctx context.Context, r Report) {
	rs.add(r)
	rs.log.WarnContext(ctx, r.Message, "kind", r.Kind, "domain", r.Domain, "bdf", r.BDF)
}

// add keeps r without logging it.
func (rs *Reports) add(r Report) {
	if r.Time.IsZero() {
		r.Time = rs.now().UTC()
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.items = append(rs.items, r)
	if n := len(rs.items); n > maxReports {
		rs.items = slices.Clone(rs.items[n-maxReports:])
	}
}

// List returns the reports kept, oldest first (never nil).
func (rs *Reports) List() []Report {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]Report{}, rs.items...)
}

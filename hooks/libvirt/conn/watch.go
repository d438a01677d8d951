package conn

import (
	"context"
	"log/slog"
	"time"
)

// Watcher follows domain lifecycle events and survives libvirtd restarts:
// when the connection drops it reconnects with backoff and calls OnReconnect,
// so the owner can reconcile what happened while it was away.
type Watcher struct {
	URI, Socket string
	// OnEvent is called for every lifecycle event, in order.
	OnEvent func(ctx context.Context, e Event)
	// OnReconnect is called after every successful (re)connection with the
	// connection, before events flow; use it to re-read running domains.
	OnReconnect func(ctx context.Context, c *Conn)
	Logger      *slog.Logger
	// MaxBackoff caps the reconnect delay (default 10 s).
	MaxBackoff time.Duration
}

// Run watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	log := w.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxB := w.MaxBackoff
	if maxB <= 0 {
		maxB = 10 * time.Second
	}
	backoff := 100 * time.Millisecond
	wait := func() bool { // false when ctx ended
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxB)
		return true
	}
	for ctx.Err() == nil {
		c, err := Dial(w.URI, w.Socket)
		if err != nil {
			log.InfoContext(ctx, "libvirtd unreachable; retrying", "err", err, "in", backoff)
			if !wait() {
				return nil
			}
			continue
		}
		if w.OnReconnect != nil {
			w.OnReconnect(ctx, c)
		}
		evs, err := c.Lifecycle(ctx)
		if err != nil {
			// A daemon still starting or going away: back off as for a
			// failed dial rather than reconnecting at once.
			log.WarnContext(ctx, "lifecycle subscription failed; retrying", "err", err, "in", backoff)
			c.Close()
			if !wait() {
				return nil
			}
			continue
		}
		backoff = 100 * time.Millisecond
		for e := range evs {
			if w.OnEvent != nil {
				w.OnEvent(ctx, e)
			}
		}
		c.Close()
		log.InfoContext(ctx, "libvirtd connection closed; reconnecting")
	}
	return nil
}

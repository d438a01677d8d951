package attest

import (
	"context"
	"fmt"

	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// session establishes the secure session for Options.Session/TDISP with
// the verified slot's key and records Evidence.Session. nil means it failed
// (recorded as FailSession).
func (r *run) session(ctx context.Context, req *spdm.Requester, sec spdm.Transport, slot uint8) *spdm.Session {
	ev := r.ev
	ev.Session = &Session{}
	if ev.Failure != nil {
		return nil // never key a session to an unverified chain
	}
	if sec == nil {
		r.fail("session", FailSession, "the mailbox offers no secured CMA-SPDM feature (DOE type 2)")
		return nil
	}
	var s *spdm.Session
	r.timed("session", func() bool {
		var err error
		s, err = req.KeyExchange(ctx, spdm.KeyExchangeOpts{Slot: slot, SecuredTransport: sec})
		if err != nil {
			return r.fail("session", FailSession, "secure session: %v", err)
		}
		return true
	})
	if s == nil {
		return nil
	}
	in := s.Info()
	*ev.Session = Session{Established: true, Version: fmt.Sprintf("%d.%d", in.SecuredVersion>>12, in.SecuredVersion>>8&0xF),
		AEAD: in.AEAD.String(), DHE: in.DHE.String(), SessionID: in.ID}
	return s
}

// tdisp reads the TDI's state (and report, when locked or running) inside
// the session into Evidence.TDISP. It never changes the TDI state.
func (r *run) tdisp(ctx context.Context, s *spdm.Session) bool {
	id, err := tdisp.InterfaceIDFor(r.tdi)
	if err != nil {
		return r.fail("tdisp", FailTDISP, "%v", err)
	}
	return r.timed("tdisp", func() bool {
		c := tdisp.NewClient(s, id, &tdisp.ClientOptions{Logger: r.log})
		vs, err := c.GetVersion(ctx)
		if err != nil {
			return r.fail("tdisp", FailTDISP, "%v", err)
		}
		r.ev.TDISP = &TDISP{Version: fmt.Sprintf("%d.%d", vs[len(vs)-1]>>4, vs[len(vs)-1]&0xF)}
		st, err := c.State(ctx)
		if err != nil {
			return r.fail("tdisp", FailTDISP, "%v", err)
		}
		r.ev.TDISP.State = st.String()
		if st == tdisp.StateConfigLocked || st == tdisp.StateRun {
			_, raw, err := c.Report(ctx)
			if err != nil {
				return r.fail("tdisp", FailTDISP, "%v", err)
			}
			r.ev.TDISP.Report = raw
		}
		return true
	})
}

package report

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// TDISPSession is the SPDM session a `tdisp` command ran in.
type TDISPSession struct {
	ID   uint32 `json:"session_id"`
	AEAD string `json:"aead"`
	DHE  string `json:"dhe"`
}

// TDISPSessionOf is the session's identifier and algorithms.
func TDISPSessionOf(in spdm.SessionInfo) TDISPSession {
	return TDISPSession{ID: in.ID, AEAD: in.AEAD.String(), DHE: in.DHE.String()}
}

// TDISPState is the body of the `tdisp-state` document.
type TDISPState struct {
	BDF       string            `json:"bdf"`
	Interface tdisp.InterfaceID `json:"interface_id"`
	State     tdisp.State       `json:"state"`
	Session   TDISPSession      `json:"session"`
}

// WriteTDISPState writes "NAME (interface ID): STATE".
func WriteTDISPState(w io.Writer, name string, iface tdisp.InterfaceID, st tdisp.State) error {
	_, err := fmt.Fprintf(w, "%s (interface %v): %v\n", name, iface, st)
	return err
}

// TDISPInterfaceReport is a parsed DEVICE_INTERFACE_REPORT as the
// `tdisp-report` and `tdisp-cycle` documents carry it (empty lists, never null).
type TDISPInterfaceReport struct {
	InterfaceInfo      tdisp.InterfaceInfo `json:"interface_info"`
	MMIORanges         []tdisp.MMIORange   `json:"mmio_ranges"`
	DeviceSpecificInfo tdisp.HexBytes      `json:"device_specific_info"`
}

// TDISPInterfaceReportOf is r in its document form; nil for nil.
func TDISPInterfaceReportOf(r *tdisp.InterfaceReport) *TDISPInterfaceReport {
	if r == nil {
		return nil
	}
	out := &TDISPInterfaceReport{InterfaceInfo: r.InterfaceInfo, MMIORanges: r.MMIORanges, DeviceSpecificInfo: r.DeviceSpecificInfo}
	if out.MMIORanges == nil {
		out.MMIORanges = []tdisp.MMIORange{}
	}
	if out.DeviceSpecificInfo == nil {
		out.DeviceSpecificInfo = tdisp.HexBytes{}
	}
	return out
}

// TDISPReport is the body of the `tdisp-report` document.
type TDISPReport struct {
	State  tdisp.State           `json:"state"`
	Report *TDISPInterfaceReport `json:"report"`
}

// WriteTDISPStateReport is the text of `tdisp report`: the TDI's state
// line (WriteTDISPState), then its interface report (WriteTDISPReport).
func WriteTDISPStateReport(w io.Writer, name string, iface tdisp.InterfaceID, st tdisp.State, r *tdisp.InterfaceReport) error {
	if err := WriteTDISPState(w, name, iface, st); err != nil {
		return err
	}
	return WriteTDISPReport(w, r)
}

// WriteTDISPReport writes the interface info, each MMIO range and the
// device-specific data of r.
func WriteTDISPReport(w io.Writer, r *tdisp.InterfaceReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "interface info\t%#04x\n", uint16(r.InterfaceInfo))
	for _, m := range r.MMIORanges {
		fmt.Fprintf(tw, "mmio range %d\tfirst page %#x, %d pages, attributes %#04x\n", m.RangeID, m.FirstPage, m.Pages, uint16(m.Attributes))
	}
	fmt.Fprintf(tw, "device specific info\t%q\n", string(r.DeviceSpecificInfo))
	return tw.Flush()
}

// TDISPCycleStep is one step of `tdisp cycle`.
type TDISPCycleStep struct {
	Request string      `json:"request"`
	OK      bool        `json:"ok"`
	State   tdisp.State `json:"state"`
	Error   *string     `json:"error"` // null when ok
}

// TDISPCycle is the body of the `tdisp-cycle` document.
type TDISPCycle struct {
	Steps      []TDISPCycleStep      `json:"steps"`
	Report     *TDISPInterfaceReport `json:"report"`
	FinalState tdisp.State           `json:"final_state"`
}

// TDISPCycleOf is r in its document form.
func TDISPCycleOf(r *tdisp.CycleResult) *TDISPCycle {
	out := &TDISPCycle{Steps: []TDISPCycleStep{}, Report: TDISPInterfaceReportOf(r.Report), FinalState: r.FinalState}
	for _, s := range r.Steps {
		step := TDISPCycleStep{Request: s.Request, OK: s.Err == nil, State: s.State}
		if s.Err != nil {
			msg := s.Err.Error()
			step.Error = &msg
		}
		out.Steps = append(out.Steps, step)
	}
	return out
}

// WriteTDISPCycle writes each step with its outcome and the state after
// it, the interface report (when one was read) and the final state.
func WriteTDISPCycle(w io.Writer, r *tdisp.CycleResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range r.Steps {
		ok := "ok"
		if s.Err != nil {
			ok = "FAILED: " + s.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\tstate %v\n", s.Request, ok, s.State)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Report != nil {
		if err := WriteTDISPReport(w, r.Report); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "final state: %v\n", r.FinalState)
	return err
}

// The `tdi` document is *daemon.TDIStatus itself: a TDI the daemon holds.

// WriteTDI writes what the daemon did to a TDI it holds (tdisp lock,
// start, stop): its state, owner and session, and the daemon's socket.
func WriteTDI(w io.Writer, st *daemon.TDIStatus, daemonSocket string) error {
	owner := ""
	if st.Domain != "" {
		owner = " for domain " + st.Domain
	}
	session := ""
	if st.SessionID != 0 {
		session = fmt.Sprintf(", session %#08x", st.SessionID)
	}
	_, err := fmt.Fprintf(w, "%s: TDI %s%s%s (held by the daemon at %s)\n", st.BDF, st.State, owner, session, daemonSocket)
	return err
}

// WriteTDIState writes the state of a TDI the daemon holds (tdisp state --daemon).
func WriteTDIState(w io.Writer, st *daemon.TDIStatus) error {
	_, err := fmt.Fprintf(w, "%s: %s (domain %s, session %#08x, held by the daemon)\n", st.BDF, st.State, dash(st.Domain), st.SessionID)
	return err
}

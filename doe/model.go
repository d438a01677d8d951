package doe

import (
	"sync"
	"time"
)

// Handler serves one request object of feature f on the device side and
// returns the response payload (padded to DW by the caller). An error makes
// the device set the Error bit (Model) or drop the request (socket server).
type Handler func(f Feature, req []byte) ([]byte, error)

// Fault selects misbehaviour of a Model, to test the requester against
// hostile or broken devices. The zero value is a correct device.
type Fault struct {
	// StuckBusy: Status.Busy is always set and Abort does not clear it.
	StuckBusy bool
	// BusyUntilAbort: Busy is set until the next Abort (an interrupted
	// other owner). Cleared by the abort.
	BusyUntilAbort bool
	// Error: every Go sets Status.Error instead of producing a response.
	Error bool
	// StickyError: Status.Error survives Abort.
	StickyError bool
	// NeverReady: Go is taken, Busy stays set, no response ever comes.
	NeverReady bool
	// Latency: Data Object Ready comes this long after Go (Busy meanwhile).
	Latency time.Duration
	// LengthDelta is added to the response header Length (the object
	// itself is unchanged): > 0 announces DW that never come, < 0 leaves DW
	// after the announced end.
	LengthDelta int
	// SetLength replaces the response header Length field by Length (0
	// means 2^18 DW: an oversize object).
	SetLength bool
	Length    uint32
	// WrongVendor / WrongType flip bits of the response header.
	WrongVendor, WrongType bool
	// Truncate drops the last Truncate DW of the response object.
	Truncate int
	// DropDORAfter > 0 clears Data Object Ready after that many DW have
	// been popped, in the middle of the object.
	DropDORAfter int
}

// ModelStats counts register accesses and objects seen by a Model.
type ModelStats struct {
	Reads, Writes uint64 // register accesses
	Objects       uint64 // requests answered (response produced or Error set)
	Discarded     uint64 // requests dropped: written DW count != header Length
	Aborts        uint64
	// Ready counts responses that became ready after a latency; Late sums
	// how long each waited, from ready to the first access that saw it
	// (the requester's polling delay).
	Ready uint64
	Late  time.Duration
}

// Model is a register-level DOE mailbox (PCIe r6.0 §6.30, §7.9.24 with the
// behaviour of SPEC-FACTS §1.5): requests written DW by DW to the Write
// Data Mailbox, served on Go by a Handler (discovery is answered from the
// feature list), responses read and popped DW by DW from the Read Data
// Mailbox. A request whose DW count differs from its header Length is
// silently discarded; reading Read Data without Data Object Ready returns
// 0; popping past the end sets Error; Abort clears everything. The handler
// runs synchronously on the Go write; Fault.Latency delays Data Object
// Ready (Busy meanwhile). Safe for concurrent use.
type Model struct {
	mu       sync.Mutex
	features []Feature
	handler  Handler
	raw      bool
	fault    Fault
	now      func() time.Time

	wbuf    []uint32
	rbuf    []uint32
	rpos    int
	popped  int
	dor     bool
	err     bool
	busy    bool // processing, until readyAt
	readyAt time.Time
	stats   ModelStats
}

// NewModel returns a mailbox serving features (Discovery is always index 0)
// with h. h may be nil for a discovery-only mailbox.
func NewModel(features []Feature, h Handler) *Model {
	return &Model{features: discoveryList(features), handler: h, now: time.Now}
}

// SetFault replaces the injected fault.
func (m *Model) SetFault(f Fault) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault = f
}

// SetRawDiscovery sends discovery requests to the handler instead of
// answering them from the feature list (to inject hostile discovery).
func (m *Model) SetRawDiscovery(raw bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.raw = raw
}

// Features returns the discovery list (Discovery first).
func (m *Model) Features() []Feature {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Feature(nil), m.features...)
}

// Stats returns the counters so far.
func (m *Model) Stats() ModelStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// tick moves a finished latency wait to Data Object Ready.
func (m *Model) tick() {
	if !m.busy || m.readyAt.IsZero() {
		return
	}
	if now := m.now(); !now.Before(m.readyAt) {
		m.stats.Ready++
		m.stats.Late += now.Sub(m.readyAt)
		m.busy, m.readyAt, m.dor = false, time.Time{}, len(m.rbuf) > 0
	}
}

// ReadReg reads the 32-bit register at reg, relative to the capability.
// Offset 0 returns the capability header with a zero Next pointer.
func (m *Model) ReadReg(reg uint16) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.Reads++
	m.tick()
	switch reg {
	case 0:
		return 0x2E | 1<<16
	case RegStatus:
		var st uint32
		if m.busy || m.fault.StuckBusy || m.fault.BusyUntilAbort {
			st |= StatusBusy
		}
		if m.err {
			st |= StatusErr
		}
		if m.dor {
			st |= StatusDOR
		}
		return st
	case RegRead:
		if !m.dor || m.rpos >= len(m.rbuf) {
			return 0
		}
		return m.rbuf[m.rpos]
	}
	return 0 // Capabilities (no interrupt), Control (Abort/Go read 0), Write
}

// WriteReg writes the 32-bit register at reg, relative to the capability.
func (m *Model) WriteReg(reg uint16, v uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.Writes++
	m.tick()
	switch reg {
	case RegCtrl:
		if v&CtrlAbort != 0 {
			m.abort()
			return
		}
		if v&CtrlGo != 0 {
			m.goReq()
		}
	case RegWrite:
		if m.busy || m.fault.StuckBusy {
			return
		}
		if len(m.wbuf) >= MaxObjectDW {
			m.err = true
			return
		}
		m.wbuf = append(m.wbuf, v)
	case RegRead:
		if !m.dor {
			m.err = true // pop with nothing to pop
			return
		}
		m.rpos++
		m.popped++
		if m.rpos >= len(m.rbuf) || (m.fault.DropDORAfter > 0 && m.popped >= m.fault.DropDORAfter) {
			m.dor = false
		}
	}
}

func (m *Model) abort() {
	m.stats.Aborts++
	m.wbuf, m.rbuf, m.rpos, m.popped = nil, nil, 0, 0
	m.dor, m.busy, m.readyAt = false, false, time.Time{}
	if !m.fault.StickyError {
		m.err = false
	}
	m.fault.BusyUntilAbort = false
}

// goReq serves the written request.
func (m *Model) goReq() {
	if m.busy || m.fault.StuckBusy || m.fault.BusyUntilAbort {
		return
	}
	w := m.wbuf
	m.wbuf = nil
	if len(w) < 2 {
		m.stats.Discarded++
		return
	}
	f, n, err := decodeHeader(w[0], w[1])
	if err != nil || n != len(w) {
		m.stats.Discarded++
		return
	}
	m.stats.Objects++
	m.rbuf, m.rpos, m.popped, m.dor = nil, 0, 0, false
	if m.fault.Error {
		m.err = true
		return
	}
	if m.fault.NeverReady {
		m.busy = true // readyAt zero: never
		return
	}
	req := make([]byte, 0, 4*(n-2))
	for _, dw := range w[2:] {
		req = append(req, byte(dw), byte(dw>>8), byte(dw>>16), byte(dw>>24))
	}
	var rsp []byte
	switch {
	case f == FeatureDiscovery && !m.raw:
		rsp, err = AnswerDiscovery(m.features, req)
	case m.handler == nil:
		m.err = true
		return
	default:
		rsp, err = m.handler(f, req)
	}
	if err != nil || len(rsp) > MaxPayload {
		m.err = true
		return
	}
	m.rbuf = m.respond(f, rsp)
	if m.fault.Latency > 0 {
		m.busy, m.readyAt = true, m.now().Add(m.fault.Latency)
		return
	}
	m.dor = len(m.rbuf) > 0
}

// respond builds the response object with the injected faults applied.
func (m *Model) respond(f Feature, rsp []byte) []uint32 {
	n := payloadDWs(len(rsp))
	dw0, dw1 := headerDWs(f, n+2)
	if m.fault.WrongVendor {
		dw0 ^= 0x0100
	}
	if m.fault.WrongType {
		dw0 ^= 0x10000
	}
	switch {
	case m.fault.SetLength:
		dw1 = m.fault.Length & lengthMask
	case m.fault.LengthDelta != 0:
		dw1 = uint32(n+2+m.fault.LengthDelta) & lengthMask
	}
	out := make([]uint32, 0, n+2)
	out = append(out, dw0, dw1)
	for i := 0; i < n; i++ {
		var w [4]byte
		copy(w[:], rsp[4*i:])
		out = append(out, uint32(w[0])|uint32(w[1])<<8|uint32(w[2])<<16|uint32(w[3])<<24)
	}
	if t := m.fault.Truncate; t > 0 {
		out = out[:max(0, len(out)-t)]
	}
	return out
}

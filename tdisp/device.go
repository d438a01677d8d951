package tdisp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

// DeviceConfig describes the TDI a Device serves.
type DeviceConfig struct {
	// Interface is the TDI's interface ID; requests for another ID get
	// INVALID_INTERFACE.
	Interface InterfaceID
	// Capabilities answered to GET_TDISP_CAPABILITIES. Zero value: the
	// defaults of DefaultCapabilities.
	Capabilities *Capabilities
	// Ranges are the TDI's MMIO ranges (from the BARs), FirstPage without
	// the reporting offset; the offset of LOCK is added when the report is
	// built.
	Ranges []MMIORange
	// RangesFunc, when set, replaces Ranges and is called at every LOCK
	// (the emulator reads its BARs then).
	RangesFunc         func() []MMIORange
	InterfaceInfo      InterfaceInfo
	MSIXControl        uint16
	LNRControl         uint16
	TPHControl         uint32
	DeviceSpecificInfo []byte
	// Rand supplies START_INTERFACE nonces (nil: crypto/rand).
	Rand   io.Reader
	Logger *slog.Logger
}

// DefaultCapabilities are the device capabilities used when the config has
// none: requests 0x81..0x87 supported, lock flags NO_FW_UPDATE |
// SYSTEM_CACHE_LINE_SIZE | LOCK_MSIX, 52-bit addresses.
func DefaultCapabilities() *Capabilities {
	c := &Capabilities{LockFlagsSupported: LockNoFWUpdate | LockSystemCacheLineSize | LockMSIX, DevAddrWidth: 52}
	c.ReqMsgsSupported[0] = 0xFE
	return c
}

// Device is the responder side of TDISP for one TDI, for the software device
// (emu). It enforces the state machine, builds the report at LOCK, and checks
// the START nonce. Device implements Session, so a Client can talk to it
// directly in tests. It is safe for concurrent use.
type Device struct {
	mu     sync.Mutex
	cfg    DeviceConfig
	caps   *Capabilities
	rand   io.Reader
	log    *slog.Logger
	state  State
	nonce  [NonceSize]byte
	report []byte
	faults int
}

// NewDevice returns a TDI in CONFIG_UNLOCKED.
func NewDevice(cfg DeviceConfig) *Device {
	d := &Device{cfg: cfg, caps: cfg.Capabilities, rand: cfg.Rand, log: cfg.Logger}
	if d.caps == nil {
		d.caps = DefaultCapabilities()
	}
	if d.rand == nil {
		d.rand = rand.Reader
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	return d
}

// State returns the TDI state.
func (d *Device) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// LockedConfigWrite is called by the emulator when the host writes a
// configuration register that LOCK froze (BARs, command register, MSI-X
// when locked, ...): a locked or running TDI goes to ERROR. It returns the
// new state.
func (d *Device) LockedConfigWrite(offset int) State {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := Faulted(d.state); n != d.state {
		d.log.Info("tdisp config write to locked register", "offset", offset, "from", d.state.String())
		d.state = n
		d.faults++
	}
	return d.state
}

// SessionEnded is called when the secure session that locked the TDI ends:
// a CONFIG_LOCKED or RUN TDI goes to ERROR.
func (d *Device) SessionEnded() State { return d.LockedConfigWrite(-1) }

// VendorDefined implements Session: it checks the PCI-SIG framing and
// handles the TDISP payload.
func (d *Device) VendorDefined(ctx context.Context, standardID uint16, vendorID []byte, payload []byte) ([]byte, error) {
	if standardID != StandardIDPCISIG || !bytes.Equal(vendorID, VendorIDPCISIG) {
		return nil, fmt.Errorf("tdisp: device: not a PCI-SIG vendor-defined message (standard %d, vendor %x)", standardID, vendorID)
	}
	return d.Handle(ctx, payload), nil
}

// Handle processes one TDISP request payload (protocol ID first) and returns
// the response payload; every failure is a TDISP_ERROR response.
func (d *Device) Handle(ctx context.Context, payload []byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := Header{Version: Version10, Interface: d.cfg.Interface}
	fail := func(c ErrorCode, data uint32) []byte {
		d.log.DebugContext(ctx, "tdisp device error", "code", c.String())
		return Encode(h, &ErrorResponse{Code: c, Data: data})
	}
	pkt, err := Decode(payload)
	if err != nil {
		if len(payload) > 2 && payload[0] == ProtocolID {
			if t := MessageType(payload[2]); newMessage(t) == nil || !t.IsRequest() {
				return fail(ErrorUnsupportedRequest, uint32(t))
			}
		}
		return fail(ErrorInvalidRequest, 0)
	}
	t := pkt.Type
	if !t.IsRequest() {
		return fail(ErrorUnsupportedRequest, uint32(t))
	}
	if pkt.Version != Version10 {
		return fail(ErrorVersionMismatch, 0)
	}
	if pkt.Interface != d.cfg.Interface {
		return fail(ErrorInvalidInterface, 0)
	}
	if !d.caps.Supports(t) {
		return fail(ErrorUnsupportedRequest, uint32(t))
	}
	if err := Allowed(d.state, t); err != nil {
		return fail(ErrorInvalidInterfaceState, 0)
	}
	var rsp Message
	switch m := pkt.Msg.(type) {
	case *GetVersion:
		rsp = &Version{Versions: []uint8{Version10}}
	case *GetCapabilities:
		c := *d.caps
		rsp = &c
	case *LockInterface:
		if m.Flags&^d.caps.LockFlagsSupported != 0 || m.MMIOReportingOffset%(1<<pageShift) != 0 {
			return fail(ErrorInvalidRequest, 0)
		}
		var n [NonceSize]byte
		if _, err := io.ReadFull(d.rand, n[:]); err != nil || n == ([NonceSize]byte{}) {
			return fail(ErrorInsufficientEntropy, 0)
		}
		d.nonce, d.report = n, d.buildReport(m.MMIOReportingOffset)
		rsp = &LockInterfaceResponse{Nonce: n}
	case *GetReport:
		if int(m.Offset) > len(d.report) {
			return fail(ErrorInvalidRequest, 0)
		}
		// Cap the portion so the response fits MaxPayload.
		end := min(len(d.report), int(m.Offset)+min(int(m.Length), maxPortion))
		rsp = &ReportPortion{Portion: d.report[m.Offset:end], Remainder: uint16(len(d.report) - end)}
	case *GetState:
		rsp = &StateResponse{State: d.state}
	case *StartInterface:
		if subtle.ConstantTimeCompare(m.Nonce[:], d.nonce[:]) != 1 {
			return fail(ErrorInvalidNonce, 0)
		}
		rsp = &Empty{T: MsgStartInterfaceRsp}
	case *StopInterface:
		d.nonce, d.report = [NonceSize]byte{}, nil
		rsp = &Empty{T: MsgStopInterfaceRsp}
	default:
		return fail(ErrorUnsupportedRequest, uint32(t))
	}
	d.state = After(d.state, t)
	return Encode(h, rsp)
}

func (d *Device) buildReport(offset uint64) []byte {
	r := InterfaceReport{
		InterfaceInfo: d.cfg.InterfaceInfo, MSIXControl: d.cfg.MSIXControl, LNRControl: d.cfg.LNRControl,
		TPHControl: d.cfg.TPHControl, DeviceSpecificInfo: d.cfg.DeviceSpecificInfo,
	}
	ranges := d.cfg.Ranges
	if d.cfg.RangesFunc != nil {
		ranges = d.cfg.RangesFunc()
	}
	for _, m := range ranges {
		m.FirstPage += offset >> pageShift
		r.MMIORanges = append(r.MMIORanges, m)
	}
	return r.Marshal()
}

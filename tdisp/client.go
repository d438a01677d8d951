package tdisp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
)

// Session is what the Client needs from an SPDM secure session: one
// VENDOR_DEFINED request/response exchange. payload and the returned bytes
// are the vendor-defined payload (protocol ID first); the implementation
// checks that the response's StandardID and VendorID match the request.
type Session interface {
	VendorDefined(ctx context.Context, standardID uint16, vendorID []byte, payload []byte) ([]byte, error)
}

// ClientOptions tunes a Client. The zero value is usable.
type ClientOptions struct {
	// PortionSize is the LENGTH asked for per GET_DEVICE_INTERFACE_REPORT
	// (default 0x3C0, which keeps a response under spdm-emu's 0x400 limit;
	// at most MaxPayload minus the response overhead).
	PortionSize uint16
	Logger      *slog.Logger
}

// Client is the TDISP requester for one TDI. It tracks the state it believes
// the TDI is in; any disagreement with what the device reports is an error.
// A Client is not safe for concurrent use.
type Client struct {
	s       Session
	id      InterfaceID
	version uint8
	portion uint16
	log     *slog.Logger

	tracked State
	known   bool // tracked is meaningful
	caps    *Capabilities
}

// NewClient returns a client for the TDI of function id (see InterfaceIDFor).
func NewClient(s Session, id InterfaceID, opts *ClientOptions) *Client {
	c := &Client{s: s, id: id, version: Version10, portion: 0x3C0, log: slog.New(slog.DiscardHandler)}
	if opts != nil {
		if opts.PortionSize != 0 {
			c.portion = min(opts.PortionSize, maxPortion)
		}
		if opts.Logger != nil {
			c.log = opts.Logger
		}
	}
	return c
}

// Interface returns the interface ID.
func (c *Client) Interface() InterfaceID { return c.id }

// Tracked returns the state the client believes the TDI is in, and whether it
// knows one at all (before the first GET_DEVICE_INTERFACE_STATE or LOCK it
// does not).
func (c *Client) Tracked() (State, bool) { return c.tracked, c.known }

// exchange sends one request and returns the decoded response of the
// expected type. A TDISP_ERROR becomes *DeviceError.
func (c *Client) exchange(ctx context.Context, req Message) (Message, error) {
	t := req.Type()
	p := Encode(Header{Version: c.version, Interface: c.id}, req)
	c.log.DebugContext(ctx, "tdisp request", "req", t.String(), "len", len(p))
	raw, err := c.s.VendorDefined(ctx, StandardIDPCISIG, VendorIDPCISIG, p)
	if err != nil {
		return nil, fmt.Errorf("tdisp: %v: %w", t, err)
	}
	pkt, err := Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("tdisp: response to %v: %w", t, err)
	}
	c.log.DebugContext(ctx, "tdisp response", "rsp", pkt.Type.String(), "len", len(raw))
	if pkt.Interface != c.id {
		return nil, &ProtocolError{Request: t, Reason: fmt.Sprintf("response for interface %v, asked about %v", pkt.Interface, c.id)}
	}
	if pkt.Version != c.version {
		return nil, &ProtocolError{Request: t, Reason: fmt.Sprintf("response version %#02x, negotiated %#02x", pkt.Version, c.version)}
	}
	if e, ok := pkt.Msg.(*ErrorResponse); ok {
		return nil, &DeviceError{Request: t, Code: e.Code, Data: e.Data, Extended: e.Extended}
	}
	if pkt.Type != t.ResponseType() {
		return nil, &ProtocolError{Request: t, Reason: fmt.Sprintf("answered with %v", pkt.Type)}
	}
	return pkt.Msg, nil
}

// check refuses, before sending, a request the tracked state forbids.
func (c *Client) check(t MessageType) error {
	if !c.known {
		return nil
	}
	return Allowed(c.tracked, t)
}

// afterError updates tracking after the device refused a request: a refusal
// for the interface state means our picture is wrong, so it is forgotten and
// the next State call re-learns it.
func (c *Client) afterError(err error) error {
	if errors.Is(err, ErrorInvalidInterfaceState) {
		c.known = false
	}
	return err
}

// GetVersion sends GET_TDISP_VERSION (always as TDISP 1.0) and checks that
// the device supports 1.0. It returns the versions the device listed.
func (c *Client) GetVersion(ctx context.Context) ([]uint8, error) {
	c.version = Version10
	m, err := c.exchange(ctx, &GetVersion{})
	if err != nil {
		return nil, err
	}
	v := m.(*Version).Versions
	if !slices.Contains(v, Version10) {
		return v, &ProtocolError{Request: MsgGetVersion, Reason: fmt.Sprintf("device offers %x, not TDISP 1.0", v)}
	}
	return v, nil
}

// GetCapabilities sends GET_TDISP_CAPABILITIES with the TSM capabilities (0 in 1.0).
func (c *Client) GetCapabilities(ctx context.Context, tsmCaps uint32) (*Capabilities, error) {
	m, err := c.exchange(ctx, &GetCapabilities{TSMCaps: tsmCaps})
	if err != nil {
		return nil, err
	}
	c.caps = m.(*Capabilities)
	return c.caps, nil
}

// LockParams are the LOCK_INTERFACE_REQUEST fields (flags from policy).
type LockParams struct {
	Flags               LockFlags
	DefaultStreamID     uint8
	MMIOReportingOffset uint64
	BindP2PAddressMask  uint64
}

// Lock sends LOCK_INTERFACE_REQUEST and returns the START_INTERFACE nonce.
// If capabilities were read, flags the device does not support are refused
// before sending.
func (c *Client) Lock(ctx context.Context, p LockParams) ([NonceSize]byte, error) {
	var nonce [NonceSize]byte
	if err := c.check(MsgLockInterface); err != nil {
		return nonce, err
	}
	if p.Flags&^lockFlagsDefined != 0 {
		return nonce, fmt.Errorf("tdisp: undefined lock flags %#04x", uint16(p.Flags&^lockFlagsDefined))
	}
	if c.caps != nil && p.Flags&^c.caps.LockFlagsSupported != 0 {
		return nonce, fmt.Errorf("tdisp: lock flags %#04x not supported by the device (supported %#04x)", uint16(p.Flags), uint16(c.caps.LockFlagsSupported))
	}
	m, err := c.exchange(ctx, &LockInterface{Flags: p.Flags, DefaultStreamID: p.DefaultStreamID,
		MMIOReportingOffset: p.MMIOReportingOffset, BindP2PAddressMask: p.BindP2PAddressMask})
	if err != nil {
		return nonce, c.afterError(err)
	}
	nonce = m.(*LockInterfaceResponse).Nonce
	if nonce == ([NonceSize]byte{}) {
		return nonce, &ProtocolError{Request: MsgLockInterface, Reason: "all-zero START_INTERFACE nonce"}
	}
	c.tracked, c.known = StateConfigLocked, true
	return nonce, nil
}

// maxPortions bounds the report loop against a device that dribbles bytes.
const maxPortions = 4096

// Report reads the whole DEVICE_INTERFACE_REPORT in portions and parses it.
// The raw bytes are returned too (for evidence). The device must keep
// offset + portion + remainder constant, never return more than asked, and
// make progress.
func (c *Client) Report(ctx context.Context) (*InterfaceReport, []byte, error) {
	if err := c.check(MsgGetReport); err != nil {
		return nil, nil, err
	}
	var buf []byte
	total := -1
	ask := c.portion
	for range maxPortions {
		m, err := c.exchange(ctx, &GetReport{Offset: uint16(len(buf)), Length: ask})
		if err != nil {
			return nil, nil, c.afterError(err)
		}
		r := m.(*ReportPortion)
		t := len(buf) + len(r.Portion) + int(r.Remainder)
		switch {
		case total >= 0 && t != total:
			return nil, nil, &ProtocolError{Request: MsgGetReport, Reason: fmt.Sprintf("report length changed from %d to %d", total, t)}
		case t > MaxReportSize:
			return nil, nil, &ProtocolError{Request: MsgGetReport, Reason: fmt.Sprintf("report of %d bytes exceeds %d", t, MaxReportSize)}
		case len(r.Portion) > int(ask):
			return nil, nil, &ProtocolError{Request: MsgGetReport, Reason: fmt.Sprintf("portion of %d bytes, asked for %d", len(r.Portion), ask)}
		case len(r.Portion) == 0 && r.Remainder != 0:
			return nil, nil, &ProtocolError{Request: MsgGetReport, Reason: "empty portion with bytes remaining"}
		case r.Remainder != 0 && len(buf)+len(r.Portion) > 0xFFFF:
			return nil, nil, &ProtocolError{Request: MsgGetReport, Reason: "report continues past the 16-bit offset range"}
		}
		total = t
		buf = append(buf, r.Portion...)
		ask = uint16(min(int(c.portion), int(r.Remainder)))
		if r.Remainder == 0 {
			rep, err := ParseInterfaceReport(buf)
			if err != nil {
				return nil, buf, err
			}
			return rep, buf, nil
		}
	}
	return nil, nil, &ProtocolError{Request: MsgGetReport, Reason: fmt.Sprintf("report not complete after %d portions", maxPortions)}
}

// State sends GET_DEVICE_INTERFACE_STATE. If the client tracks a state and
// the device reports another, it returns the reported state with a
// *StateMismatchError (and adopts the reported state).
func (c *Client) State(ctx context.Context) (State, error) {
	m, err := c.exchange(ctx, &GetState{})
	if err != nil {
		return 0, err
	}
	got := m.(*StateResponse).State
	if c.known && got != c.tracked {
		err := &StateMismatchError{Tracked: c.tracked, Reported: got}
		c.tracked = got
		return got, err
	}
	c.tracked, c.known = got, true
	return got, nil
}

// Start sends START_INTERFACE_REQUEST with the nonce Lock returned.
func (c *Client) Start(ctx context.Context, nonce [NonceSize]byte) error {
	if err := c.check(MsgStartInterface); err != nil {
		return err
	}
	if _, err := c.exchange(ctx, &StartInterface{Nonce: nonce}); err != nil {
		return c.afterError(err)
	}
	c.tracked, c.known = StateRun, true
	return nil
}

// Stop sends STOP_INTERFACE_REQUEST.
func (c *Client) Stop(ctx context.Context) error {
	if err := c.check(MsgStopInterface); err != nil {
		return err
	}
	if _, err := c.exchange(ctx, &StopInterface{}); err != nil {
		return c.afterError(err)
	}
	c.tracked, c.known = StateConfigUnlocked, true
	return nil
}

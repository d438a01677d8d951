package emu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// SessionConfig sets up the device's secure sessions (DSP0277 over the
// secured-CMA DOE feature) and its TDISP interface.
type SessionConfig struct {
	// Disabled turns sessions off (no KEY_EX_CAP, no secured-CMA feature).
	Disabled bool
	// DHE groups offered; 0 = secp256r1 and secp384r1.
	DHE spdm.DHEAlgo
	// AEAD suites the device selects from; 0 = all three (AES-256-GCM
	// preferred). Tests configure one to force it.
	AEAD spdm.AEADAlgo
	// HandshakeInClear advertises HANDSHAKE_IN_THE_CLEAR_CAP.
	HandshakeInClear bool
	// HeartbeatPeriod (seconds) announced in KEY_EXCHANGE_RSP; 0 =
	// DefaultHeartbeatPeriod. The device advertises HBEAT_CAP and
	// KEY_UPD_CAP with sessions unless NoHeartbeat / NoKeyUpdate is set.
	HeartbeatPeriod uint8
	// NoHeartbeat withholds HBEAT_CAP (HeartbeatPeriod is then 0);
	// NoKeyUpdate withholds KEY_UPD_CAP.
	NoHeartbeat, NoKeyUpdate bool
	// NoTDISP removes the TDISP interface (VENDOR_DEFINED unsupported).
	NoTDISP bool
}

// DefaultHeartbeatPeriod is the HeartbeatPeriod (seconds) the device
// announces when sessions have HBEAT_CAP and no period is configured. A
// non-zero period is what makes requesters (libspdm's among them) use
// HEARTBEAT at all.
const DefaultHeartbeatPeriod = 60

// tdiState is the device's TDISP interface and the session that owns it.
type tdiState struct {
	mu    sync.Mutex
	dev   *tdisp.Device
	owner uint32 // session that locked the TDI (0: none)
}

// CapabilityFlags returns the SPDM CAPABILITIES flags the device advertises
// at version v.
func (d *Device) CapabilityFlags(v spdm.Version) uint32 { return d.responder.CapabilityFlags(v) }

// TDI returns the device's TDISP interface, or nil without one.
func (d *Device) TDI() *tdisp.Device {
	if d.tdi == nil {
		return nil
	}
	return d.tdi.dev
}

// bar0Base is the base address BAR0 is programmed to. It is cached by the
// config-write hook: the report is built while the DOE model holds the
// config-space lock, so it cannot read config space itself.
func (d *Device) bar0Base() uint64 { return d.bar0.Load() }

func (d *Device) readBAR0() {
	var b [8]byte
	_, _ = d.config.ReadAt(b[:4], 0x10)
	_, _ = d.config.ReadAt(b[4:], 0x14)
	d.bar0.Store(binary.LittleEndian.Uint64(b[:]) &^ 0xF)
}

// tdiRanges are BAR0's pages as the report lists them at LOCK: all but the
// last page TEE memory (range 0), the last page a non-TEE doorbell (range 1).
func (d *Device) tdiRanges() []tdisp.MMIORange {
	first := d.bar0Base() >> 12
	pages := uint32(bar0Size >> 12)
	return []tdisp.MMIORange{
		{FirstPage: first, Pages: pages - 1, RangeID: 0},
		{FirstPage: first + uint64(pages-1), Pages: 1, Attributes: tdisp.RangeNonTEEMem, RangeID: 1},
	}
}

// newTDI builds the TDISP interface of the function at cfg.BDF.
func (d *Device) newTDI() (*tdiState, error) {
	id, err := tdisp.InterfaceIDFor(d.cfg.BDF)
	if err != nil {
		return nil, fmt.Errorf("emu: TDISP interface ID: %w", err)
	}
	return &tdiState{dev: tdisp.NewDevice(tdisp.DeviceConfig{
		Interface: id, RangesFunc: d.tdiRanges, InterfaceInfo: tdisp.InfoNoFWUpdateAfterLock | tdisp.InfoDMAWithoutPASID,
		DeviceSpecificInfo: []byte("vfio-gate emu " + d.cfg.Identity.CMAName()), Logger: d.cfg.Logger,
	})}, nil
}

// errOutsideSession refuses TDISP outside a secure session.
var errOutsideSession = errors.New("emu: TDISP request outside a secure session")

// vendorDefined routes VENDOR_DEFINED requests: Config.VendorDefined if
// set, else PCI-SIG TDISP inside a session to the TDI.
func (d *Device) vendorDefined(ctx context.Context, std uint16, vid, payload []byte) ([]byte, error) {
	if d.cfg.VendorDefined != nil {
		return d.cfg.VendorDefined(ctx, std, vid, payload)
	}
	id, ok := spdm.SessionIDFromContext(ctx)
	if d.tdi == nil || !ok {
		return nil, errOutsideSession
	}
	t := d.tdi
	t.mu.Lock()
	defer t.mu.Unlock()
	before := t.dev.State()
	rsp, err := t.dev.VendorDefined(ctx, std, vid, payload)
	if after := t.dev.State(); before == tdisp.StateConfigUnlocked && after == tdisp.StateConfigLocked {
		t.owner = id
	} else if after == tdisp.StateConfigUnlocked {
		t.owner = 0
	}
	return rsp, err
}

// sessionEnded moves a TDI locked by the ended session to ERROR.
func (d *Device) sessionEnded(id uint32) {
	if d.tdi == nil {
		return
	}
	t := d.tdi
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.owner == id && id != 0 {
		t.dev.SessionEnded()
		t.owner = 0
	}
}

// lockedConfigWrite is the config-space hook: a write to a register LOCK
// froze (command, BARs, expansion ROM) moves a locked or running TDI to ERROR.
func (d *Device) lockedConfigWrite(off int64) {
	if off >= 0x10 && off < 0x18 {
		d.readBAR0()
	}
	if d.tdi != nil {
		d.tdi.dev.LockedConfigWrite(int(off))
	}
}

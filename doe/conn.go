package doe

import (
	"context"
	"fmt"
	"slices"
)

// Conn is anything that exchanges one DOE data object for one response
// object: a *Mailbox (config space) or a *socket.Conn (spdm-socket).
type Conn interface {
	Exchange(ctx context.Context, f Feature, req []byte) ([]byte, error)
}

// Exchanger binds a Conn to one feature. Its Exchange method satisfies the
// one-method transport interfaces consumers declare, e.g.
// interface{ Exchange(context.Context, []byte) ([]byte, error) }.
type Exchanger struct {
	c Conn
	f Feature
}

// NewExchanger returns an Exchanger sending objects of feature f over c.
func NewExchanger(c Conn, f Feature) *Exchanger { return &Exchanger{c: c, f: f} }

// Feature returns the feature the exchanger is bound to.
func (e *Exchanger) Feature() Feature { return e.f }

// Exchange sends req as one data object of the bound feature and returns
// the DW-padded response payload.
func (e *Exchanger) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	return e.c.Exchange(ctx, e.f, req)
}

// qemuOutOfRange is what QEMU answers for a discovery index past the end.
var qemuOutOfRange = Feature{Vendor: 0xFFFF, Type: 0xFF}

// Discover runs the DOE discovery loop over c (PCIe r6.0 §6.30.1.1): start
// at index 0, follow Next Index until it is 0. At most 256 requests are sent
// (the index is 8 bits) and an index visited twice is a loop, rejected with
// a *ProtocolError. An entry with Vendor ID 0xFFFF past index 0 (QEMU's
// answer for an index out of range) ends the list. Duplicates are dropped.
func Discover(ctx context.Context, c Conn) ([]Feature, error) {
	var (
		list    []Feature
		visited [256]bool
		idx     uint8
	)
	for {
		visited[idx] = true
		rsp, err := c.Exchange(ctx, FeatureDiscovery, encodeDiscoveryReq(idx))
		if err != nil {
			return nil, fmt.Errorf("doe: discovery index %d: %w", idx, err)
		}
		f, next, err := decodeDiscoveryRsp(rsp)
		if err != nil {
			return nil, err
		}
		if f.Vendor == qemuOutOfRange.Vendor {
			if idx == 0 {
				return nil, protoErr("discovery response", "index 0 names vendor 0xffff")
			}
			break
		}
		if !slices.Contains(list, f) {
			list = append(list, f)
		}
		if next == 0 {
			break
		}
		if visited[next] {
			return nil, protoErr("Next Index", "index %d after %d was already visited (loop)", next, idx)
		}
		idx = next
	}
	return list, nil
}

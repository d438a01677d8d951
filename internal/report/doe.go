package report

import (
	"encoding/hex"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/vfio-gate/vfio-gate/doe/cdat"
	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
	"github.com/vfio-gate/vfio-gate/target"
)

// DOEDiscover is the body of the `doe-discover` document (docs/schema/doe-discover.v1.json).
type DOEDiscover struct {
	Mailboxes []DOEMailbox `json:"mailboxes"`
}

// DOEMailbox is one mailbox: its features (vendor and type, and their
// names in the same order), or why discovery failed.
type DOEMailbox struct {
	Offset   jsonhex.U16  `json:"offset"`
	Features []DOEFeature `json:"features"`
	Names    []string     `json:"names"`
	Error    string       `json:"error,omitempty"`
}

// DOEFeature is a DOE data object protocol: vendor ID and type, in hex.
type DOEFeature struct {
	VendorID jsonhex.U16 `json:"vendor_id"`
	Type     jsonhex.U8  `json:"type"`
}

// DOEDiscoverOf is what discovery found at each of mbs.
func DOEDiscoverOf(mbs []target.Mailbox) DOEDiscover {
	out := DOEDiscover{Mailboxes: []DOEMailbox{}}
	for _, mb := range mbs {
		ent := DOEMailbox{Offset: jsonhex.U16(mb.Offset()), Features: []DOEFeature{}, Names: []string{}}
		if mb.Err != nil {
			ent.Error = mb.Err.Error()
		}
		for _, ft := range mb.Features {
			ent.Features = append(ent.Features, DOEFeature{VendorID: jsonhex.U16(ft.Vendor), Type: jsonhex.U8(ft.Type)})
			ent.Names = append(ent.Names, ft.Name())
		}
		out.Mailboxes = append(out.Mailboxes, ent)
	}
	return out
}

// Failed is the number of mailboxes whose discovery failed.
func (d DOEDiscover) Failed() int {
	n := 0
	for _, m := range d.Mailboxes {
		if m.Error != "" {
			n++
		}
	}
	return n
}

// WriteDOEDiscover writes one row per feature of each mailbox, and an error
// row for a mailbox whose discovery failed.
func WriteDOEDiscover(w io.Writer, d DOEDiscover) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAILBOX\tVENDOR\tTYPE\tFEATURE")
	for _, ent := range d.Mailboxes {
		if ent.Error != "" {
			fmt.Fprintf(tw, "0x%03x\t-\t-\terror: %s\n", uint16(ent.Offset), ent.Error)
		}
		for i, ft := range ent.Features {
			fmt.Fprintf(tw, "0x%03x\t%04x\t%02x\t%s\n", uint16(ent.Offset), uint16(ft.VendorID), uint8(ft.Type), ent.Names[i])
		}
	}
	return tw.Flush()
}

// CDAT is the body of the `doe-cdat` document: a CDAT that parsed (its
// checksum is therefore ok), its structures and how many of each type.
type CDAT struct {
	Mailbox    jsonhex.U16     `json:"mailbox"`
	Length     uint32          `json:"length"`
	Revision   uint8           `json:"revision"`
	Checksum   uint8           `json:"checksum"`
	ChecksumOK bool            `json:"checksum_ok"`
	Sequence   uint32          `json:"sequence"`
	Structures []CDATStructure `json:"structures"`
	Counts     map[string]int  `json:"counts"`
	Raw        string          `json:"raw"`
}

// CDATStructure is one CDAT structure, its body in hex.
type CDATStructure struct {
	Type   uint8  `json:"type"`
	Name   string `json:"name"`
	Offset int    `json:"offset"`
	Length uint16 `json:"length"`
	Body   string `json:"body"`
}

// CDATOf is tab (parsed from raw) read through the mailbox at offset mailbox.
func CDATOf(mailbox uint16, raw []byte, tab *cdat.Table) CDAT {
	out := CDAT{Mailbox: jsonhex.U16(mailbox), Length: tab.Length, Revision: tab.Revision, Checksum: tab.Checksum,
		ChecksumOK: true, Sequence: tab.Sequence, Structures: []CDATStructure{}, Counts: map[string]int{},
		Raw: hex.EncodeToString(raw)}
	for _, s := range tab.Structures {
		out.Structures = append(out.Structures, CDATStructure{Type: s.Type, Name: s.Name, Offset: s.Offset,
			Length: s.Length, Body: hex.EncodeToString(s.Body)})
		out.Counts[s.Name]++
	}
	return out
}

// WriteCDAT writes the header line and a table of the structures.
func WriteCDAT(w io.Writer, c CDAT) error {
	fmt.Fprintf(w, "CDAT via mailbox 0x%03x: %d bytes, revision %d, checksum 0x%02x ok, sequence %d, %d structures\n",
		c.Mailbox, c.Length, c.Revision, c.Checksum, c.Sequence, len(c.Structures))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  OFFSET\tTYPE\tNAME\tLENGTH")
	for _, s := range c.Structures {
		fmt.Fprintf(tw, "  0x%04x\t%d\t%s\t%d\n", s.Offset, s.Type, s.Name, s.Length)
	}
	return tw.Flush()
}

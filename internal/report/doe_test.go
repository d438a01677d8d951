package report

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/doe/cdat"
)

func TestDOEDiscover(t *testing.T) {
	d := DOEDiscover{Mailboxes: []DOEMailbox{
		{Offset: 0x100, Features: []DOEFeature{{VendorID: 1, Type: 0}, {VendorID: 0x1e98, Type: 2}}, Names: []string{"discovery", "cxl-cdat"}},
		{Offset: 0x118, Features: []DOEFeature{}, Names: []string{}, Error: "timeout"},
	}}
	if d.Failed() != 1 {
		t.Errorf("failed %d", d.Failed())
	}
	var b strings.Builder
	if err := WriteDOEDiscover(&b, d); err != nil {
		t.Fatal(err)
	}
	want := `MAILBOX  VENDOR  TYPE  FEATURE
0x100    0001    00    discovery
0x100    1e98    02    cxl-cdat
0x118    -       -     error: timeout
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if got := DOEDiscoverOf(nil); got.Mailboxes == nil || got.Failed() != 0 {
		t.Errorf("no mailboxes: %+v", got)
	}
}

func TestCDAT(t *testing.T) {
	raw := cdat.Build(1, 3, []cdat.Structure{{Type: cdat.TypeDSMAS, Body: make([]byte, 20)},
		{Type: cdat.TypeDSLBIS, Body: make([]byte, 20)}, {Type: cdat.TypeDSLBIS, Body: []byte{1, 2, 3, 4}}})
	tab, err := cdat.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	c := CDATOf(0x100, raw, tab)
	if c.Length != uint32(len(raw)) || !c.ChecksumOK || c.Sequence != 3 || len(c.Structures) != 3 || c.Counts["DSLBIS"] != 2 ||
		c.Structures[2].Body != "01020304" || c.Structures[1].Offset != 0x28 || len(c.Raw) != 2*len(raw) {
		t.Errorf("cdat %+v", c)
	}
	j, err := json.Marshal(c)
	if err != nil || !strings.Contains(string(j), `"mailbox":"0x0100"`) {
		t.Errorf("json %s %v", j, err)
	}
	var b strings.Builder
	if err := WriteCDAT(&b, c); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`CDAT via mailbox 0x100: 72 bytes, revision 1, checksum 0x%02x ok, sequence 3, 3 structures
  OFFSET  TYPE  NAME    LENGTH
  0x0010  0     DSMAS   24
  0x0028  1     DSLBIS  24
  0x0040  1     DSLBIS  8
`, c.Checksum)
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

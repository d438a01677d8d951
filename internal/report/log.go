package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vfio-gate/vfio-gate/tpm"
)

// LogBoot is one boot of the "log-show" document: the boot, its decoded
// records and whether its last line was torn.
type LogBoot struct {
	tpm.Boot
	Events []tpm.DecodedEvent `json:"events"`
	Torn   bool               `json:"torn_last_line"`

	tornSegment string
	tornLine    int
}

// LogBootOf decodes the records l of boot b.
func LogBootOf(b tpm.Boot, l *tpm.Log) LogBoot {
	lb := LogBoot{Boot: b, Events: make([]tpm.DecodedEvent, 0, len(l.Records)), Torn: l.Torn,
		tornSegment: l.TornSegment, tornLine: l.TornLine}
	for _, r := range l.Records {
		lb.Events = append(lb.Events, tpm.Describe(r))
	}
	return lb
}

// LogTable is the text form of log show: one table per boot, written as
// the boots are read.
type LogTable struct{ tw *tabwriter.Writer }

// NewLogTable starts a log show table on w.
func NewLogTable(w io.Writer) *LogTable {
	return &LogTable{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
}

// Boot adds b: a line naming it, then one row per record (PCR "-" for a
// record that was not extended), then a line for a torn last line.
func (t *LogTable) Boot(b LogBoot) {
	fmt.Fprintf(t.tw, "boot %d (TPM resetCount %d, restartCount %d), %d records in %d segments\n",
		b.Seq, b.ResetCount, b.RestartCount, len(b.Events), len(b.Segments))
	fmt.Fprintln(t.tw, "RECNUM\tPCR\tTYPE\tEVENT")
	for _, d := range b.Events {
		pcrCol := fmt.Sprint(d.PCR)
		if !d.Extended {
			pcrCol = "-"
		}
		fmt.Fprintf(t.tw, "%d\t%s\t%s\t%s\n", d.RecNum, pcrCol, d.EventType, d.Summary)
	}
	if b.Torn {
		fmt.Fprintf(t.tw, "%s line %d: incomplete (torn append), not shown\n", b.tornSegment, b.tornLine)
	}
}

// Flush ends the table; none says no boot was added, and dir is named as
// holding no records.
func (t *LogTable) Flush(dir string, none bool) error {
	if none {
		fmt.Fprintf(t.tw, "%s: no records\n", dir)
	}
	return t.tw.Flush()
}

// WriteVerify writes the text form of log verify's result for the log at
// path: a summary line with each bank's outcome, then problems and warnings.
func WriteVerify(w io.Writer, res *tpm.VerifyResult, path string) {
	var banks []string
	for _, b := range res.Banks {
		m := "match"
		if b.PCR == nil {
			m = "replay only"
		} else if !b.Match {
			m = "MISMATCH"
		}
		banks = append(banks, b.Alg+" "+m)
	}
	status := "OK"
	if !res.OK {
		status = "FAILED"
	}
	fmt.Fprintf(w, "%s: boot %d, PCR %d, %d records in %d segments, %d replayed: %s (%s)\n",
		path, res.Boot, res.PCR, res.Records, res.Segments, res.Checked, status, strings.Join(banks, ", "))
	for _, p := range res.Problems {
		fmt.Fprintf(w, "problem  %-11s %s\n", p.Kind, p.Msg)
	}
	for _, x := range res.Warnings {
		fmt.Fprintf(w, "warning  %-11s %s\n", x.Kind, x.Msg)
	}
}

package report

import "github.com/vfio-gate/vfio-gate/tpm"

// LogShow is the "log-show" document: the event log directory and the
// boots shown.
type LogShow struct {
	Boots []LogBoot `json:"boots"`
	Dir   string    `json:"dir"`
}

// ReadLogShow reads the boots of dir a reader asked for (tpm.SelectBoots:
// boot seq, 0 the newest, or all) into the log show document, adding each
// boot to table (when not nil) as it is read.
func ReadLogShow(dir string, seq int, all bool, table *LogTable) (*LogShow, error) {
	boots, err := tpm.SelectBoots(dir, seq, all)
	if err != nil {
		return nil, err
	}
	doc := &LogShow{Boots: []LogBoot{}, Dir: dir}
	for _, b := range boots {
		l, err := tpm.ReadBoot(dir, b.Seq)
		if err != nil {
			return nil, err
		}
		lb := LogBootOf(b, l)
		doc.Boots = append(doc.Boots, lb)
		if table != nil {
			table.Boot(lb)
		}
	}
	return doc, nil
}

package target

import (
	"context"
	"errors"
	"log/slog"

	"github.com/vfio-gate/vfio-gate/pci"
)

// ScanFunctions runs Scan on each of bdfs, in order. A function that is
// missing or vanished (pci.ErrNoDevice, pci.ErrDeviceRemoved) is left out
// of facts: with skipVanished (the functions came from a listing of the
// bus, which may change under the scan) it is only logged at Warn;
// otherwise (the operator named it) its error is joined into missing and
// the scan goes on. Any other error ends the scan with err.
func ScanFunctions(ctx context.Context, sys *pci.System, bdfs []pci.BDF, skipVanished bool, o *ScanOptions) (facts []*Facts, missing, err error) {
	log := slog.New(slog.DiscardHandler)
	if o != nil && o.Logger != nil {
		log = o.Logger
	}
	var gone []error
	for _, b := range bdfs {
		fc, err := Scan(ctx, sys, b, o)
		switch {
		case err == nil:
			facts = append(facts, fc)
		case !errors.Is(err, pci.ErrNoDevice) && !errors.Is(err, pci.ErrDeviceRemoved):
			return nil, nil, err
		case skipVanished:
			log.Warn("function vanished during the scan", "bdf", b.String(), "err", err)
		default:
			gone = append(gone, err)
		}
	}
	return facts, errors.Join(gone...), nil
}

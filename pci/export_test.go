package pci

// SetAfterFound installs a hook that runs once Function has found a device.
func SetAfterFound(s *System, f func()) { s.afterFound = f }

// WriteErr exposes the classification of failed config writes.
func WriteErr(s *System, bdf BDF, err error) error { return s.writeErr(bdf, err) }

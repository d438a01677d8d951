package pci

// SetAfterFound installs a hook that runs once Function has found a device.
func SetAfterFound(s *System, f func()) { s.afterFound = f }

// Package phase holds libvirt's start and stop rules as the daemon applies
// them to one check: which phase a check belongs to (prepare begin, start
// begin), what happens to a managed='yes' hostdev still on its host driver
// (deferred to start begin), which earlier decision stands, and the advice
// given with a deny that depends on the phase. The daemon imports it (the
// hook package imports the daemon, so the rules cannot live there); it
// imports nothing of vfio-gate but pci and policy.
package phase

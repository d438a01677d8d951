// Package config reads vfio-gate's configuration file
// (/etc/vfio-gate/vfio-gate.yaml): YAML whose top-level keys are global
// flags and whose mappings, keyed by a command's name, hold that command's
// flags. It only parses and checks the file's shape; which keys name which
// flags, and applying them, is the CLI's business (cmd/vfio-gate).
//
// Error messages name the file and, for shape errors, the line; they are
// printed to the operator as they are.
//
// A File is not modified after Parse or Load returns and may be read from
// any goroutine.
package config

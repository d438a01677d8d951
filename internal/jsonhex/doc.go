// Package jsonhex gives the JSON form vfio-gate uses for PCI IDs, the Device
// Serial Number and other register values: lowercase hex strings with a 0x
// prefix and a fixed width ("0x1b36", "0x010802", "0x0123456789abcdef").
// See docs/json.md.
//
// Decoding also accepts the older forms found in stored documents: a JSON
// number, or a hex string without the 0x prefix. It is safe for concurrent
// use (the types are plain values).
package jsonhex

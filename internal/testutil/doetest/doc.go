// Package doetest is the register-level fake of a DOE-capable function's
// config space for tests: mailboxes served by doe.Model. NewConfig gives a
// 4 KiB type-0 config space with a PCIe capability at 0x40 and one DOE
// extended capability per model from 0x100 (step 0x18); Config.AddExtCap
// appends others (a DSN, say).
package doetest

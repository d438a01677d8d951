// Package socket speaks the spdm-socket protocol of QEMU (hw/core/
// spdm-socket.c, -device nvme,spdm_port=N) and DMTF spdm-emu, with DOE
// objects as payload (SPEC-FACTS §6.2): every message in both directions is
// Command (u32 big-endian) ‖ TransportType (u32 BE) ‖ PayloadSize (u32 BE) ‖
// payload, and with transport PCI_DOE the payload is a whole DOE data object
// including its 8-byte header.
//
// Conn is a client: a doe.Conn over TCP, the same checks as a config-space
// mailbox. Server serves DOE objects to a doe.Handler, one client at a time,
// answering DOE discovery itself. A *Conn is safe for concurrent use
// (exchanges are serialised); a Server serves one connection at a time.
package socket

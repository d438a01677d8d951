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
//
//	c, err := socket.Dial(ctx, "127.0.0.1:2323")   // spdm-emu / QEMU spdm-socket peer
//	err = socket.Serve(ctx, ln, []doe.Feature{doe.FeatureCMA}, handler)
//
// Commands are NORMAL (1), SHUTDOWN (0xFFFE) and UNKNOWN (0xFFFF); the
// transport type is PCI_DOE (2), what QEMU ≥ 9.1 and DMTF
// spdm_responder_emu --trans PCI_DOE speak.
//
// The client applies the mailbox's checks to each reply, takes deadlines
// and cancellation from ctx, and treats any I/O or protocol error as fatal
// for the connection; Close sends SHUTDOWN.
//
// The server answers a malformed object or a handler error with an empty
// NORMAL message and an unknown command with UNKNOWN; it echoes SHUTDOWN and
// ends that connection (not the server). Payload reads are capped at one
// DOE object (1 MiB) and buffers grow only with the bytes actually
// received.
package socket

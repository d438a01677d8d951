// Package emu is the software device: a PCIe function with a DOE mailbox
// that answers CMA/SPDM as a real device would, with its own test PKI
// (root → intermediate → leaf carrying the CMA subject-alt-name), DMTF
// measurement blocks, and fault injection (bad signatures, wrong roots,
// expired leaves, truncated or oversize messages, Busy storms, …).
//
// It serves tests, the demo and `vfio-gate emulate`. Nothing in it is
// trusted by vfio-gate: it is the adversary the requester is tested against.
// A *Device is safe for concurrent use.
//
// # The device
//
//   - Config space (ConfigSpace, 4 KiB, a pci.ConfigSpace): a type-0 header
//     with the IDs of Identity (default: QEMU's NVMe controller 1b36:0010,
//     class 010802, subsystem 1af4:1100), a 64-bit 64 KiB BAR0 (sizing
//     works), a PCI Express endpoint capability, a Device Serial Number
//     extended capability at 0x100 and a DOE capability at 0x110 whose
//     registers are served by doe.Model. Writes change only Command and
//     BAR0 bits; the DOE registers see dword accesses only.
//   - DOE: discovery lists CMA-SPDM (0001:01) and, with sessions, secured
//     CMA-SPDM (0001:02); other features set the DOE Error bit.
//   - SPDM responder (spdm.Responder, SPDM 1.0–1.3): VERSION, CAPABILITIES,
//     ALGORITHMS (exactly one of what the requester offered, from the
//     device's set), DIGESTS, CERTIFICATE (portions as asked, cut to the
//     requester's DataTransferSize without chunking), CHALLENGE_AUTH signed
//     over M1, MEASUREMENTS (count, one index, all; signed over L1/L2, raw
//     bit streams on request), RESPOND_IF_READY, CHUNK_GET (large responses
//     to a requester with a small DataTransferSize), VENDOR_DEFINED through
//     a hook, ERROR for the rest. Signatures follow the 1.2+ prefix rules
//     (ECDSA r‖s, RSA PKCS #1 v1.5 and PSS with salt = hash length,
//     Ed25519).
//   - PKI: per signature algorithm a root → intermediate → leaf chain (ECDSA
//     P-256/P-384/P-521, RSA 2048/3072/4096 for both RSASSA and RSA-PSS,
//     Ed25519). The leaf has KeyUsage digitalSignature, BasicConstraints
//     CA=false, the SPDM responder-auth EKU and the CMA subject-alt-name
//     (otherName 2.23.147,
//     Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4:SSID=1100:00c0ffee00001234).
//     Keys come from emu/testkeys (published test keys, see its README)
//     unless ChainOptions.FreshKeys; certificates are made at start with a
//     validity around Config.Now.
//   - Measurements (DMTF): 1 immutable ROM, 2 mutable firmware, 3 hardware
//     config, 4 firmware config (digests under the negotiated measurement
//     hash), 5 firmware version "1.4.2", 6 SVN 3 (u64), 0xFD manifest, 0xFE
//     device mode (normal, debug off) as raw bit streams.
//
// # Go API
//
// New(Config{BDF, Identity, Profile, Versions, Algorithms, Hash, MeasHash,
// Slots, Faults, Latency, DataTransferSize, VendorDefined, Now, FreshKeys,
// Rand, Logger}) returns a *Device, which is itself a pci.ConfigSpace (so
// doe.Find(dev, nil) finds its mailbox). It has Handler (a doe.Handler for
// doe/socket), Direct (an spdm.Transport without the DOE registers),
// Anchors and AnchorsPEM (the roots to trust), Chains, SlotChains(n),
// Model, Responder and Reset; Identity.FunctionID gives the
// spdm.FunctionID to compare a CMA SAN with. Its command is vfio-gate
// emulate; its fault profiles (Profiles) are listed in docs/guide.md.
//
// # Sessions and TDISP
//
// Config.Session = SessionConfig{Disabled, DHE, AEAD, HandshakeInClear,
// HeartbeatPeriod, NoTDISP}. By default the device lists CMA-SPDM and
// secured CMA-SPDM (DOE discovery, spdm-socket), selects AES-256-GCM and
// ECDHE P-384, and serves a TDISP interface inside sessions only: the
// interface ID comes from Config.BDF, the report is built at LOCK from
// BAR0's pages (range 0 TEE memory, the last page range 1 non-TEE), and
// Device.TDI gives its state. A config write to the command register, a BAR
// or the expansion ROM BAR of a locked or running TDI moves it to ERROR, and
// so does the end of the session that locked it. Device.DirectSecured is
// the secured transport without the register model.
//
// vfio-gate emulate sets these with --aead NAME (the only AEAD the device
// selects), --handshake-in-clear, --heartbeat SECONDS and --bdf BDF (its
// TDISP interface ID). The session fault profiles are bad-verify-data (the
// session is never established), bad-tag (the session dies: authentication
// failed), wrong-session-id (dies: wrong session ID) and
// key-update-mismatch (dies: VerifyNewKey fails, a *spdm.KeyUpdateError
// wrapping ERROR DecryptError).
//
// # Benchmarks
//
// go test ./emu -run '^$' -bench Attest runs a full attestation (VCA,
// DIGESTS, CERTIFICATE, chain verification, CHALLENGE, signed MEASUREMENTS)
// against the device in-process, cold and with a warm chain cache
// (spdm.MapChainCache), over the DOE register model and over a direct
// transport, reporting ns/op, B/op, allocs/op, round trips and bytes each
// way. go test ./emu -run '^$' -bench 'Session|TDISP' measures session
// establishment, one encrypted round trip per AEAD, and TDISP LOCK → REPORT
// → START in a session. The measured numbers are in docs/internals.md.
package emu

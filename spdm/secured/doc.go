// Package secured implements the SPDM session key schedule (DSP0274 "Key
// schedule", DSP0277) and the secured-message record layer used on the PCIe
// DOE secured-CMA feature (DOE type 0x02).
//
// It knows nothing of SPDM message codecs: the caller computes the transcript
// hashes (TH1, TH2) and hands them in. The stages of the schedule are distinct
// types, so deriving out of order does not compile:
//
//	NewHandshakeSecret(suite, dheOrPSK)     -> *HandshakeSecret
//	  .HandshakeKeys(th1Hash)               -> *HandshakeKeys   (finished keys, handshake traffic keys)
//	    .MasterSecret()                     -> *MasterSecret
//	      .DataKeys(th2Hash)                -> *DataKeys        (data traffic keys, export master)
//
// A Session (session.go) holds the traffic keys of one session for either
// side and seals/opens records. A Session is safe for concurrent use;
// records of one direction must still be sealed and opened in wire order.
//
// # Synopsis
//
//	suite := secured.Suite{Version: 0x12, Hash: crypto.SHA384, AEAD: secured.AES256GCM}
//	hs, err := secured.NewHandshakeSecret(suite, dheSharedSecret)     // or the PSK
//	hk, err := hs.HandshakeKeys(th1Hash)                              // TH1 = Hash(A ‖ Hash(chain) ‖ K ‖ signature)
//	err = hk.CheckResponderVerifyData(th1Hash, rspVerifyData)         // KEY_EXCHANGE_RSP (not in the clear)
//	s, err := secured.NewSession(sessionID, secured.RoleRequester, hk) // handshake phase
//	rec, err := s.Seal(spdmMsg)                                       // SessionID ‖ Length ‖ AEAD(AppLen ‖ msg) ‖ tag
//	msg, err := s.Open(doePayload)                                    // DOE padding (≤ 3 zero bytes) accepted
//	err = s.EnterDataPhase(th2Hash)                                   // after FINISH_RSP; sequence numbers restart at 0
//	err = s.UpdateKey(secured.Request)                                // KEY_UPDATE ("traffic upd"); sequence restarts at 0
//	s.Close()                                                         // END_SESSION
//
// # Rules
//
//   - The BinConcat label "spdm1.X " follows the negotiated SPDM version.
//     AEADs: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305; hashes: SHA-256,
//     SHA-384, SHA-512, SHA3-256, SHA3-384, SHA3-512.
//   - Nonce = IV XOR the sequence number (u64 little-endian); no sequence
//     number on the wire, no random padding.
//   - Any failed Open (a malformed record, a wrong session ID, a bad tag,
//     which is what a replayed or reordered record produces), or an
//     exhausted sequence number, kills the session: *Error{SessionID, Op,
//     Dir, Seq, Reason}, errors.Is(err, ErrSessionDead), sticky for every
//     later call.
package secured

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
// side and seals/opens records.
package secured

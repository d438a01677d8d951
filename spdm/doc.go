// Package spdm implements the DMTF Security Protocol and Data Model
// (DSP0274, versions 1.0–1.3) as used by PCIe CMA (PCIe r6.x §6.31): the
// message codecs for both directions, the requester state machine (version,
// capabilities, algorithms, digests, certificates, challenge, measurements),
// certificate-chain verification and the signature rules, secure sessions
// (key exchange, secured messages through sub-package secured), and a
// responder for the software device (package emu).
//
// The requester speaks over any Transport (Exchange(ctx, req) (rsp,
// error)); attest hands it a DOE exchanger. It is a library: no CLI of its
// own (vfio-gate attest drives it).
//
// Message codecs are unexported. Each decoder checks every length and
// reserved field, rejects trailing bytes, caps device-supplied lengths and
// keeps the exact bytes (raw) for transcripts. Lengths come from SPDM fields
// only: the DOE transport may add 0–3 zero pad bytes, which are removed at the
// transport edge by decodePadded (the only place that tolerates them).
//
// Transcripts (message A, B, M1, L1/L2, D and a session's TH) are built in
// one place, transcript.go, by both the requester and the responder: the
// order of the messages and the multi-key rule for message D live there.
//
// A Requester is not safe for concurrent use. A ChainCache may be shared by
// many requesters (MapChainCache is safe for concurrent use). A Session is
// safe for concurrent use.
//
// # Synopsis
//
//	r := spdm.NewRequester(transport, &spdm.Options{
//		Roots:      anchors,        // []*x509.Certificate trust anchors
//		MinVersion: spdm.Version11, // floors; default 1.0–1.3
//		AsymAlgos:  spdm.AsymECDSAP384 | spdm.AsymRSAPSS3072,
//		HashAlgos:  spdm.HashSHA384,
//		ChainCache: cache,          // optional, e.g. &spdm.MapChainCache{} shared by requesters
//		Logger:     log,            // *slog.Logger, nil = silent
//	})
//	neg, err := r.Negotiate(ctx)     // VCA → frozen spdm.Negotiated
//	dg, err := r.Digests(ctx)        // provisioned slots
//	cc, err := r.Certificate(ctx, 0) // chain buffer (cache hit = no GET_CERTIFICATE)
//	rep, err := r.VerifyChain(0)     // x509 verdict, CMA SAN, DMTF device-info
//	ch, err := r.Challenge(ctx, 0, spdm.SummaryAll)
//	m, err := r.Measurements(ctx, spdm.MeasOpts{Index: spdm.MeasOpAll, Signed: true})
//	blocks, last, err := r.MeasurementsOneByOne(ctx, spdm.MeasOpts{Signed: true}) // fallback
//	p, err := r.VendorDefined(ctx, 3, []byte{1, 0}, payload)                     // outside a session
//	kp, err := r.GetKeyPairInfo(ctx, 1)                                          // 1.3, GET_KEY_PAIR_INFO_CAP
//	ok := rep.CMASAN.Matches(spdm.FunctionID{VendorID: 0x8086, ...})             // exact SAN for the real IDs
//
// AsymAlgos and HashAlgos are masked to what the package can verify, so
// nothing unverifiable is ever offered. A new DIGESTS that changes a slot's
// digest drops that slot's chain.
//
// # What is verified
//
//   - VCA: the highest common version within [MinVersion, MaxVersion]; the
//     responder must select exactly one offered base asymmetric algorithm
//     and base hash, a DMTF measurement specification and one measurement
//     hash when it has MEAS_CAP, and nothing we did not offer (AlgStruct
//     tables, other parameters, extended algorithms). A CTExponent beyond
//     2^23 µs (PCIe CMA) is refused.
//   - Every response must carry the negotiated version and the code that
//     answers the request (or ERROR).
//   - Certificates: portion/remainder arithmetic (offset + portion +
//     remainder = total ≤ 65535), the slot echo, the chain buffer's Length,
//     the DIGESTS digest = the hash of the buffer, RootHash = the hash of a
//     self-issued first certificate. Chains are cached by digest.
//   - Chain (VerifyChain, which sends nothing): anchors are matched by raw
//     bytes or public key (a root inside the chain) or by signature plus
//     RootHash (a root outside it), never by name; each certificate must be
//     signed by the previous one; crypto/x509 checks validity at
//     Options.Now, CA flags and path constraints with ExtKeyUsageAny; the
//     leaf must not be a CA and must have KeyUsage digitalSignature and a key
//     of the negotiated algorithm; a leaf whose EKU has the SPDM
//     requester-auth OID (1.3.6.1.4.1.412.274.4) without responder-auth
//     (.3) is refused; TLS EKUs are ignored. The CMA SAN (otherName
//     2.23.147, Vendor=%04x:Device=%04x:CC=%06x:REV=%02x[:SSVID=%04x:SSID=%04x][:%016x],
//     lower-case hex) and the DMTF device-info otherName
//     (1.3.6.1.4.1.412.274.1) are reported separately; their absence is not
//     an error (policy decides).
//   - CHALLENGE: a fresh 32-byte nonce (and, in 1.3, an 8-byte
//     RequesterContext, which must be echoed) from Options.Rand; the slot and
//     slot mask; CertChainHash = the hash of the slot's chain; the signature
//     over M1 = VCA ‖ GET_DIGESTS/DIGESTS/GET_CERTIFICATE/CERTIFICATE since
//     VCA (or the last CHALLENGE) ‖ CHALLENGE ‖ CHALLENGE_AUTH without the
//     signature.
//   - MEASUREMENTS: L1 = (1.2+: VCA ‖) every GET_MEASUREMENTS/MEASUREMENTS
//     pair since the last reset, the last response without its signature;
//     the log resets on any other request, after each signed response and
//     after an ERROR to GET_MEASUREMENTS. One block with the index asked
//     for, unique indices, digest values of the negotiated measurement-hash
//     size. DMTF blocks (types 0–10) are parsed: device mode (4×u32), SVN
//     (u64), firmware version string; unknown ones are kept raw.
//   - Signatures: 1.0 and 1.1 sign Hash(M); 1.2+ sign Hash(prefix ‖
//     Hash(M)) with the 100-byte combined prefix (dmtf-spdm-v1.X.* four
//     times, zeros, context); Ed25519 signs prefix ‖ Hash(M).
//   - Retries: Busy → bounded retries with doubling backoff;
//     ResponseNotReady → RESPOND_IF_READY after 2^RDExponent µs (bounded
//     count and wait, request code and RDTM checked); RequestResynch → VCA
//     again once, then the step again; ERROR LargeResponse → CHUNK_GET; a
//     request above the peer's DataTransferSize → CHUNK_SEND (1.2+, both
//     sides CHUNK_CAP). Every exchange is bounded by ctx and by the
//     transport's allowance + ST1 (100 ms) or CT.
//
// # Algorithms
//
// Signatures: ecdsa-p256, ecdsa-p384, ecdsa-p521 (r‖s big-endian),
// rsassa-2048/3072/4096 (PKCS #1 v1.5), rsapss-2048/3072/4096 (MGF1, salt =
// hash length), ed25519 (1.2+). Hashes: sha-256, sha-384, sha-512, sha3-256,
// sha3-384, sha3-512. Anything else negotiated (SM2, Ed448, SM3) is an
// error, never a skip. The names (AsymAlgo.String, …) are the ones evidence
// JSON uses: ecdsa-p384, sha-384, secp384r1, aes-256-gcm.
//
// # Errors
//
// The source of a failure picks its type:
//
//   - *ResponderError{Request, Code, Data, Extended}: the device answered
//     ERROR; errors.Is(err, ErrorCodeBusy) works (ErrorCode is an error).
//     Not sticky.
//   - *ProtocolError{Request, Reason}: we caught the device breaking the
//     protocol. Sticky.
//   - *DecodeError{Msg, Field, Offset}: bytes that do not decode (names the
//     field and offset). Sticky.
//   - *VerificationError{Step, Err}: Step is digest, root-hash,
//     cert-chain-hash, challenge-signature, measurements-signature or
//     certificate-chain. Sticky, except certificate-chain.
//   - *ChainError{Slot, Kind, Err}: inside VerificationError{Step:
//     "certificate-chain"}; Kind is untrusted-root, broken-chain, expired,
//     key-usage or malformed (the same names as attest's ChainError kinds).
//     Not sticky.
//
// A sticky error (transport and context failures are sticky too) is
// returned by every later call until Negotiate starts over.
//
// # Evidence for offline checks
//
// ChallengeResult and MeasurementsResult keep Transcript (M1 or L1 without
// the signature, the exact unpadded bytes), Signature, our Nonce and the
// responder's; CertChain.Buffer is the slot's chain buffer;
// Requester.VCA returns the VCA bytes and Requester.Stats the round trips
// and bytes each way. VerifyTranscriptSignature(kind, version, asym, hash,
// chainBuffer, transcript, sig) re-checks a bundle without a device.
//
// # Secure sessions
//
//	spdm.EnableSessions(&opts, inClear)         // KEY_EX/ENCRYPT/MAC/HBEAT/KEY_UPD caps, ECDHE P-256/P-384, 3 AEADs
//	r := spdm.NewRequester(cmaExchanger, &opts) // VCA, DIGESTS, CERTIFICATE, VerifyChain as above, then:
//	s, err := r.KeyExchange(ctx, spdm.KeyExchangeOpts{Slot: 0, MeasurementSummaryType: spdm.SummaryAll,
//		SessionPolicy: spdm.SessionPolicyTerminateOnUpdate, SecuredTransport: securedExchanger}) // DOE type 0x02
//	r, s, err := spdm.OpenSession(ctx, cma, securedCMA, &opts, slot) // all of the above; ErrChainNotVerified if the chain fails
//	s.ID(); s.Info()                                         // SessionInfo{ID, Version, SecuredVersion, AEAD, DHE, Hash, Slot, ...}
//	payload, err := s.VendorDefined(ctx, 3, []byte{1, 0}, p) // satisfies tdisp.Session
//	m, err := s.Measurements(ctx, spdm.MeasOpts{Index: 0xFF, Signed: true}) // L1 = VCA ‖ the session's own log
//	err = s.Heartbeat(ctx)
//	err = s.KeyUpdate(ctx, spdm.KeyUpdateAllKeys) // or KeyUpdateKey; then VerifyNewKey under the new keys
//	err = s.End(ctx)                              // END_SESSION (EndWith(ctx, true): also clear negotiated state)
//	s.Remaining(); s.Stats(); s.Err()
//
// KEY_EXCHANGE carries the secured-message versions 1.0–1.2 in OpaqueData
// (general format 1 when negotiated in 1.2+, the DSP0277 header form
// otherwise). KEY_EXCHANGE_RSP's signature is verified over A ‖ H(cert chain
// buffer) ‖ K with the slot's leaf key; TH1 gives the handshake keys;
// ResponderVerifyData is checked unless both sides have
// HANDSHAKE_IN_THE_CLEAR_CAP; FINISH then goes in the clear, otherwise it is
// sealed with the handshake keys on the secured transport; TH2 gives the
// data keys. Mutual authentication, PSK and MAC-only sessions are refused.
//
// A Session is independent of the Requester (which stays usable for plain
// requests and further sessions) and is safe for concurrent use (one mutex
// per session; requests inside one session are strictly sequential).
//
// Any record, transport or protocol failure kills the session: a
// *SessionError{SessionID, Op, Err} with errors.Is(err,
// secured.ErrSessionDead); errors.As reaches the cause: a *secured.Error
// (Reason secured.ReasonAuthFailed for a bad tag,
// secured.ReasonWrongSessionID, …), a *KeyUpdateError (new keys not confirmed), or a *VerificationError{Step:
// "key-exchange-signature" or "responder-verify-data"} while establishing.
// A responder ERROR inside a session leaves it usable. After End:
// ErrSessionEnded.
//
// The responder side (the software device): ResponderConfig.Session =
// ResponderSessionConfig{DHE, AEAD, HandshakeInClear, HeartbeatPeriod,
// MaxSessions, Ended, Faults}; (*Responder).RespondSecured(ctx, record)
// answers the secured-CMA feature (a record that does not open kills its
// session and is answered with a plain ERROR DecryptError);
// SessionIDFromContext(ctx) tells a VENDOR_DEFINED hook which session it
// runs in. A session whose requester sends nothing for more than twice the
// HeartbeatPeriod announced in KEY_EXCHANGE_RSP is ended (libspdm's
// watchdog factor; clock ResponderSessionConfig.Now); period 0 never
// expires.
//
// Key pairs (1.3): a multi-key responder (ResponderConfig.MultiKey)
// advertises GET_KEY_PAIR_INFO_CAP and answers GET_KEY_PAIR_INFO for each
// distinct key (KeyPairIDs 1..n, the same IDs its DIGESTS report);
// Requester.GetKeyPairInfo decodes KEY_PAIR_INFO strictly (keypairinfo.go).
// SET_KEY_PAIR_INFO is not implemented (UnsupportedRequest).
//
// # Tests
//
// go test ./spdm decodes every SPDM message of the DMTF spdm-emu recordings
// in spdm/testdata/spdm-ref/ (see its README) and re-encodes them byte for
// byte; it replays five recorded connections (1.1 P-256, 1.2 P-384, 1.3
// P-384 multi-key, 1.2 RSA-PSS-3072, 1.2 one-by-one with 9 signed
// responses), checking that every request we send equals the recorded one
// and that every recorded signature verifies through our transcripts; and it
// runs negative controls, OpenSSL-made signature known-answer vectors
// (spdm/testdata/kat/gen.sh), and fake-responder tests for Busy,
// ResponseNotReady, LargeResponse, CHUNK_SEND, RequestResynch and timeouts.
//
// Sessions are replayed byte for byte from spdm-emu runs 6 (handshake in the
// clear, 23 sealed IDE_KM/TDISP messages) and 6b (handshake encrypted, two
// sessions, signed measurements and END_SESSION). The ephemeral key is not
// recorded, so an unexported hook sends the recorded ExchangeData and uses
// the logged DHE secret; every request we seal equals the recorded record
// byte for byte, and a tampered signature, verify data, tag or session ID is
// each caught by its check. Requester and responder also run in loopback for
// SPDM 1.1–1.3 × 3 AEADs × a clear or encrypted handshake, with four
// concurrent sessions, and with each session fault.
//
// Every decoder has a fuzz target (scripts/fuzz-all), FuzzKeyExchangeMessages,
// FuzzOpaqueData and FuzzKeyPairInfoRsp among them. go test ./spdm -run XXX -bench
// ReplayFullFlow measures the full flow.
package spdm

package spdm

import "slices"

// Transcripts (DSP0274 1.3.0 §10.x "Transcript and transcript hash
// calculation rules"; SPEC-FACTS §2.7, §2.11). Both sides of a connection
// keep the same logs, of messages exactly as sent and received (raw bytes,
// never re-marshalled: STYLE §2.5), and sign or MAC their hashes:
//
//	M1 = A ‖ B ‖ C                     CHALLENGE_AUTH signature
//	L1 = [A (1.2+)] ‖ L                MEASUREMENTS signature
//	TH = A ‖ [D (multi-key)] ‖ Ct ‖ K ‖ F
//	                                   KEY_EXCHANGE_RSP signature, TH1, TH2
//
// A is VCA (GET_VERSION … ALGORITHMS); B the GET_DIGESTS/DIGESTS and
// GET_CERTIFICATE/CERTIFICATE pairs since VCA or the last CHALLENGE; C the
// CHALLENGE and CHALLENGE_AUTH without its signature; L the consecutive
// GET_MEASUREMENTS/MEASUREMENTS pairs, the last without its signature; D
// (1.3 multi-key connections) the first DIGESTS response outside a session
// since VCA;
// Ct the hash of the slot's certificate chain buffer; K the KEY_EXCHANGE
// pair, and F the FINISH pair. The requester and the responder both use
// these types, so the order lives in this file only.

// transcript is one connection's message log outside sessions: A, B, L and
// D. The zero value is the state before GET_VERSION.
type transcript struct {
	a []byte // message A: GET_VERSION … ALGORITHMS
	b []byte // message B: digests/certificates since VCA or the last CHALLENGE
	l []byte // L1/L2: GET_MEASUREMENTS/MEASUREMENTS since the last reset
	d []byte // message D (multi-key, 1.3): the first DIGESTS response outside a session since VCA
}

// addVCA appends one VCA request/response pair to message A.
func (t *transcript) addVCA(req, rsp []byte) { t.a = append(append(t.a, req...), rsp...) }

// vca returns message A (shared, not copied).
func (t *transcript) vca() []byte { return t.a }

// addDigests appends a GET_DIGESTS/DIGESTS pair to message B; in a
// multi-key connection the first DIGESTS response since VCA also becomes
// message D, and later ones leave D as it is. That is DMTF libspdm's rule
// on both sides (library/spdm_common_lib/libspdm_com_context_data.c,
// libspdm_append_message_d: "Only the first message D after VCA in
// connection counts"; called by the requester's and the responder's
// DIGESTS handlers outside sessions only, reset with VCA).
func (t *transcript) addDigests(req, rsp []byte, multiKey bool) {
	if multiKey && t.d == nil {
		t.d = slices.Clone(rsp)
	}
	t.b = append(append(t.b, req...), rsp...)
}

// addCertificate appends a GET_CERTIFICATE/CERTIFICATE pair to message B.
func (t *transcript) addCertificate(req, rsp []byte) { t.b = append(append(t.b, req...), rsp...) }

// m1 returns M1 = A ‖ B ‖ C, C being the CHALLENGE req and the
// CHALLENGE_AUTH rsp up to its signature, as a new slice.
func (t *transcript) m1(req, rsp []byte) []byte { return slices.Concat(t.a, t.b, req, rsp) }

// resetB restarts message B, as every CHALLENGE does.
func (t *transcript) resetB() { t.b = nil }

// addMeasurements appends a GET_MEASUREMENTS/MEASUREMENTS pair to L (rsp
// without its signature when signed).
func (t *transcript) addMeasurements(req, rsp []byte) { t.l = append(append(t.l, req...), rsp...) }

// resetL restarts L: any request other than GET_MEASUREMENTS, an ERROR to
// GET_MEASUREMENTS, and every signed MEASUREMENTS.
func (t *transcript) resetL() { t.l = nil }

// takeL1 returns L1/L2 = [A (1.2+)] ‖ L for a signed MEASUREMENTS whose
// pair is already in L, and restarts L.
func (t *transcript) takeL1(v Version) []byte {
	l := t.l
	t.l = nil
	if v >= Version12 {
		return slices.Concat(t.a, l)
	}
	return l
}

// keyExchange starts a session's TH with A ‖ [D, multi-key] ‖ Ct ‖ K:
// ct is the hash of the slot's chain buffer, req the KEY_EXCHANGE and rsp
// the KEY_EXCHANGE_RSP up to its signature. Hash h must be supported.
func (t *transcript) keyExchange(h HashAlgo, multiKey bool, ct, req, rsp []byte) *sessionTranscript {
	var d []byte
	if multiKey {
		d = t.d // libspdm: message D follows A
	}
	return &sessionTranscript{hash: h, th: slices.Concat(t.a, d, ct, req, rsp)}
}

// sessionTranscript is one session's handshake transcript TH. Its hash
// right after KEY_EXCHANGE_RSP's signature is TH1 (handshake keys); after
// FINISH_RSP, TH2 (data keys).
type sessionTranscript struct {
	hash HashAlgo
	th   []byte
}

// add appends message bytes: the KEY_EXCHANGE_RSP signature and
// ResponderVerifyData, then FINISH and FINISH_RSP.
func (s *sessionTranscript) add(msg ...[]byte) {
	for _, m := range msg {
		s.th = append(s.th, m...)
	}
}

// sum returns the hash of TH ‖ more without adding more: with nothing,
// what the KEY_EXCHANGE_RSP signature covers, TH1 or TH2 depending on
// where the handshake is; with a FINISH or FINISH_RSP header, what its
// verify data MACs.
func (s *sessionTranscript) sum(more ...[]byte) []byte {
	h, _ := hashOf(s.hash, append([][]byte{s.th}, more...)...)
	return h
}

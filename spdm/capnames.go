package spdm

var capNames = []struct {
	mask, val uint32
	name      string
}{
	{CapCache, CapCache, "cache"}, {CapCert, CapCert, "cert"}, {CapChal, CapChal, "chal"},
	{CapMeasMask, CapMeasNoSig, "meas-no-sig"}, {CapMeasMask, CapMeasSig, "meas-sig"}, {CapMeasFresh, CapMeasFresh, "meas-fresh"},
	{CapEncrypt, CapEncrypt, "encrypt"}, {CapMAC, CapMAC, "mac"}, {CapMutAuth, CapMutAuth, "mut-auth"},
	{CapKeyEx, CapKeyEx, "key-ex"}, {CapPSKMask, 1 << 10, "psk"}, {CapPSKMask, 2 << 10, "psk-with-context"},
	{CapEncap, CapEncap, "encap"}, {CapHBeat, CapHBeat, "hbeat"}, {CapKeyUpd, CapKeyUpd, "key-upd"},
	{CapHandshakeInClear, CapHandshakeInClear, "handshake-in-the-clear"}, {CapPubKeyID, CapPubKeyID, "pub-key-id"},
	{CapChunk, CapChunk, "chunk"}, {CapAliasCert, CapAliasCert, "alias-cert"}, {1 << 19, 1 << 19, "set-cert"},
	{1 << 20, 1 << 20, "csr"}, {1 << 21, 1 << 21, "cert-install-reset"}, {CapEPInfoMask, 1 << 22, "ep-info-nosig"},
	{CapEPInfoMask, 2 << 22, "ep-info-sig"}, {1 << 24, 1 << 24, "mel"}, {1 << 25, 1 << 25, "event"},
	{CapMultiKeyMask, 1 << 26, "multi-key-only"}, {CapMultiKeyMask, 2 << 26, "multi-key-negotiated"},
	{CapGetKeyPairInfo, CapGetKeyPairInfo, "get-key-pair-info"}, {CapSetKeyPairInfo, CapSetKeyPairInfo, "set-key-pair-info"},
}

// capNames is the one table of capability flag names (DSP0274
// CAPABILITIES Flags); Evidence JSON and the docs use these spellings.

// CapabilityNames lists responder capability flags as names ("cert",
// "chal", "meas-sig", ...), in flag order, for evidence and people; never nil.
func CapabilityNames(flags uint32) []string {
	out := []string{}
	for _, c := range capNames {
		if flags&c.mask == c.val {
			out = append(out, c.name)
		}
	}
	return out
}

#!/usr/bin/env bash
# Regenerates the signature known-answer vectors with the OpenSSL CLI only
# (independent of the Go code under test). Keys are fixed test-only keys,
# generated once and checked in; rerunning re-signs (ECDSA and PSS are
# randomised, so their signatures change; RSASSA and Ed25519 do not).
#
# For each case: M is the transcript (the ASCII text in m.txt), TH = Hash(M).
# SPDM 1.2+ signs  prefix ‖ TH  where prefix = "dmtf-spdm-v1.2.*"×4, zero
# bytes, and the context "responder-challenge_auth signing" (100 bytes);
# RSA/ECDSA hash that message again, Ed25519 signs it directly.
# SPDM 1.1 signs M (i.e. the primitive gets Hash(M)).
set -euo pipefail
cd "$(dirname "$0")"
[ -f p256.pem ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256.pem
[ -f p384.pem ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.pem
[ -f p521.pem ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out p521.pem
[ -f rsa2048.pem ] || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2048.pem
[ -f rsa3072.pem ] || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out rsa3072.pem
[ -f rsa4096.pem ] || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out rsa4096.pem
[ -f ed25519.pem ] || openssl genpkey -algorithm ED25519 -out ed25519.pem
printf 'vfio-gate SPDM signature known-answer transcript' > m.txt

# prefix12.bin: the combined SPDM 1.2 prefix for CHALLENGE_AUTH.
ctx='responder-challenge_auth signing'
{ for i in 1 2 3 4; do printf 'dmtf-spdm-v1.2.*'; done
  head -c $((100 - 64 - ${#ctx})) /dev/zero; printf '%s' "$ctx"; } > prefix12.bin

signed12() { # hash → file with prefix ‖ Hash(M)
  { cat prefix12.bin; openssl dgst -"$1" -binary m.txt; } > "signed12-$1.bin"
}
signed12 sha256; signed12 sha384; signed12 sha512

# ECDSA: DER → r‖s fixed width.
ecdsa() { # key hash width out input
  openssl dgst -"$2" -sign "$1" -out sig.der "$5"
  openssl asn1parse -inform DER -in sig.der | awk -F: '/INTEGER/{print $NF}' > rs.txt
  python3 - "$3" "$4" <<'PY'
import sys
w=int(sys.argv[1]); r,s=[int(x,16) for x in open('rs.txt').read().split()]
open(sys.argv[2],'wb').write(r.to_bytes(w,'big')+s.to_bytes(w,'big'))
PY
  rm -f sig.der rs.txt
}
ecdsa p256.pem sha256 32 ecdsa-p256-v12.sig signed12-sha256.bin
ecdsa p384.pem sha384 48 ecdsa-p384-v12.sig signed12-sha384.bin
ecdsa p521.pem sha512 66 ecdsa-p521-v12.sig signed12-sha512.bin
ecdsa p256.pem sha256 32 ecdsa-p256-v11.sig m.txt
openssl dgst -sha384 -sign rsa3072.pem -out rsassa-3072-v12.sig signed12-sha384.bin
openssl dgst -sha256 -sign rsa2048.pem -out rsassa-2048-v12.sig signed12-sha256.bin
openssl dgst -sha512 -sign rsa4096.pem -out rsassa-4096-v12.sig signed12-sha512.bin
openssl dgst -sha384 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:48 -sign rsa3072.pem -out rsapss-3072-v12.sig signed12-sha384.bin
openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -sign rsa2048.pem -out rsapss-2048-v12.sig signed12-sha256.bin
openssl dgst -sha512 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:64 -sign rsa4096.pem -out rsapss-4096-v12.sig signed12-sha512.bin
openssl pkeyutl -sign -rawin -inkey ed25519.pem -in signed12-sha512.bin -out ed25519-v12.sig

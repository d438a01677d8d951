#!/usr/bin/env python3
"""Independent known-answer vectors for spdm/secured (kat-independent.json).

Written from DSP0274/DSP0277 (SPEC-FACTS §2.12-2.13) with Python `cryptography`,
sharing no code with the Go package. Inputs are fixed byte patterns, so the
output is deterministic: `python3 gen_kat.py > kat-independent.json`.
"""
import hashlib, hmac, json, struct
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

HASHES = {"SHA256": (hashes.SHA256, hashlib.sha256), "SHA384": (hashes.SHA384, hashlib.sha384),
          "SHA512": (hashes.SHA512, hashlib.sha512)}
AEADS = {"AES128GCM": (16, AESGCM), "AES256GCM": (32, AESGCM), "CHACHA20POLY1305": (32, ChaCha20Poly1305)}

def pattern(n, seed):
    return bytes((seed + 7 * i) & 0xFF for i in range(n))

def run(version, hname, aname):
    hcls, hlib = HASHES[hname]
    H = hlib().digest_size
    klen, acls = AEADS[aname]
    label = b"spdm1.%d " % (version & 0xF)
    def expand(secret, lab, ctx, n):
        info = struct.pack("<H", n) + label + lab + ctx
        return HKDFExpand(hcls(), n, info).derive(secret)
    def extract(salt, ikm):
        return hmac.new(salt, ikm, hlib).digest()
    shared = pattern(H, 0x11)
    th1, th2 = pattern(H, 0x51), pattern(H, 0xA3)
    hs = extract(bytes(H), shared)
    req_hs = expand(hs, b"req hs data", th1, H)
    rsp_hs = expand(hs, b"rsp hs data", th1, H)
    fin_req = expand(req_hs, b"finished", b"", H)
    fin_rsp = expand(rsp_hs, b"finished", b"", H)
    ms = extract(expand(hs, b"derived", b"", H), bytes(H))
    req_app = expand(ms, b"req app data", th2, H)
    rsp_app = expand(ms, b"rsp app data", th2, H)
    exp = expand(ms, b"exp master", th2, H)
    def kiv(s):
        return expand(s, b"key", b"", klen), expand(s, b"iv", b"", 12)
    def seal(sid, secret, seq, msg):
        key, iv = kiv(secret)
        nonce = bytes(a ^ b for a, b in zip(iv, struct.pack("<Q", seq) + bytes(4)))
        pt = struct.pack("<H", len(msg)) + msg
        hdr = struct.pack("<IH", sid, len(pt) + 16)
        return (hdr + acls(key).encrypt(nonce, pt, hdr)).hex()
    sid = 0xFFFDFFFE
    msgs = [bytes([version, 0xFE, 0, 0]) + pattern(n, n) for n in (0, 5, 60)]
    records = []
    for phase, rq, rp in (("handshake", req_hs, rsp_hs), ("data", req_app, rsp_app),
                          ("update1", expand(req_app, b"traffic upd", b"", H), expand(rsp_app, b"traffic upd", b"", H))):
        for seq, m in enumerate(msgs):
            records.append({"phase": phase, "dir": "request", "seq": seq, "spdm": m.hex(), "record": seal(sid, rq, seq, m)})
            records.append({"phase": phase, "dir": "response", "seq": seq, "spdm": m.hex(), "record": seal(sid, rp, seq, m)})
    k = lambda s: {"key": kiv(s)[0].hex(), "iv": kiv(s)[1].hex()}
    return {
        "version": version, "hash": hname, "aead": aname, "session_id": sid,
        "shared_secret": shared.hex(), "th1_hash": th1.hex(), "th2_hash": th2.hex(),
        "handshake_secret": hs.hex(), "request_handshake_secret": req_hs.hex(), "response_handshake_secret": rsp_hs.hex(),
        "request_finished_key": fin_req.hex(), "response_finished_key": fin_rsp.hex(),
        "request_verify_data": hmac.new(fin_req, th2, hlib).hexdigest(),
        "responder_verify_data": hmac.new(fin_rsp, th1, hlib).hexdigest(),
        "master_secret": ms.hex(), "request_data_secret": req_app.hex(), "response_data_secret": rsp_app.hex(),
        "export_master_secret": exp.hex(),
        "request_handshake": k(req_hs), "response_handshake": k(rsp_hs),
        "request_data": k(req_app), "response_data": k(rsp_app),
        "records": records,
    }

print(json.dumps({"source": "gen_kat.py with Python cryptography (independent of the Go code)",
                  "vectors": [run(0x12, "SHA256", "AES128GCM"), run(0x13, "SHA384", "CHACHA20POLY1305"),
                              run(0x11, "SHA512", "AES256GCM")]}, indent=1))

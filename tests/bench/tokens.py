"""Keys and JWTs for the benchmark, made at bench time.

Python's standard library signs HS256 itself; RS256 and ES256 signatures come
from the openssl command line (`openssl dgst -sign`), EdDSA ones from
`openssl pkeyutl -sign -rawin`, one process per token.
Nothing here is secret: the keys live in the bench's scratch directory and
die with it.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess


def b64url(data):
    """Base64url without padding, as JWS wants it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signing_input(header, claims):
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return h + "." + p


def make_rsa_key(directory, name="rs256", bits=2048):
    """Writes NAME.key (private) and NAME.pub.pem (public); returns both paths."""
    key = os.path.join(directory, name + ".key")
    pub = os.path.join(directory, name + ".pub.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:%d" % bits, "-out", key],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub],
                   check=True, capture_output=True)
    return key, pub


def make_ec_key(directory, name="es256"):
    """P-256 key pair for ES256: NAME.key and NAME.pub.pem."""
    key = os.path.join(directory, name + ".key")
    pub = os.path.join(directory, name + ".pub.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", key],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub],
                   check=True, capture_output=True)
    return key, pub


def make_ed25519_key(directory, name="eddsa"):
    """Ed25519 key pair for EdDSA: NAME.key and NAME.pub.pem."""
    key = os.path.join(directory, name + ".key")
    pub = os.path.join(directory, name + ".pub.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", key],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub],
                   check=True, capture_output=True)
    return key, pub


def mint_hs256(secret, claims, kid=None):
    header = {"alg": "HS256", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    si = _signing_input(header, claims)
    sig = hmac.new(secret.encode(), si.encode(), hashlib.sha256).digest()
    return si + "." + b64url(sig)


def _der_ecdsa_to_raw(der, size=32):
    """ECDSA-Sig-Value (SEQUENCE of two INTEGERs) to JWS's raw R||S."""
    if der[0] != 0x30:
        raise ValueError("not a DER sequence")
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = b""
    for _ in range(2):
        if der[i] != 0x02:
            raise ValueError("not a DER integer")
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\x00")
        out += v.rjust(size, b"\x00")
        i += 2 + n
    return out


def mint_openssl(alg, key, claims_list, scratch, kid=None):
    """Signs one token per claims dict with `openssl dgst -sign` (RS256 or
    ES256) or `openssl pkeyutl -sign -rawin` (EdDSA), one process per token:
    for a few hundred tokens at most."""
    header = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    os.makedirs(scratch, exist_ok=True)
    path = os.path.join(scratch, "signing-input")
    tokens = []
    for claims in claims_list:
        si = _signing_input(header, claims)
        with open(path, "w") as f:
            f.write(si)
        if alg == "EdDSA":
            cmd = ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", path]
        else:
            cmd = ["openssl", "dgst", "-sha256", "-sign", key, path]
        sig = subprocess.run(cmd, check=True, capture_output=True).stdout
        if alg.startswith("ES"):
            sig = _der_ecdsa_to_raw(sig)
        tokens.append(si + "." + b64url(sig))
    os.unlink(path)
    return tokens


# DER DigestInfo prefix of SHA-256 (RFC 8017, 9.2 note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


class RsaSigner:
    """RS256 in pure Python (RSASSA-PKCS1-v1_5 with the CRT), from the key's
    numbers as `openssl rsa -text` prints them: hundreds of distinct tokens
    (the cache-miss path) without a process each."""

    def __init__(self, key):
        text = subprocess.run(["openssl", "rsa", "-in", key, "-text", "-noout"],
                              check=True, capture_output=True, text=True).stdout

        def field(name):
            m = re.search(r"^%s:\s*\n((?:\s+[0-9a-f:]+\n)+)" % name, text, re.M)
            return int(re.sub(r"[\s:]", "", m.group(1)), 16)
        self.n = field("modulus")
        self.p, self.q = field("prime1"), field("prime2")
        self.dp, self.dq, self.qi = field("exponent1"), field("exponent2"), field("coefficient")
        self.k = (self.n.bit_length() + 7) // 8

    def sign(self, data):
        t = _SHA256_DIGEST_INFO + hashlib.sha256(data).digest()
        em = b"\x00\x01" + b"\xff" * (self.k - len(t) - 3) + b"\x00" + t
        m = int.from_bytes(em, "big")
        m1, m2 = pow(m, self.dp, self.p), pow(m, self.dq, self.q)
        s = m2 + ((self.qi * (m1 - m2)) % self.p) * self.q
        return s.to_bytes(self.k, "big")

    def mint(self, claims, kid=None):
        header = {"alg": "RS256", "typ": "JWT"}
        if kid:
            header["kid"] = kid
        si = _signing_input(header, claims)
        return si + "." + b64url(self.sign(si.encode()))

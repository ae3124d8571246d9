"""DSA-SHA1 (signing type 0) over I2P's fixed 1024-bit group (cryptography.rst "DSA").

Keys and signatures are raw big-endian integers: private x (20 bytes),
public y (128 bytes), signature r || s (20 + 20 bytes).
"""
from __future__ import annotations

import functools
import os
import warnings

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, utils

from core.data.errors import CryptoError

# cryptography 51+ warns at every use of its DSA classes; I2P needs DSA only to verify (and make) the
# signing type 0 of old identities, so that one warning is silenced where it is raised: here.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=__name__)

P = int(
    "9C05B2AA960D9B97B8931963C9CC9E8C3026E9B8ED92FAD0A69CC886D5BF8015"
    "FCADAE31A0AD18FAB3F01B00A358DE237655C4964AFAA2B337E96AD316B9FB1C"
    "C564B5AEC5B69A9FF6C3E4548707FEF8503D91DD8602E867E6D35D2235C1869C"
    "E2479C3B9D5401DE04E0727FB33D6511285D4CF29538D9E3B6051F5B22CC1C93", 16)
Q = int("A5DFC28FEF4CA1E286744CD8EED9D29D684046B7", 16)
G = int(
    "0C1F4D27D40093B429E962D7223824E0BBC47E7C832A39236FC683AF84889581"
    "075FF9082ED32353D4374D7301CDA1D23C431F4698599DDA02451824FF369752"
    "593647CC3DDC197DE985E43D136CDCFC6BD5409CD2F450821142A5E6F8EB1C3A"
    "B5D0484B8129FCF17BCE4F7F33321C3CB3DBB14A905E7B2B3E93BE4708CBCC82", 16)

PUBLIC_KEY_LEN = 128
PRIVATE_KEY_LEN = 20
SIGNATURE_LEN = 40



@functools.cache
def _parameters() -> dsa.DSAParameterNumbers:
    return dsa.DSAParameterNumbers(P, Q, G)

_SHA1 = hashes.SHA1()


def public_from_private(private_key: bytes) -> bytes:
    return pow(G, _private_scalar(private_key), P).to_bytes(PUBLIC_KEY_LEN, "big")


def _private_scalar(private_key: bytes) -> int:
    x = int.from_bytes(private_key, "big")
    if len(private_key) != PRIVATE_KEY_LEN or not 0 < x < Q:
        raise CryptoError("DSA private key must be 20 bytes encoding 0 < x < q")
    return x


@functools.lru_cache(maxsize=16)
def _signing_key(private_key: bytes) -> dsa.DSAPrivateKey:
    x = _private_scalar(private_key)
    return dsa.DSAPrivateNumbers(x, dsa.DSAPublicNumbers(pow(G, x, P), _parameters())).private_key()


def sign(private_key: bytes, data: bytes) -> bytes:
    r, s = utils.decode_dss_signature(_signing_key(bytes(private_key)).sign(data, _SHA1))
    return r.to_bytes(20, "big") + s.to_bytes(20, "big")


def verify(public_key: bytes, data: bytes, signature: bytes) -> bool:
    if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    y = int.from_bytes(public_key, "big")
    r = int.from_bytes(signature[:20], "big")
    s = int.from_bytes(signature[20:], "big")
    if not (1 < y < P - 1 and 0 < r < Q and 0 < s < Q):
        return False
    try:
        key = dsa.DSAPublicNumbers(y, _parameters()).public_key()
        key.verify(utils.encode_dss_signature(r, s), data, _SHA1)
    except (InvalidSignature, ValueError):
        return False
    return True


def generate(rng=os.urandom) -> tuple[bytes, bytes]:
    """A (private x, public y) pair with x uniform in [1, q-1] from the injected RNG."""
    for _ in range(256):
        x = int.from_bytes(rng(PRIVATE_KEY_LEN), "big")
        if 0 < x < Q:
            private_key = x.to_bytes(PRIVATE_KEY_LEN, "big")
            return private_key, public_from_private(private_key)
    raise CryptoError("RNG gave no usable DSA private key in 256 tries")

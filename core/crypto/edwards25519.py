"""Edwards25519: Ed25519 verification (libsodium) and group arithmetic (RFC 8032 section 5.1).

The pure-Python arithmetic is variable-time: it handles public values only
(point decoding, addition, cofactored checks), never a per-packet path.
"""
from __future__ import annotations

import nacl.bindings
import nacl.exceptions

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, -1, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

# Points are extended homogeneous coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, x*y = T/Z.
Point = tuple[int, int, int, int]

IDENTITY: Point = (0, 1, 1, 0)
_BY = 4 * pow(5, -1, P) % P


def _recover_x(y: int, sign: int) -> int | None:
    """RFC 8032 5.1.3 steps 2-4; None when no x exists or x = 0 with sign 1."""
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x


_BX = _recover_x(_BY, 0)
BASE: Point = (_BX, _BY, 1, _BX * _BY % P)


def decode_point(data: bytes) -> Point | None:
    """A point from its 32-byte encoding; None for a non-canonical y or a y off the curve."""
    if len(data) != 32:
        return None
    value = int.from_bytes(data, "little")
    y = value & ((1 << 255) - 1)
    x = _recover_x(y, value >> 255)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def encode_point(point: Point) -> bytes:
    x, y, z, _ = point
    z_inv = pow(z, -1, P)
    x = x * z_inv % P
    y = y * z_inv % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def add(p1: Point, p2: Point) -> Point:
    # RFC 8032 5.1.4, "add-2008-hwcd-3"
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def double(p1: Point) -> Point:
    # RFC 8032 5.1.4, "dbl-2008-hwcd"
    x1, y1, z1, _ = p1
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1)
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def negate(point: Point) -> Point:
    x, y, z, t = point
    return ((-x) % P, y, z, (-t) % P)


def multiply(scalar: int, point: Point) -> Point:
    """[scalar] point by double-and-add (scalar taken as a non-negative integer, not reduced)."""
    result = IDENTITY
    addend = point
    while scalar > 0:
        if scalar & 1:
            result = add(result, addend)
        addend = double(addend)
        scalar >>= 1
    return result


def multiply_base(scalar: int) -> Point:
    return multiply(scalar % L, BASE)


def is_identity(point: Point) -> bool:
    x, y, z, _ = point
    return x % P == 0 and (y - z) % P == 0


def multiply_by_cofactor(point: Point) -> Point:
    return double(double(double(point)))


def scalar_from_bytes(data: bytes) -> int:
    return int.from_bytes(data, "little")


def scalar_to_bytes(scalar: int) -> bytes:
    return (scalar % L).to_bytes(32, "little")


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 Ed25519 verification; False for any bad key, signature or length, never an exception."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        nacl.bindings.crypto_sign_open(bytes(signature) + message, bytes(public_key))
    except nacl.exceptions.CryptoError:
        return False
    return True

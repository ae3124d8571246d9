"""Prints µs per call of the crypto primitives on the router's paths.

Run: python benchmarks/bench_crypto.py
"""
from __future__ import annotations

import json
import os
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.crypto import aes, chacha, elligator2, mlkem, red25519, signing, siphash, x25519  # noqa: E402

RSA_VECTORS = Path(__file__).resolve().parent.parent / "tests" / "crypto" / "data" / "rsa_vectors.json"


def per_call_us(fn, number: int) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    message = os.urandom(1024)
    rows: list[tuple[str, float]] = []

    for code, name, number in ((7, "Ed25519", 2000), (11, "RedDSA", 2000), (1, "ECDSA P-256", 2000),
                               (0, "DSA-SHA1", 500), (2, "ECDSA P-384", 300), (3, "ECDSA P-521", 300)):
        private_key, public_key = signing.generate(code)
        signature = signing.sign(code, private_key, message)
        rows.append((f"{name} verify (1 KiB)", per_call_us(
            lambda: signing.verify(code, public_key, message, signature), number)))
    rsa4096 = json.loads(RSA_VECTORS.read_text())["vectors"][2]
    modulus, rsa_message, rsa_signature = (bytes.fromhex(rsa4096[k]) for k in ("modulus", "message", "signature"))
    rows.append(("RSA-4096 verify", per_call_us(lambda: signing.verify(6, modulus, rsa_message, rsa_signature), 500)))

    ed_private, _ = signing.generate(7)
    rows.append(("Ed25519 sign (1 KiB)", per_call_us(lambda: signing.sign(7, ed_private, message), 2000)))
    red_private, _ = signing.generate(11)
    rows.append(("RedDSA sign (1 KiB)", per_call_us(lambda: signing.sign(11, red_private, message), 1000)))
    alpha = red25519.generate_alpha()
    red_public = red25519.public_from_private(red_private)
    rows.append(("Red25519 blind public key", per_call_us(lambda: red25519.blind_public(red_public, alpha), 1000)))

    ours = x25519.X25519Keypair.generate()
    theirs = x25519.X25519Keypair.generate().public_bytes
    rows.append(("X25519 DH (kept keypair)", per_call_us(lambda: ours.dh(theirs), 5000)))
    rows.append(("X25519 DH (raw bytes)", per_call_us(lambda: x25519.dh(ours.private_bytes, theirs), 5000)))

    aead = chacha.ChaChaPoly(os.urandom(32))
    rows.append(("ChaCha20-Poly1305 encrypt 1 KiB", per_call_us(lambda: aead.encrypt(7, message, b""), 20000)))
    aes_key, iv = os.urandom(32), os.urandom(16)
    rows.append(("AES-256-CBC encrypt 1 KiB", per_call_us(lambda: aes.cbc_encrypt(aes_key, iv, message), 20000)))
    sip_key = os.urandom(16)
    length_bytes = os.urandom(8)
    rows.append(("SipHash-2-4 (8 bytes)", per_call_us(lambda: siphash.siphash24(sip_key, length_bytes), 20000)))

    _, public_key, representative = elligator2.generate_keypair()
    rows.append(("Elligator2 encode", per_call_us(lambda: elligator2.encode(public_key, 0x41), 5000)))
    rows.append(("Elligator2 decode", per_call_us(lambda: elligator2.decode(representative), 5000)))
    rows.append(("Elligator2 keypair", per_call_us(elligator2.generate_keypair, 500)))

    encap_key, decap_seed = mlkem.keygen(mlkem.MLKEM768)
    ciphertext, _ = mlkem.encapsulate(mlkem.MLKEM768, encap_key)
    decapsulator = mlkem.Decapsulator(mlkem.MLKEM768, decap_seed)
    rows.append(("ML-KEM-768 keygen", per_call_us(lambda: mlkem.keygen(mlkem.MLKEM768), 1000)))
    rows.append(("ML-KEM-768 encapsulate", per_call_us(lambda: mlkem.encapsulate(mlkem.MLKEM768, encap_key), 1000)))
    rows.append(("ML-KEM-768 decapsulate", per_call_us(lambda: decapsulator.decapsulate(ciphertext), 1000)))

    width = max(len(name) for name, _ in rows)
    for name, micros in rows:
        print(f"{name:<{width}}  {micros:9.1f} µs")


if __name__ == "__main__":
    main()

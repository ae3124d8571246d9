"""Prints µs per ECIES-ratchet operation: NS, NSR and ES (1 KiB clove) encrypt/decrypt, hybrid NS, router one-shot;
and per ElGamal/AES+SessionTags New and Existing Session message, with ElGamal-2048 key generation.

Run: python benchmarks/bench_garlic.py
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.clock import FakeClock  # noqa: E402
from core.crypto import elgamal  # noqa: E402
from core.garlic.elgamal_aes import ElGamalAesConfig, ElGamalAesManager  # noqa: E402
from core.garlic.manager import SessionKeyManager  # noqa: E402
from core.garlic.routers import RouterGarlicReceiver, encrypt_to_router  # noqa: E402
from core.garlic.session import RatchetConfig  # noqa: E402
from core.i2np.garlic import GarlicCloveBlock, GarlicCloveDeliveryInstructions  # noqa: E402
from core.i2np.header import I2NPMessage  # noqa: E402

CLOVE = GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(), I2NPMessage(20, 1, 1_750_000_060_000, bytes(1024)))
CONFIG = RatchetConfig(ns_per_second=1e9, ns_burst=1e9, max_pending_inbound=100_000, max_sessions=100_000)


def timed(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / len(items) * 1e6


def managers(types=(4,)):
    clock = FakeClock()
    alice = SessionKeyManager({t: os.urandom(32) for t in types}, clock=clock, config=CONFIG)
    bob = SessionKeyManager({t: os.urandom(32) for t in types}, clock=clock, config=CONFIG)
    return alice, bob


def new_session(crypto_type: int, count: int) -> tuple[float, float, float, float]:
    alice, bob = managers((4, crypto_type))
    bkey, akey = bob.public_key(crypto_type), alice.public_key(crypto_type)
    ns = []
    enc_ns = timed(lambda _: ns.append(alice.encrypt(bkey, [CLOVE], crypto_type=crypto_type).data), range(count))
    dec_ns = timed(bob.decrypt, ns)
    # NSRs answer the last NS; Alice decrypts each with that handshake's state
    nsr = []
    enc_nsr = timed(lambda _: nsr.append(bob.session(akey).encrypt([CLOVE]).data), range(min(count, 16)))
    dec_nsr = timed(alice.decrypt, nsr)
    return enc_ns, dec_ns, enc_nsr, dec_nsr


def existing_session(count: int) -> tuple[float, float]:
    alice, bob = managers()
    bkey, akey = bob.public_key(), alice.public_key()
    bob.decrypt(alice.encrypt(bkey, []).data)
    alice.decrypt(bob.encrypt(akey, []).data)
    bob.decrypt(alice.encrypt(bkey, []).data)
    es = []
    enc = timed(lambda _: es.append(alice.encrypt(bkey, [CLOVE]).data), range(count))
    dec = timed(bob.decrypt, es)
    assert bob.stats["existing_session"] == count + 1
    return enc, dec


def router(count: int) -> tuple[float, float]:
    clock = FakeClock()
    receiver = RouterGarlicReceiver(os.urandom(32), clock=clock, config=CONFIG)
    msgs = []
    enc = timed(lambda _: msgs.append(encrypt_to_router(receiver.static_key.public_bytes, [CLOVE], clock=clock)),
                range(count))
    dec = timed(receiver.decrypt, msgs)
    return enc, dec


def elgamal_aes(count: int) -> list[tuple[str, float]]:
    clock = FakeClock()
    config = ElGamalAesConfig(new_session_per_second=1e9, new_session_burst=1e9)
    keygen = timed(lambda _: elgamal.generate_private(), range(10))
    private = elgamal.generate_private()
    keygen += timed(lambda _: elgamal.public_from_private(private), range(10))
    alice = ElGamalAesManager(None, clock=clock, config=config)
    bob = ElGamalAesManager(private, clock=clock, config=config)
    payload = bytes(1024)
    new = []
    enc_new = timed(lambda _: new.append(alice.encrypt(bob.public_key, payload).data), range(count))
    dec_new = timed(bob.decrypt_new, new)
    bob.decrypt_new(alice.encrypt(bob.public_key, payload, tags_message_id=1).data)
    alice.confirm(1)
    existing = []
    enc_es = timed(lambda _: existing.append(alice.encrypt(bob.public_key, payload).data), range(40))
    dec_es = timed(bob.decrypt_existing, existing)
    assert bob.stats["received_existing"] == 40
    return [("ElGamal key pair (2048-bit exponent)", keygen),
            ("ElGamal/AES New Session encrypt (1 KiB)", enc_new), ("ElGamal/AES New Session decrypt", dec_new),
            ("ElGamal/AES Existing Session encrypt (1 KiB)", enc_es), ("ElGamal/AES Existing Session decrypt", dec_es)]


def main() -> None:
    rows = []
    enc_ns, dec_ns, enc_nsr, dec_nsr = new_session(4, 300)
    rows += [("NS encrypt (X25519, 1 KiB clove)", enc_ns), ("NS decrypt (X25519)", dec_ns),
             ("NSR encrypt (X25519)", enc_nsr), ("NSR decrypt (X25519)", dec_nsr)]
    enc_ns, dec_ns, enc_nsr, dec_nsr = new_session(6, 100)
    rows += [("NS encrypt (MLKEM768_X25519)", enc_ns), ("NS decrypt (MLKEM768_X25519)", dec_ns),
             ("NSR encrypt (MLKEM768_X25519)", enc_nsr), ("NSR decrypt (MLKEM768_X25519)", dec_nsr)]
    enc, dec = existing_session(5000)
    rows += [("ES encrypt (1 KiB clove)", enc), ("ES decrypt (1 KiB clove)", dec)]
    enc, dec = router(500)
    rows += [("router one-shot encrypt", enc), ("router one-shot decrypt", dec)]
    alice, _ = managers()
    junk = [os.urandom(200) for _ in range(2000)]
    rows.append(("junk garlic decrypt (unknown tag, NS trial)", timed(alice.decrypt, junk)))
    limited = SessionKeyManager({4: os.urandom(32)}, clock=FakeClock())
    rows.append(("junk garlic decrypt (NS rate limit exhausted)", timed(limited.decrypt, junk * 5)))
    rows += elgamal_aes(30)
    width = max(len(name) for name, _ in rows)
    for name, us in rows:
        print(f"{name:<{width}}  {us:9.1f} µs")


if __name__ == "__main__":
    main()

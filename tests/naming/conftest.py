"""Keys and feed lines shared by the naming tests (key generation is the slow part: done once)."""
from __future__ import annotations

import pytest

SIG_DSA_SHA1, SIG_ECDSA_SHA256_P256 = 0, 1
from core.data.privatekeys import PrivateKeys


@pytest.fixture(scope="session")
def keys() -> list[PrivateKeys]:
    """Six Ed25519 destinations, one ECDSA and one DSA (feeds carry every signature type)."""
    made = [PrivateKeys.generate() for _ in range(6)]
    made.append(PrivateKeys.generate(sig_type=SIG_ECDSA_SHA256_P256))
    made.append(PrivateKeys.generate(sig_type=SIG_DSA_SHA1, crypto_type=0))
    return made

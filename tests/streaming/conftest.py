"""Deterministic keys and randomness for streaming tests."""
import random

import pytest

from core.data.privatekeys import PrivateKeys


def seeded_rng(seed: int):
    rnd = random.Random(seed)
    return lambda n: rnd.randbytes(n)


_KEYS = [PrivateKeys.generate(rng=seeded_rng(100 + i)) for i in range(3)]


@pytest.fixture
def alice() -> PrivateKeys:
    return _KEYS[0]


@pytest.fixture
def bob() -> PrivateKeys:
    return _KEYS[1]


@pytest.fixture
def carol() -> PrivateKeys:
    return _KEYS[2]

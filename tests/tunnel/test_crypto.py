"""Tunnel layer encryption: the hop operation against a plain reference, and the creator's inverse."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.crypto.aes import AesEcb, cbc_decrypt, cbc_encrypt
from core.data.errors import CryptoError
from core.tunnel.crypto import CreatorLayers, LayerCipher

from .helpers import seeded_rng

keys32 = st.binary(min_size=32, max_size=32)
payloads = st.binary(min_size=1024, max_size=1024)


def _reference_hop(layer_key, iv_key, payload):
    """tunnel-implementation.md "Participant Processing", written out with the plain AES helpers."""
    ecb = AesEcb(iv_key)
    iv = ecb.encrypt(payload[:16])
    data = cbc_encrypt(layer_key, iv, payload[16:])
    return ecb.encrypt(iv) + data


@given(keys32, keys32, payloads)
def test_hop_matches_reference_and_inverts(layer_key, iv_key, payload):
    layer = LayerCipher(layer_key, iv_key)
    encrypted = layer.encrypt(payload)
    assert encrypted == _reference_hop(layer_key, iv_key, payload)
    assert layer.decrypt(encrypted) == payload
    ecb = AesEcb(iv_key)
    iv = ecb.decrypt(encrypted[:16])
    assert cbc_decrypt(layer_key, iv, encrypted[16:]) == payload[16:]


@pytest.mark.parametrize("hops", [1, 2, 3, 7])
def test_creator_layers_both_directions(hops):
    rng = seeded_rng(hops)
    keys = [(rng(32), rng(32)) for _ in range(hops)]
    hop_layers = [LayerCipher(*k) for k in keys]
    creator = CreatorLayers(keys)
    plain = rng(1024)
    # outbound: the gateway pre-decrypts; each hop's encryption then peels a layer, the endpoint sees plaintext
    data = creator.remove(plain)
    for layer in hop_layers:
        assert data != plain
        data = layer.encrypt(data)
    assert data == plain
    # inbound: the gateway and participants encrypt; the creator removes every layer
    data = plain
    for layer in hop_layers:
        data = layer.encrypt(data)
    assert creator.remove(data) == plain


def test_layer_objects_are_reused_across_messages():
    rng = seeded_rng(1)
    layer_key, iv_key = rng(32), rng(32)
    layer = LayerCipher(layer_key, iv_key)
    for _ in range(5):
        payload = rng(1024)
        assert layer.encrypt(payload) == _reference_hop(layer_key, iv_key, payload)
        assert layer.decrypt(_reference_hop(layer_key, iv_key, payload)) == payload   # chains from each IV anew


def test_size_and_key_checks():
    layer = LayerCipher(bytes(32), bytes(32))
    with pytest.raises(CryptoError):
        layer.encrypt(bytes(1023))
    with pytest.raises(CryptoError):
        layer.decrypt(bytes(1028))
    with pytest.raises(CryptoError):
        LayerCipher(bytes(16), bytes(32))

"""ECIES-ratchet key derivations (ecies.rst "1f", "1g", "4a"-"4c"; ecies-hybrid.rst "Noise identifiers")."""
from __future__ import annotations

from functools import lru_cache

from ..crypto.hashes import hkdf
from ..crypto.noise import SymmetricState
from ..data.keytypes import CRYPTO_X25519

PROTOCOL_IK = b"Noise_IKelg2+hs2_25519_ChaChaPoly_SHA256"
PROTOCOL_IK_HYBRID = {
    5: b"Noise_IKhfselg2_25519+MLKEM512_ChaChaPoly_SHA256",
    6: b"Noise_IKhfselg2_25519+MLKEM768_ChaChaPoly_SHA256",
    7: b"Noise_IKhfselg2_25519+MLKEM1024_ChaChaPoly_SHA256",
}
PROTOCOL_N = b"Noise_N_25519_ChaChaPoly_SHA256"

ZEROLEN = b""


@lru_cache(maxsize=8)
def _prologue_state(protocol_name: bytes) -> tuple[bytes, bytes]:
    state = SymmetricState(protocol_name)
    state.mix_hash(ZEROLEN)  # MixHash(null prologue)
    return state.ck, state.h


def initial_state(crypto_type: int, responder_static_key: bytes) -> SymmetricState:
    """ck and h after the prologue and MixHash(bpk): the state both sides start a New Session from."""
    name = PROTOCOL_IK if crypto_type == CRYPTO_X25519 else PROTOCOL_IK_HYBRID[crypto_type]
    return _state_after(name, responder_static_key)


def router_initial_state(router_static_key: bytes) -> SymmetricState:
    """ecies-routers.rst "KDF for Initial ck and h" then MixHash(hepk)."""
    return _state_after(PROTOCOL_N, router_static_key)


def _state_after(name: bytes, static_key: bytes) -> SymmetricState:
    ck, h = _prologue_state(name)
    state = SymmetricState.__new__(SymmetricState)
    state.ck, state.h, state.k, state.n = ck, h, None, 0
    state.mix_hash(static_key)
    return state


def dh_initialize(root_key: bytes, k: bytes) -> tuple[bytes, bytes, bytes]:
    """DH_INITIALIZE: (next root key, session tag chain key, symmetric key chain key)."""
    keydata = hkdf(root_key, k, b"KDFDHRatchetStep", 64)
    chain = hkdf(keydata[32:], ZEROLEN, b"TagAndKeyGenKeys", 64)
    return keydata[:32], chain[:32], chain[32:]


def nsr_tagset_key(chain_key: bytes) -> bytes:
    """ecies.rst "KDF for Reply TagSet"."""
    return hkdf(chain_key, ZEROLEN, b"SessionReplyTags", 32)


def split(chain_key: bytes) -> tuple[bytes, bytes]:
    """Noise Split(): (k_ab, k_ba)."""
    keydata = hkdf(chain_key, ZEROLEN, ZEROLEN, 64)
    return keydata[:32], keydata[32:]


def attach_payload_key(k_ba: bytes) -> bytes:
    """The NSR payload key (ecies.rst "KDF for Payload Section Encrypted Contents")."""
    return hkdf(k_ba, ZEROLEN, b"AttachPayloadKDF", 32)


def ratchet_tagset_key(shared_secret: bytes) -> bytes:
    """ecies.rst "DH RATCHET KDF": the k for DH_INITIALIZE of the next tag set."""
    return hkdf(shared_secret, ZEROLEN, b"XDHRatchetTagSet", 32)


def session_tag_init(tag_chain_key: bytes) -> tuple[bytes, bytes]:
    """ecies.rst "4b": (session tag chain key, SESSTAG_CONSTANT)."""
    keydata = hkdf(tag_chain_key, ZEROLEN, b"STInitialization", 64)
    return keydata[:32], keydata[32:]


def next_session_tag(chain_key: bytes, constant: bytes) -> tuple[bytes, bytes]:
    """RATCHET_TAG: (next chain key, 8-byte tag)."""
    keydata = hkdf(chain_key, constant, b"SessionTagKeyGen", 64)
    return keydata[:32], keydata[32:40]


def next_symmetric_key(chain_key: bytes) -> tuple[bytes, bytes]:
    """RATCHET_KEY: (next chain key, 32-byte session key)."""
    keydata = hkdf(chain_key, ZEROLEN, b"SymmetricRatchet", 64)
    return keydata[:32], keydata[32:]

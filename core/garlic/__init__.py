"""ECIES-X25519-AEAD-Ratchet garlic encryption: payload blocks, tag sets, sessions, the per-destination
session key manager, and one-shot messages to routers (ecies.rst, ecies-routers.rst, ecies-hybrid.rst)."""

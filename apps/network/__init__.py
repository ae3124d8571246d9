"""The apps' one port to I2P (base.I2PNetwork) and its adapters: in-process (this router) and SAM v3."""
from .base import (ConnectTimeout, Datagram, I2PNetwork, I2PSession, IncomingStream, NameNotFound, NetworkError,
                   PeerNotFound, PeerUnreachable, Unsupported, parse_address)
from .inprocess import InProcessNetwork, InProcessSession

__all__ = ["ConnectTimeout", "Datagram", "I2PNetwork", "I2PSession", "InProcessNetwork", "InProcessSession",
           "IncomingStream", "NameNotFound", "NetworkError", "PeerNotFound", "PeerUnreachable", "SamNetwork", "SamSession",
           "Unsupported", "parse_address"]


def __getattr__(name: str):
    # the SAM adapter loads on first use: a node over its own router never needs it
    if name in ("SamNetwork", "SamSession"):
        from . import sam
        return getattr(sam, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The apps' one port to I2P (base.I2PNetwork) and its adapters: in-process (this router) and SAM v3."""
from .base import (ConnectTimeout, Datagram, I2PNetwork, I2PSession, IncomingStream, NameNotFound, NetworkError,
                   PeerNotFound, PeerUnreachable, Unsupported, parse_address)
from .inprocess import InProcessNetwork, InProcessSession
from .sam import SamNetwork, SamSession

__all__ = ["ConnectTimeout", "Datagram", "I2PNetwork", "I2PSession", "InProcessNetwork", "InProcessSession",
           "IncomingStream", "NameNotFound", "NetworkError", "PeerNotFound", "PeerUnreachable", "SamNetwork", "SamSession",
           "Unsupported", "parse_address"]

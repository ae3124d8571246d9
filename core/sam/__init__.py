"""SAM v3.3 bridge for outside applications (samv3.md)."""
from .backend import (Backend, BackendError, BackendSession, IncomingStream, LeaseSetInfo, PeerNotFound,
                      ReceivedDatagram)
from .bridge import SamAuth, SamBridge, SamConfig
from .client_backend import ClientBackend
from .memory_backend import MemoryBackend

__all__ = ["Backend", "BackendError", "BackendSession", "ClientBackend", "IncomingStream", "LeaseSetInfo", "MemoryBackend",
           "PeerNotFound", "ReceivedDatagram", "SamAuth", "SamBridge", "SamConfig"]

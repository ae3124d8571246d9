"""The streaming library (streaming.rst, streaming-api.md): I2P's TCP over a datagram link."""
from .api import StreamReader, StreamServer, StreamSession, StreamWriter
from .config import ConnectionLimits, StreamConfig
from .connection import Connection, SharedControlBlock, State
from .link import Datagram, DatagramLink, Impairments, MemoryLink, MemoryNetwork, SimulatedNetwork
from .manager import PROTOCOL_STREAMING, Outgoing, Pong, StreamManager
from .packet import Packet

__all__ = [
    "Connection", "ConnectionLimits", "Datagram", "DatagramLink", "Impairments", "MemoryLink", "MemoryNetwork",
    "Outgoing", "PROTOCOL_STREAMING", "Packet", "Pong", "SharedControlBlock", "SimulatedNetwork", "State",
    "StreamConfig", "StreamManager", "StreamReader", "StreamServer", "StreamSession", "StreamWriter",
]

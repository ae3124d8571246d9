"""NTCP2 (ntcp2.rst): sans-I/O handshake and data phase, and the asyncio driver on top of them."""
from .blocks import (DateTimeBlock, I2NPBlock, OptionsBlock, PaddingBlock, RouterInfoBlock, TerminationBlock,
                     TerminationReason, UnknownBlock)
from .driver import ConnectionClosed, DriverSettings, NTCP2Connection, NTCP2Listener, connect, listen
from .handshake import (ClockSkewError, HandshakeResult, Initiator, ReplayCache, Responder, RouterInfoRejected,
                        check_peer_router_info)
from .session import DataPhase, DataPhaseKeys, FrameError

__all__ = [
    "ClockSkewError", "ConnectionClosed", "DataPhase", "DataPhaseKeys", "DateTimeBlock", "DriverSettings",
    "FrameError", "HandshakeResult", "I2NPBlock", "Initiator", "NTCP2Connection", "NTCP2Listener",
    "OptionsBlock", "PaddingBlock", "ReplayCache", "Responder", "RouterInfoBlock", "RouterInfoRejected",
    "TerminationBlock", "TerminationReason", "UnknownBlock", "check_peer_router_info", "connect", "listen",
]

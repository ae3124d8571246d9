"""A ClientSession as the datagram link streaming runs over (core.streaming.link.DatagramLink)."""
from __future__ import annotations

from typing import Any

from core.data.identity import Destination
from core.streaming.api import StreamSession
from core.streaming.link import Datagram, ReceiveCallback
from core.streaming.manager import PROTOCOL_STREAMING

from .session import ClientSession, ReceivedMessage


class ClientLink:
    """Streaming packets (protocol 6) to and from one ClientSession."""

    def __init__(self, session: ClientSession, protocol: int = PROTOCOL_STREAMING):
        self.session = session
        self.protocol = protocol
        self._receiver: ReceiveCallback | None = None

    @property
    def destination(self) -> Destination:
        return self.session.destination

    def send(self, payload: bytes, to: Destination | bytes, *, protocol: int = PROTOCOL_STREAMING,
             src_port: int = 0, dst_port: int = 0) -> None:
        if self.session.closed:
            return
        self.session.send(to, payload, protocol=protocol, src_port=src_port, dst_port=dst_port)

    def path_failed(self, to: bytes) -> None:
        """Streaming to `to` timed out: its next packets take another of its leases."""
        self.session.lease_failed(to)

    def set_receiver(self, callback: ReceiveCallback | None) -> None:
        self._receiver = callback
        self.session.set_protocol_handler(self.protocol, self._on_message if callback is not None else None)

    def _on_message(self, message: ReceivedMessage) -> None:
        if self._receiver is not None:
            self._receiver(Datagram(message.payload, message.sender_hash, message.protocol, message.src_port,
                                    message.dst_port))


def open_stream_session(session: ClientSession, **kwargs: Any) -> StreamSession:
    """Streaming (StreamSession: open_connection, start_server) on `session`'s destination."""
    kwargs.setdefault("clock", session.clock)
    kwargs.setdefault("rng", session.rng)
    return StreamSession(session.keys, ClientLink(session), **kwargs)

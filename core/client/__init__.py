"""The in-process client API: host destinations, send and receive end-to-end messages and datagrams,
run streaming over them (see docs/client-api.md)."""
from .api import ClientAPI, RouterNetwork
from .link import ClientLink, open_stream_session
from .payload import ClientPayload
from .session import ClientNetwork, ClientSession, ReceivedDatagram, ReceivedMessage, SessionOptions

__all__ = ["ClientAPI", "ClientLink", "ClientNetwork", "ClientPayload", "ClientSession", "ReceivedDatagram",
           "ReceivedMessage", "RouterNetwork", "SessionOptions", "open_stream_session"]

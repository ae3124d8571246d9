"""aiosmtpd on both faces of the node: TCP on 127.0.0.1 for mail programs, and I2P streams on port 25.

An I2P stream is not a socket, so `serve_smtp_stream` gives aiosmtpd's protocol a small transport
over the stream's reader/writer; the peer's Destination is its "peername" and `session.destination`.
"""
from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any, Callable

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

log = logging.getLogger(__name__)

COMMAND_LIMITS = {"MAIL": 1000, "RCPT": 10000, "DATA": 1000, "RSET": 1000, "NOOP": 100, "*": 20}
IDLE_TIMEOUT = 300.0            # RFC 5321 section 4.5.3.2.7: the server waits 5 minutes for a command
LINE_LIMIT = 1001



class _QuietAiosmtpd(logging.Filter):
    """aiosmtpd warns on every connection about choices made here on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "auth_require_tls == False" not in text and "login_data is deprecated" not in text


logging.getLogger("mail.log").addFilter(_QuietAiosmtpd())


def make_smtp(handler: Any, *, hostname: str, size_limit: int,
              auth: Callable[[str, str, str], str | None] | None, auth_required: bool) -> SMTP:
    """One aiosmtpd protocol instance; `auth(user, password, source)` returns the account name or None
    (`source`: the peer's address, an IP or a b32)."""

    def authenticator(server, session, envelope, mechanism, data):
        if auth is None or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        source = str(session.peer[0]) if isinstance(session.peer, tuple) else "?"
        user = auth(data.login.decode("utf-8", "replace"), data.password.decode("utf-8", "replace"), source)
        return AuthResult(success=user is not None, handled=False, auth_data=user)

    with warnings.catch_warnings():
        # local submission is on loopback only and I2P streams are end-to-end encrypted: AUTH without TLS
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
        return SMTP(handler, hostname=hostname, ident="pyi2p ESMTP", data_size_limit=size_limit,
                    auth_required=auth_required, auth_require_tls=False,
                    authenticator=authenticator if auth is not None else None,
                    auth_exclude_mechanism=None if auth is not None else ["LOGIN", "PLAIN"],
                    command_call_limit=COMMAND_LIMITS, timeout=IDLE_TIMEOUT, loop=asyncio.get_running_loop())


class StreamTransport(asyncio.Transport):
    """An asyncio transport over a (reader, writer) stream pair, for a protocol that wants one."""

    def __init__(self, protocol: asyncio.Protocol, reader, writer, extra: dict[str, Any]):
        super().__init__(extra)
        self._protocol, self._reader, self._writer = protocol, reader, writer
        self._closing = False
        self._reading = asyncio.Event()
        self._reading.set()
        self.done = asyncio.get_running_loop().create_future()

    def write(self, data: bytes) -> None:
        if not self._closing:
            self._writer.write(bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        try:
            self._writer.close()
        except (ConnectionError, OSError):
            pass
        asyncio.get_running_loop().call_soon(self._lost, None)

    def abort(self) -> None:
        self._closing = True
        self._writer.abort()
        asyncio.get_running_loop().call_soon(self._lost, None)

    def _lost(self, error: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)
            self._protocol.connection_lost(error)

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set()

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    async def pump(self) -> None:
        """Feed what the stream brings to the protocol until EOF or close."""
        try:
            while not self._closing:
                await self._reading.wait()
                data = await self._reader.read(65536)
                if not data:
                    self._protocol.eof_received()
                    break
                self._protocol.data_received(data)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not self._closing:
                self._closing = True
                self._lost(None)


async def serve_smtp_stream(protocol: SMTP, reader, writer, peername: Any, **extra: Any) -> None:
    """Run one aiosmtpd session over a stream pair until either side ends it."""
    transport = StreamTransport(protocol, reader, writer, {"peername": peername, **extra})
    protocol.connection_made(transport)
    pump = asyncio.get_running_loop().create_task(transport.pump())
    try:
        await transport.done
        handler = getattr(protocol, "_handler_coroutine", None)
        if handler is not None:
            await asyncio.gather(handler, return_exceptions=True)
    finally:
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass

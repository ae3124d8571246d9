"""One stream through two destinations' StreamSessions: an echo server on one, the other sends and reads back."""
from __future__ import annotations

import asyncio

from core.client import open_stream_session


async def echo(reader, writer) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def echo_round_trip(client_session, server_session, blob: bytes, *, port: int = 80,
                          connect_timeout: float = 10, timeout: float = 20) -> None:
    """`blob` to an echo server on `server_session` and back, compared; both StreamSessions closed after."""
    client, server = open_stream_session(client_session), open_stream_session(server_session)
    try:
        await server.start_server(echo, port=port)
        reader, writer = await asyncio.wait_for(client.open_connection(server_session.destination, port),
                                                connect_timeout)
        writer.write(blob)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(-1), timeout) == blob
        writer.close()
    finally:
        await client.close()
        await server.close()

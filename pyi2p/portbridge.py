"""Carry TCP ports across a network-namespace boundary through Unix sockets (files, seen by both sides).

    python -m pyi2p.portbridge serve   4444=/run/x/proxy.sock ...   # inside the namespace: socket -> 127.0.0.1:4444
    python -m pyi2p.portbridge publish 4444=/run/x/proxy.sock ...   # on the host: 127.0.0.1:4444 -> socket

The testnet's demo node listens on the namespace's own loopback; with the two halves running, the
user's browser, IRC and mail programs reach it on their own 127.0.0.1. Bytes are copied as they come,
both ways, with bounded buffers; either side closing closes the other.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK = 65536
MAX_CONNECTIONS = 256           # per port


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def splice(a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 b: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    try:
        await asyncio.gather(pipe(a[0], b[1]), pipe(b[0], a[1]))
    finally:
        for _, writer in (a, b):
            writer.close()


def parse_pairs(specs: list[str]) -> list[tuple[int, Path]]:
    pairs = []
    for spec in specs:
        port, sep, path = spec.partition("=")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not path:
            raise ValueError(f"{spec!r}: give PORT=SOCKET_PATH")
        pairs.append((int(port), Path(path)))
    return pairs


class Bridge:
    """One side of the bridge for several ports; `start()` listens, `close()` stops."""

    def __init__(self, mode: str, pairs: list[tuple[int, Path]], host: str = "127.0.0.1"):
        if mode not in ("serve", "publish"):
            raise ValueError(f"mode {mode!r}: serve or publish")
        self.mode, self.pairs, self.host = mode, pairs, host
        self.servers: list[asyncio.Server] = []
        self.live: dict[int, int] = {port: 0 for port, _ in pairs}

    async def start(self) -> None:
        for port, path in self.pairs:
            handler = self._handler(port, path)
            if self.mode == "serve":
                path.unlink(missing_ok=True)
                server = await asyncio.start_unix_server(handler, path)
                os.chmod(path, 0o600)
            else:
                server = await asyncio.start_server(handler, self.host, port)
            self.servers.append(server)

    def _handler(self, port: int, path: Path):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self.live[port] >= MAX_CONNECTIONS:
                writer.close()
                return
            self.live[port] += 1
            try:
                if self.mode == "serve":
                    other = await asyncio.open_connection(self.host, port)
                else:
                    other = await asyncio.open_unix_connection(path)
            except OSError as exc:
                log.info("port %d: cannot reach the other side: %s", port, exc)
                writer.close()
                self.live[port] -= 1
                return
            try:
                await splice((reader, writer), other)
            finally:
                self.live[port] -= 1
        return handle

    async def close(self) -> None:
        for server in self.servers:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
        if self.mode == "serve":
            for _, path in self.pairs:
                path.unlink(missing_ok=True)


async def run(mode: str, pairs: list[tuple[int, Path]]) -> int:
    bridge = Bridge(mode, pairs)
    await bridge.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await bridge.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyi2p.portbridge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("serve", "publish"))
    parser.add_argument("pairs", nargs="+", metavar="PORT=SOCKET")
    args = parser.parse_args(argv)
    try:
        pairs = parse_pairs(args.pairs)
        return asyncio.run(run(args.mode, pairs))
    except (ValueError, OSError) as exc:
        print(f"portbridge: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

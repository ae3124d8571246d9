"""Small real services for the node's tests: an echo server over TCP, one that refuses to start, one that crashes."""
from __future__ import annotations

import asyncio

from apps.service import ServiceError


class EchoService:
    name = "echo"

    def __init__(self, config, datadir, network, **deps):
        self.port = int(config.get("port", 0))
        self.deps = deps
        self.network = network
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._echo, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _echo(self, reader, writer) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    def status(self) -> dict:
        return {"state": "running" if self.server else "stopped", "listen": f"127.0.0.1:{self.port}"}

    def control_methods(self) -> dict:
        def shout(params):
            if "text" not in params:
                raise ValueError("text is required")
            return {"Text": str(params["text"]).upper()}
        return {"Shout": shout}


class RefusingService(EchoService):
    def __init__(self, config, datadir, network, **deps):
        super().__init__(config, datadir, network, **deps)

    async def start(self) -> None:
        raise ServiceError("port 4444 is taken (tunnels.conf line 3)")


class CrashingService(EchoService):
    async def start(self) -> None:
        raise RuntimeError("boom")


class FakeNaming(EchoService):
    """Stands in for the address book: the node points the network's resolver at its `resolve`."""

    def resolve(self, name: str):
        return None


class ResolverProbe(EchoService):
    """Notes which resolver the network had when this app started."""

    async def start(self) -> None:
        self.resolver_at_start = self.network.resolver
        await super().start()

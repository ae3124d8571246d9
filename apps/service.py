"""The face every app shows the node: start, stop, status, and the control methods it offers.

The composition root (pyi2p/node.py) builds each enabled app with its config section and the
network port, starts it, and registers its control methods in I2PControl as
`pyi2p.<App>.<Verb>`. A service that fails to start says why in `status()["error"]`; the rest
of the node runs on.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping, Protocol

ControlMethod = Callable[[Mapping[str, Any]], "Awaitable[Any] | Any"]
"""Takes the JSON-RPC params (a dict), returns a JSON-able result; raises ValueError for bad params."""


class ServiceError(Exception):
    """A service cannot start or do what was asked; the message names the port, file or line at fault."""


class Service(Protocol):
    name: str
    """Short and stable: "tunnels", "proxy", "naming", "mail", "torrent"."""

    async def start(self) -> None:
        """Open listeners and sessions; raise ServiceError (with the reason) when it cannot."""
        ...

    async def stop(self) -> None:
        """Close everything it opened; idempotent."""
        ...

    def status(self) -> dict[str, Any]:
        """JSON-able figures for `pyi2p status` and the console: at least "state" and, on failure, "error"."""
        ...

    def control_methods(self) -> dict[str, ControlMethod]:
        """Verb -> method, registered as pyi2p.<App>.<Verb> (e.g. "List" -> pyi2p.Tunnels.List)."""
        ...

"""Running the router's event loop: asyncio's, or uvloop's when installed and asked for (PYI2P_UVLOOP=1)."""
from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def uvloop_available() -> bool:
    """uvloop is installed and asked for with PYI2P_UVLOOP=1 (on the relay path it measured within noise)."""
    if os.environ.get("PYI2P_UVLOOP", "0") != "1":
        return False
    return importlib.util.find_spec("uvloop") is not None


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool | None = None) -> T:
    """asyncio.run(main), on uvloop's loop when `use_uvloop` (default: when available)."""
    if use_uvloop is None:
        use_uvloop = uvloop_available()
    if use_uvloop:
        import uvloop
        return uvloop.run(main)
    return asyncio.run(main)

"""Running the router's event loop: uvloop's when the [fast] extra is installed, asyncio's otherwise."""
from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def uvloop_available() -> bool:
    """uvloop is installed and not turned off by PYI2P_UVLOOP=0."""
    if os.environ.get("PYI2P_UVLOOP", "1") == "0":
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

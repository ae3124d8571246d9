"""The console's only way to the node: I2PControl, called off the event loop so the screen never stalls."""
from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.control.client import ControlClient, ControlClientError, ControlRpcError
from core.control.config import ControlConfigError, read_control_config
from core.control.jsonrpc import EXPIRED_TOKEN, INVALID_PASSWORD, UNKNOWN_TOKEN

__all__ = ["ConsoleClient", "ControlClientError", "ControlRpcError", "NotConnected"]


class NotConnected(Exception):
    """No node answers, or it refuses us; the message says which, in plain words."""


class ConsoleClient:
    """Async calls over the blocking ControlClient, re-authenticating when a token expires."""

    def __init__(self, *, datadir: str | Path | None = None, url: str | None = None, password: str | None = None,
                 timeout_s: float = 5.0):
        self.datadir = Path(datadir).expanduser() if datadir else None
        self.url = url
        self.password = password
        self.timeout_s = timeout_s
        self._client: ControlClient | None = None
        self._lock = asyncio.Lock()

    @property
    def where(self) -> str:
        if self._client is not None:
            return self._client.url
        return self.url or str(self.datadir or "~/.pyi2p")

    def _make_client(self, timeout_s: float | None = None) -> ControlClient:
        timeout_s = timeout_s or self.timeout_s
        if self.url:
            parts = urlsplit(self.url if "://" in self.url else f"http://{self.url}")
            if not parts.hostname or not parts.port:
                raise NotConnected(f"{self.url}: give the control API as http://HOST:PORT")
            return ControlClient(parts.hostname, parts.port, self.password or "", timeout_s=timeout_s)
        datadir = self.datadir or Path("~/.pyi2p").expanduser()
        try:
            config = read_control_config(datadir)
        except ControlConfigError as exc:
            raise NotConnected(f"no node found in {datadir} ({exc}); start one with `pyi2p run`") from None
        if self.password:
            config = dataclasses.replace(config, password=self.password)
        return ControlClient.from_config(config, timeout_s=timeout_s)

    def _call_blocking(self, method: str, params: dict[str, Any] | None, client: ControlClient | None = None) -> Any:
        if client is None:
            if self._client is None:
                self._client = self._make_client()
            client = self._client
        try:
            return client.call(method, params)
        except ControlRpcError as exc:
            if exc.code in (EXPIRED_TOKEN, UNKNOWN_TOKEN):
                client.token = None                # the node restarted or the token aged: log in again
                return client.call(method, params)
            if exc.code == INVALID_PASSWORD:
                self._client = None
                raise NotConnected("the node refused the password (see control.json in its data folder)") from None
            raise
        except ControlClientError as exc:
            if client is self._client:
                self._client = None                # re-read control.json next time: the node may have moved
            raise NotConnected(str(exc)) from None

    async def call(self, method: str, params: dict[str, Any] | None = None, *, timeout_s: float | None = None) -> Any:
        """The method's result; NotConnected when no node answers, ControlRpcError when it refuses the call.
        A call given its own `timeout_s` (a test that may take a minute) runs beside the refreshes, not after."""
        if timeout_s is not None:
            try:
                client = await asyncio.to_thread(self._make_client, timeout_s)
            except ControlConfigError as exc:
                raise NotConnected(str(exc)) from None
            return await asyncio.to_thread(self._call_blocking, method, params, client)
        async with self._lock:
            return await asyncio.to_thread(self._call_blocking, method, params)

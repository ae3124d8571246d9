"""A small blocking I2PControl client (standard library only), for the command line."""
from __future__ import annotations

import itertools
import json
import socket
import urllib.error
import urllib.request
from typing import Any

from .config import ControlConfig

MAX_RESPONSE = 16 * 1024 * 1024
# the router is local: never route through an http_proxy from the environment
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ControlClientError(Exception):
    """The server could not be reached or answered something that is not JSON-RPC."""


class ControlRpcError(ControlClientError):
    """The server answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str):
        self.code = code
        super().__init__(f"{message} ({code})")


class ControlClient:
    def __init__(self, host: str, port: int, password: str, *, timeout_s: float = 5.0):
        netloc = f"[{host}]" if ":" in host else host
        self.url = f"http://{netloc}:{port}/jsonrpc"
        self.password = password
        self.timeout_s = timeout_s
        self.token: str | None = None
        self._ids = itertools.count(1)

    @classmethod
    def from_config(cls, config: ControlConfig, *, timeout_s: float = 5.0) -> "ControlClient":
        return cls(config.connect_host(), config.port, config.password, timeout_s=timeout_s)

    def authenticate(self) -> None:
        result = self.request("Authenticate", {"API": 1, "Password": self.password})
        token = result.get("Token") if isinstance(result, dict) else None
        if not isinstance(token, str):
            raise ControlClientError("Authenticate returned no token")
        self.token = token

    def call(self, method: str, params: dict | None = None) -> Any:
        """Call a method that needs a token, authenticating first if needed."""
        if self.token is None:
            self.authenticate()
        return self.request(method, {**(params or {}), "Token": self.token})

    def request(self, method: str, params: dict) -> Any:
        request_id = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode()
        http_request = urllib.request.Request(self.url, data=body, method="POST",
                                              headers={"Content-Type": "application/json"})
        try:
            with _OPENER.open(http_request, timeout=self.timeout_s) as reply:
                raw = reply.read(MAX_RESPONSE + 1)
        except urllib.error.HTTPError as exc:
            raw = exc.read(MAX_RESPONSE + 1)  # our server puts a JSON-RPC error in 4xx bodies too
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ConnectionRefusedError):
                raise ControlClientError(f"no router is listening on {self.url} (connection refused)") from None
            raise ControlClientError(f"cannot reach {self.url}: {getattr(reason, 'strerror', None) or reason}") from None
        except (socket.timeout, TimeoutError):
            raise ControlClientError(f"{self.url} did not answer within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise ControlClientError(f"cannot reach {self.url}: {exc.strerror or exc}") from None
        if len(raw) > MAX_RESPONSE:
            raise ControlClientError(f"{self.url} sent an oversized answer")
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            raise ControlClientError(f"{self.url} did not answer with JSON") from None
        if not isinstance(answer, dict):
            raise ControlClientError(f"{self.url} did not answer with a JSON-RPC response")
        error = answer.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            raise ControlRpcError(code if isinstance(code, int) else 0, str(message or "error"))
        if "result" not in answer:
            raise ControlClientError(f"{self.url} sent a response without a result")
        return answer["result"]

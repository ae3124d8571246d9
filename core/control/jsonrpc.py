"""JSON-RPC 2.0 envelopes (jsonrpc.org/specification) with I2PControl's error codes; no I/O."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

# JSON-RPC 2.0 "Error object"
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# i2pcontrol.md "Error codes", I2PControl specific
INVALID_PASSWORD = -32001
NO_TOKEN = -32002
UNKNOWN_TOKEN = -32003
EXPIRED_TOKEN = -32004
API_VERSION_MISSING = -32005
API_VERSION_UNSUPPORTED = -32006

ERROR_MESSAGES = {
    PARSE_ERROR: "JSON parse error.",
    INVALID_REQUEST: "Invalid request.",
    METHOD_NOT_FOUND: "Method not found.",
    INVALID_PARAMS: "Invalid parameters.",
    INTERNAL_ERROR: "Internal error.",
    INVALID_PASSWORD: "Invalid password provided.",
    NO_TOKEN: "No authentication token presented.",
    UNKNOWN_TOKEN: "Authentication token doesn't exist.",
    EXPIRED_TOKEN: "Provided authentication token was expired and will be removed.",
    API_VERSION_MISSING: "The version of the I2PControl API wasn't specified, but is required to be specified.",
    API_VERSION_UNSUPPORTED: "The version of the I2PControl API specified is not supported by I2PControl.",
}

MAX_BATCH = 32

Dispatch = Callable[[str, dict], Awaitable[Any]]


class RpcError(Exception):
    """A JSON-RPC error to answer with; `detail` is appended to the code's standard message."""

    def __init__(self, code: int, detail: str | None = None, request_id: Any = None):
        self.code = code
        self.detail = detail
        self.request_id = request_id  # known when a request is rejected after its id was read
        base = ERROR_MESSAGES.get(code, "Error.")
        super().__init__(f"{base} {detail}" if detail else base)

    def to_object(self) -> dict:
        return {"code": self.code, "message": str(self)}


@dataclass(frozen=True, slots=True)
class Request:
    id: Any                    # str, number or None
    is_notification: bool      # no "id" member: no response is sent
    method: str
    params: Any                # dict, list or None (absent)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def decode_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise RpcError(PARSE_ERROR) from None


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool))


def read_request(obj: Any) -> Request:
    """Check one request object (JSON-RPC 2.0 section 4); RpcError(INVALID_REQUEST) if malformed."""
    if not isinstance(obj, dict):
        raise RpcError(INVALID_REQUEST, "A request must be a JSON object.")
    request_id = obj.get("id")
    if not _valid_id(request_id):
        raise RpcError(INVALID_REQUEST, "The id must be a string, a number or null.")
    if obj.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'The "jsonrpc" member must be exactly "2.0".', request_id)
    method = obj.get("method")
    if not isinstance(method, str):
        raise RpcError(INVALID_REQUEST, 'The "method" member must be a string.', request_id)
    params = obj.get("params")
    if "params" in obj and not isinstance(params, (dict, list)):
        raise RpcError(INVALID_REQUEST, 'The "params" member must be an object or an array.', request_id)
    return Request(id=request_id, is_notification="id" not in obj, method=method, params=params)


def error_response(request_id: Any, error: RpcError) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_object()}


def result_response(request_id: Any, result: Any) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def encode(response: Any) -> bytes:
    return json.dumps(response, allow_nan=False, separators=(",", ":")).encode("utf-8")


async def answer_one(obj: Any, dispatch: Dispatch) -> dict | None:
    """Answer one request object; None for a notification (JSON-RPC 2.0 section 4.1)."""
    try:
        request = read_request(obj)
    except RpcError as error:
        return error_response(error.request_id, error)
    try:
        result = await dispatch(request.method, request.params)
        encode(result)  # an unencodable result is our bug: answer -32603, not a broken body
        response = result_response(request.id, result)
    except RpcError as error:
        response = error_response(request.id, error)
    except Exception:
        log.exception("I2PControl method %r failed", request.method)
        response = error_response(request.id, RpcError(INTERNAL_ERROR))
    return None if request.is_notification else response


async def answer_body(body: bytes, dispatch: Dispatch) -> bytes | None:
    """Answer an HTTP body holding one request or a batch; None when nothing is to be sent back."""
    try:
        message = decode_json(body)
    except RpcError as error:
        return encode(error_response(None, error))
    if isinstance(message, list):
        if not message:
            return encode(error_response(None, RpcError(INVALID_REQUEST, "Empty batch.")))
        if len(message) > MAX_BATCH:
            return encode(error_response(None, RpcError(INVALID_REQUEST, f"A batch holds at most {MAX_BATCH} requests.")))
        responses = [r for r in [await answer_one(item, dispatch) for item in message] if r is not None]
        return encode(responses) if responses else None
    response = await answer_one(message, dispatch)
    return encode(response) if response is not None else None

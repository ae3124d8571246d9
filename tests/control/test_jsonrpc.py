"""JSON-RPC envelopes without HTTP: unit cases, then random and mutated bodies into the service."""
from __future__ import annotations

import asyncio
import json

from hypothesis import given, strategies as st

from core.clock import FakeClock
from core.control import jsonrpc as codes
from core.control.config import ControlConfig
from core.control.jsonrpc import RpcError, answer_body, decode_json, read_request
from core.control.methods import ControlService

from .fakes import FakeRouter

ALL_CODES = set(codes.ERROR_MESSAGES)
PASSWORD = "pw"


def make_service() -> ControlService:
    return ControlService(FakeRouter(), ControlConfig(password=PASSWORD), clock=FakeClock())


def answer(service: ControlService, body: bytes):
    raw = asyncio.run(service.handle_body(body))
    return None if raw is None else json.loads(raw)


def check_response(response) -> None:
    assert response["jsonrpc"] == "2.0" and "id" in response
    assert ("result" in response) != ("error" in response)
    if "error" in response:
        assert response["error"]["code"] in ALL_CODES
        assert isinstance(response["error"]["message"], str)


def test_read_request_fields():
    request = read_request({"jsonrpc": "2.0", "id": "a", "method": "Echo", "params": {"Echo": 1}})
    assert (request.id, request.method, request.params, request.is_notification) == ("a", "Echo", {"Echo": 1}, False)
    assert read_request({"jsonrpc": "2.0", "method": "Echo"}).is_notification
    assert not read_request({"jsonrpc": "2.0", "id": None, "method": "Echo"}).is_notification


def test_decode_rejects_non_json_constants_and_bad_utf8():
    for body in (b"NaN", b"Infinity", b"-Infinity", b'"\xff"', b"1" * 5000):
        try:
            decode_json(body)
        except RpcError as error:
            assert error.code == codes.PARSE_ERROR
        else:
            raise AssertionError(body)


def test_error_message_keeps_the_spec_text():
    error = RpcError(codes.INVALID_PARAMS, "Stat 'x' does not exist.")
    assert error.to_object() == {"code": -32602, "message": "Invalid parameters. Stat 'x' does not exist."}


def test_internal_error_hides_the_exception():
    async def broken(method, params):
        raise KeyError("secret detail")
    raw = asyncio.run(answer_body(b'{"jsonrpc":"2.0","id":1,"method":"X"}', broken))
    assert json.loads(raw)["error"] == {"code": codes.INTERNAL_ERROR, "message": "Internal error."}
    assert b"secret" not in raw


def test_unencodable_result_is_internal_error():
    async def nan(method, params):
        return {"Result": float("nan")}
    raw = asyncio.run(answer_body(b'{"jsonrpc":"2.0","id":1,"method":"X"}', nan))
    assert json.loads(raw)["error"]["code"] == codes.INTERNAL_ERROR


def test_authenticate_then_call_without_http():
    service = make_service()
    token = answer(service, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "Authenticate",
                                        "params": {"API": 1, "Password": PASSWORD}}).encode())["result"]["Token"]
    response = answer(service, json.dumps({"jsonrpc": "2.0", "id": 2, "method": "RouterInfo",
                                           "params": {"Token": token, "i2p.router.version": None}}).encode())
    assert response == {"jsonrpc": "2.0", "id": 2, "result": {"i2p.router.version": "0.9.66"}}


@given(st.binary(max_size=512))
def test_random_bytes_get_a_json_rpc_error(body):
    response = answer(make_service(), body)
    if response is not None:
        for item in response if isinstance(response, list) else [response]:
            check_response(item)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
method_names = st.sampled_from(["Authenticate", "Echo", "GetRate", "I2PControl", "RouterInfo", "RouterManager",
                                "NetworkSetting", "pyi2p.Summary", "pyi2p.Peers", "Nope"]) | st.text(max_size=10)


@given(st.fixed_dictionaries({"jsonrpc": st.just("2.0") | json_values, "method": method_names | json_values},
                             optional={"id": json_values, "params": json_values}))
def test_random_requests_get_well_formed_answers(message):
    service = make_service()
    response = answer(service, json.dumps(message).encode())
    if response is not None:
        check_response(response)
    assert service.router.actions == []  # nothing happens without a token


@given(st.sampled_from(list(range(0, 120))), st.binary(min_size=1, max_size=3))
def test_mutated_valid_request_is_answered(position, junk):
    body = bytearray(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "Authenticate",
                                 "params": {"API": 1, "Password": PASSWORD}}).encode())
    position %= len(body)
    body[position:position + len(junk)] = junk
    response = answer(make_service(), bytes(body))
    if response is not None:
        for item in response if isinstance(response, list) else [response]:
            check_response(item)

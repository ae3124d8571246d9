"""Every I2PControl method and every error code, over HTTP with aiohttp's test client."""
from __future__ import annotations

import pytest

from core.control import jsonrpc as codes
from core.control.api import NETWORK_SETTING_KEYS
from core.control.methods import ROUTER_INFO_KEYS, TOKEN_LIFETIME_S, b64

from .conftest import PASSWORD
from .fakes import HOP_A, HOP_B, ROUTER_HASH


# -- Authenticate --

async def test_authenticate_returns_api_and_token(rpc):
    answer = await rpc.authenticate()
    assert answer["result"]["API"] == 1
    assert isinstance(answer["result"]["Token"], str) and len(answer["result"]["Token"]) == 32


async def test_tokens_are_distinct_and_each_works(rpc):
    first = rpc.token
    await rpc.authenticate()
    assert rpc.token != first
    assert (await rpc.request("Echo", {"Echo": "x", "Token": first}))["result"] == {"Result": "x"}


@pytest.mark.parametrize("params, code", [
    ({"API": 1, "Password": "wrong"}, codes.INVALID_PASSWORD),
    ({"API": 1, "Password": PASSWORD + " "}, codes.INVALID_PASSWORD),
    ({"Password": PASSWORD}, codes.API_VERSION_MISSING),
    (None, codes.API_VERSION_MISSING),
    ({"API": 2, "Password": PASSWORD}, codes.API_VERSION_UNSUPPORTED),
    ({"API": "1", "Password": PASSWORD}, codes.API_VERSION_UNSUPPORTED),
    ({"API": True, "Password": PASSWORD}, codes.API_VERSION_UNSUPPORTED),
    ({"API": 1}, codes.INVALID_PARAMS),
    ({"API": 1, "Password": 12}, codes.INVALID_PARAMS),
    ([1, PASSWORD], codes.INVALID_PARAMS),
])
async def test_authenticate_errors(rpc, params, code):
    answer = await rpc.request("Authenticate", params)
    assert answer["error"]["code"] == code
    assert answer["error"]["message"] == codes.ERROR_MESSAGES[code] or \
        answer["error"]["message"].startswith(codes.ERROR_MESSAGES[code])


# -- tokens --

async def test_missing_token(rpc):
    answer = await rpc.request("Echo", {"Echo": "hi"})
    assert answer["error"]["code"] == codes.NO_TOKEN
    answer = await rpc.request("RouterInfo")
    assert answer["error"]["code"] == codes.NO_TOKEN


@pytest.mark.parametrize("token", ["nope", "", 42, ["x"]])
async def test_unknown_token(rpc, token):
    answer = await rpc.request("Echo", {"Echo": "hi", "Token": token})
    assert answer["error"]["code"] == codes.UNKNOWN_TOKEN


async def test_expired_token_is_reported_once_then_unknown(rpc, clock):
    clock.advance(TOKEN_LIFETIME_S - 1)
    assert await rpc.result("Echo", {"Echo": "still"}) == {"Result": "still"}
    clock.advance(1)
    assert await rpc.error("Echo", {"Echo": "late"}) == codes.EXPIRED_TOKEN
    assert await rpc.error("Echo", {"Echo": "late"}) == codes.UNKNOWN_TOKEN


async def test_token_store_is_bounded(rpc, service):
    first = rpc.token
    for _ in range(service.tokens.capacity):
        await rpc.authenticate()
    assert len(service.tokens) == service.tokens.capacity
    assert (await rpc.request("Echo", {"Echo": "x", "Token": first}))["error"]["code"] == codes.UNKNOWN_TOKEN


# -- Echo --

async def test_echo(rpc):
    assert await rpc.result("Echo", {"Echo": "hello ünïcode"}) == {"Result": "hello ünïcode"}


@pytest.mark.parametrize("params", [{}, {"Echo": 5}, {"Echo": None}])
async def test_echo_bad_params(rpc, params):
    assert await rpc.error("Echo", params) == codes.INVALID_PARAMS


async def test_positional_params_are_invalid(rpc):
    answer = await rpc.request("Echo", ["hi", rpc.token])
    assert answer["error"]["code"] == codes.INVALID_PARAMS


# -- GetRate --

@pytest.mark.parametrize("stat, period, expected", [
    ("bw.receiveBps", 1000, 1500.0), ("bw.recvRate", 15000, 1200.5),
    ("bw.sendBps", 1000, 900.0), ("bw.sendRate", 15000, 800.25),
    ("bw.combined", 15000, 1200.5 + 800.25),
    ("tunnel.participatingTunnels", 60000, 3.0), ("router.activePeers", 60000, 11.0),
    ("bw.receiveBps", 60000, 1200.5),  # no history yet: the router's 15 s window
])
async def test_get_rate_from_router_windows(rpc, stat, period, expected):
    assert await rpc.result("GetRate", {"Stat": stat, "Period": period}) == {"Result": expected}


async def test_get_rate_from_sampled_history(rpc, service, router, clock):
    for second in range(61):
        router.update(bytes_received=10_000 + 2_000 * second, bytes_sent=5_000 + 500 * second,
                      participating_tunnels=second % 2 * 10)
        service.sample_rates()
        clock.advance(1)
    assert await rpc.result("GetRate", {"Stat": "bw.receiveBps", "Period": 60000}) == {"Result": 2000.0}
    assert await rpc.result("GetRate", {"Stat": "bw.sendBps", "Period": 30000}) == {"Result": 500.0}
    assert await rpc.result("GetRate", {"Stat": "bw.combined", "Period": 60000}) == {"Result": 2500.0}
    mean = (await rpc.result("GetRate", {"Stat": "tunnel.participatingTunnels", "Period": 60000}))["Result"]
    assert mean == pytest.approx(10 * 30 / 61)


@pytest.mark.parametrize("params", [
    {"Stat": "no.such.stat", "Period": 60000},
    {"Stat": "bw.sendBps"},
    {"Stat": "bw.sendBps", "Period": "60000"},
    {"Stat": "bw.sendBps", "Period": 999},
    {"Stat": "bw.sendBps", "Period": 3600 * 1000 + 1},
    {"Stat": "bw.sendBps", "Period": True},
    {"Period": 60000},
    {"Stat": ["bw.sendBps"], "Period": 60000},
])
async def test_get_rate_errors(rpc, params):
    assert await rpc.error("GetRate", params) == codes.INVALID_PARAMS


# -- RouterInfo --

async def test_router_info_answers_every_key(rpc):
    result = await rpc.result("RouterInfo", {key: None for key in ROUTER_INFO_KEYS})
    assert result == {
        "i2p.router.status": "Running",
        "i2p.router.uptime": 3723500,
        "i2p.router.version": "0.9.66",
        "i2p.router.net.bw.inbound.1s": 1500.0,
        "i2p.router.net.bw.inbound.15s": 1200.5,
        "i2p.router.net.bw.outbound.1s": 900.0,
        "i2p.router.net.bw.outbound.15s": 800.25,
        "i2p.router.net.status": 2,
        "i2p.router.net.tunnels.participating": 3,
        "i2p.router.netdb.activepeers": 11,
        "i2p.router.netdb.fastpeers": 7,
        "i2p.router.netdb.highcapacitypeers": 15,
        "i2p.router.netdb.isreseeding": False,
        "i2p.router.netdb.knownpeers": 120,
        "i2p.router.net.tunnels.successrate": 84,
        "i2p.router.net.total.received.bytes": 10000,
        "i2p.router.net.total.sent.bytes": 5000,
    }
    assert isinstance(result["i2p.router.uptime"], int)


async def test_router_info_answers_only_what_is_asked(rpc, router):
    router.update(is_reseeding=True)
    result = await rpc.result("RouterInfo", {"i2p.router.netdb.isreseeding": "", "i2p.router.unknown": None})
    assert result == {"i2p.router.netdb.isreseeding": True}
    assert await rpc.result("RouterInfo") == {}


async def test_router_info_with_a_broken_router_is_internal_error(rpc, router):
    router.snapshot = lambda: 1 / 0
    assert await rpc.error("RouterInfo", {"i2p.router.version": None}) == codes.INTERNAL_ERROR


# -- RouterManager --

@pytest.mark.parametrize("key, action", [
    ("Shutdown", "shutdown"), ("ShutdownGraceful", "shutdown_graceful"),
    ("Restart", "restart"), ("RestartGraceful", "restart_graceful"), ("Reseed", "reseed"),
])
async def test_router_manager_actions(rpc, router, key, action):
    assert await rpc.result("RouterManager", {key: None}) == {key: None}
    assert router.actions == [action]


async def test_router_manager_updates(rpc, router):
    result = await rpc.result("RouterManager", {"FindUpdates": None, "Update": None})
    assert result == {"FindUpdates": False, "Update": "No update"}
    assert router.actions == []


async def test_router_manager_refuses_two_lifecycle_actions(rpc, router):
    assert await rpc.error("RouterManager", {"Shutdown": None, "Restart": None}) == codes.INVALID_PARAMS
    assert router.actions == []


# -- NetworkSetting --

async def test_network_setting_reads_every_key(rpc, router):
    result = await rpc.result("NetworkSetting", {key: None for key in NETWORK_SETTING_KEYS})
    assert result == {**router.settings, "SettingsSaved": False, "RestartNeeded": False}
    assert router.applied == []


async def test_network_setting_writes(rpc, router):
    result = await rpc.result("NetworkSetting", {"i2p.router.net.bw.share": "50", "i2p.router.net.bw.in": 512,
                                                 "i2p.router.net.bw.out": None})
    assert result == {"i2p.router.net.bw.share": "50", "i2p.router.net.bw.in": "512",
                      "i2p.router.net.bw.out": "128", "SettingsSaved": True, "RestartNeeded": False}
    assert router.applied == [{"i2p.router.net.bw.share": "50", "i2p.router.net.bw.in": "512"}]
    result = await rpc.result("NetworkSetting", {"i2p.router.net.ntcp.port": "23456"})
    assert result == {"i2p.router.net.ntcp.port": "23456", "SettingsSaved": True, "RestartNeeded": True}


async def test_network_setting_unchanged_value_is_not_saved(rpc, router):
    result = await rpc.result("NetworkSetting", {"i2p.router.net.bw.share": "80"})
    assert result["SettingsSaved"] is False and router.applied == []


@pytest.mark.parametrize("key, value", [
    ("i2p.router.net.ntcp.port", "0"), ("i2p.router.net.ntcp.port", "65536"), ("i2p.router.net.ntcp.port", "x"),
    ("i2p.router.net.ssu.port", -1), ("i2p.router.net.bw.share", "101"), ("i2p.router.net.bw.in", "0"),
    ("i2p.router.net.bw.out", "1.5"), ("i2p.router.net.upnp", "maybe"), ("i2p.router.net.laptopmode", 1),
    ("i2p.router.net.ssu.detectedip", "1.2.3.4"), ("i2p.router.net.ntcp.hostname", ""),
    ("i2p.router.net.ntcp.hostname", "a b"), ("i2p.router.net.ntcp.hostname", 5),
    ("i2p.router.net.upnp", "true"),  # valid shape, refused by the router
])
async def test_network_setting_bad_values(rpc, router, key, value):
    good_key = "i2p.router.net.bw.out" if key == "i2p.router.net.bw.share" else "i2p.router.net.bw.share"
    before = dict(router.settings)
    assert await rpc.error("NetworkSetting", {good_key: "10", key: value}) == codes.INVALID_PARAMS
    assert router.settings == before and router.applied == []  # nothing applied when one value is bad


# -- I2PControl --

async def test_i2pcontrol_no_change(rpc, saved_configs):
    assert await rpc.result("I2PControl", {}) == {"SettingsSaved": False, "RestartNeeded": False}
    assert await rpc.result("I2PControl", {"i2pcontrol.port": "7650"}) == {"SettingsSaved": False,
                                                                           "RestartNeeded": False}
    assert saved_configs == []


async def test_i2pcontrol_port_and_address(rpc, service, saved_configs):
    result = await rpc.result("I2PControl", {"i2pcontrol.port": "7651", "i2pcontrol.address": "0.0.0.0"})
    assert result == {"i2pcontrol.port": None, "i2pcontrol.address": None,
                      "SettingsSaved": True, "RestartNeeded": True}
    assert (saved_configs[-1].port, saved_configs[-1].address) == (7651, "0.0.0.0")
    assert service.config.password == PASSWORD


async def test_i2pcontrol_password_change_revokes_tokens(rpc, service, saved_configs):
    result = await rpc.result("I2PControl", {"i2pcontrol.password": "new secret"})
    assert result == {"i2pcontrol.password": None, "SettingsSaved": True, "RestartNeeded": False}
    assert saved_configs[-1].password == "new secret"
    assert await rpc.error("Echo", {"Echo": "x"}) == codes.UNKNOWN_TOKEN
    assert (await rpc.request("Authenticate", {"API": 1, "Password": PASSWORD}))["error"]["code"] \
        == codes.INVALID_PASSWORD
    await rpc.authenticate("new secret")
    assert await rpc.result("Echo", {"Echo": "x"}) == {"Result": "x"}


@pytest.mark.parametrize("params", [
    {"i2pcontrol.port": "0"}, {"i2pcontrol.port": "70000"}, {"i2pcontrol.port": None},
    {"i2pcontrol.address": "example.com"}, {"i2pcontrol.address": 127},
    {"i2pcontrol.password": ""}, {"i2pcontrol.password": None}, {"i2pcontrol.password": "x" * 257},
])
async def test_i2pcontrol_bad_values(rpc, service, saved_configs, params):
    assert await rpc.error("I2PControl", params) == codes.INVALID_PARAMS
    assert saved_configs == [] and service.config.password == PASSWORD


# -- pyi2p.* extensions --

async def test_extension_summary(rpc):
    result = await rpc.result("pyi2p.Summary")
    assert result["RouterHash"] == b64(ROUTER_HASH)
    assert result["Uptime"] == 3723500
    assert result["NetStatus"] == 2 and result["NetStatusName"] == "FIREWALLED"
    assert (result["KnownRouters"], result["Floodfills"], result["LeaseSets"]) == (120, 9, 4)
    assert result["Peers"] == {"NTCP2": 2, "SSU2": 1}
    assert result["OurTunnels"] == {"building": 1, "established": 2}
    assert result["ParticipatingTunnels"] == 3 and result["BuildSuccessRatio"] == 0.84
    assert result["NTCP2"] == {"Host": "127.0.0.1", "Port": "12345"}
    assert result["Destinations"] == 1
    assert result["Bandwidth"] == {"Inbound1s": 1500.0, "Inbound15s": 1200.5,
                                   "Outbound1s": 900.0, "Outbound15s": 800.25}


async def test_extension_peers(rpc):
    peers = (await rpc.result("pyi2p.Peers"))["Peers"]
    assert peers[1] == {"Hash": b64(HOP_B), "Transport": "NTCP2", "Inbound": True, "Caps": "LU",
                        "Address": "127.0.0.3:23456", "Established": 1_750_000_100_500}
    assert [p["Transport"] for p in peers] == ["NTCP2", "NTCP2", "SSU2"]


async def test_extension_tunnels(rpc):
    result = await rpc.result("pyi2p.Tunnels")
    assert result["Participating"] == 3 and result["BuildSuccessRatio"] == 0.84
    assert result["Tunnels"][0] == {"TunnelId": 1001, "Direction": "inbound", "Hops": [b64(HOP_A), b64(HOP_B)],
                                    "State": "established", "Expires": 1_750_000_600_000, "Pool": "exploratory"}
    assert result["Tunnels"][2]["Hops"] == []


def test_hashes_use_the_i2p_base64_alphabet():
    assert b64(b"\xfb\xff\xbf") == "-~-~"  # '+' and '/' in standard Base64


async def test_extension_netdb_and_destinations(rpc):
    assert await rpc.result("pyi2p.NetDb") == {"KnownRouters": 120, "Floodfills": 9, "LeaseSets": 4,
                                               "IsReseeding": False}
    assert await rpc.result("pyi2p.Destinations") == {"Destinations": [{"B32": "a" * 52 + ".b32.i2p",
                                                                        "Name": "shared clients"}]}


@pytest.mark.parametrize("method", ["pyi2p.Summary", "pyi2p.Peers", "pyi2p.Tunnels", "pyi2p.NetDb",
                                    "pyi2p.Destinations", "RouterInfo", "RouterManager", "NetworkSetting",
                                    "I2PControl", "GetRate", "Echo"])
async def test_every_method_needs_a_token(rpc, router, method):
    answer = await rpc.request(method, {"Shutdown": None})
    assert answer["error"]["code"] == codes.NO_TOKEN
    answer = await rpc.request(method, {"Shutdown": None, "Token": "forged"})
    assert answer["error"]["code"] == codes.UNKNOWN_TOKEN
    assert router.actions == []


# -- envelope errors over HTTP --

async def test_unknown_method(rpc):
    assert await rpc.error("NoSuchMethod") == codes.METHOD_NOT_FOUND
    assert await rpc.error("AdvancedSettings", {"GetAll": None}) == codes.METHOD_NOT_FOUND


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"[1,", b'{"a": NaN}', b"[" * 5000 + b"]" * 5000, b" "])
async def test_malformed_json(rpc, body):
    status, answer = await rpc.raw(body)
    assert answer["error"]["code"] == codes.PARSE_ERROR and answer["id"] is None


@pytest.mark.parametrize("message, expected_id", [
    ({"jsonrpc": "1.0", "id": 7, "method": "Echo"}, 7),
    ({"id": 7, "method": "Echo"}, 7),
    ({"jsonrpc": "2.0", "id": 7, "method": 5}, 7),
    ({"jsonrpc": "2.0", "id": 7, "method": "Echo", "params": "x"}, 7),
    ({"jsonrpc": "2.0", "id": {"a": 1}, "method": "Echo"}, None),
    ({"jsonrpc": "2.0", "id": True, "method": "Echo"}, None),
    ('"just a string"', None),  # a JSON string, sent as is
    (17, None),
    ([], None),
])
async def test_invalid_requests(rpc, message, expected_id):
    status, answer = await rpc.raw(message)
    assert status == 200
    assert answer["error"]["code"] == codes.INVALID_REQUEST and answer["id"] == expected_id


async def test_batch(rpc):
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "Echo", "params": {"Echo": "a", "Token": rpc.token}},
        {"jsonrpc": "2.0", "method": "Echo", "params": {"Echo": "notification", "Token": rpc.token}},
        {"jsonrpc": "2.0", "id": "two", "method": "Nope"},
        5,
    ]
    status, answer = await rpc.raw(batch)
    assert [(r["id"], r.get("result"), r.get("error", {}).get("code")) for r in answer] == [
        (1, {"Result": "a"}, None), ("two", None, codes.METHOD_NOT_FOUND), (None, None, codes.INVALID_REQUEST)]


async def test_batch_is_bounded(rpc):
    item = {"jsonrpc": "2.0", "id": 1, "method": "Echo", "params": {"Echo": "a", "Token": rpc.token}}
    status, answer = await rpc.raw([item] * (codes.MAX_BATCH + 1))
    assert answer["error"]["code"] == codes.INVALID_REQUEST


async def test_notification_gets_no_body(rpc, router):
    status, answer = await rpc.raw({"jsonrpc": "2.0", "method": "RouterManager",
                                    "params": {"Reseed": None, "Token": rpc.token}})
    assert status == 204 and answer is None
    assert router.actions == ["reseed"]


async def test_both_paths_answer(rpc):
    for path in ("/", "/jsonrpc", "/jsonrpc/"):
        answer = await rpc.request("Echo", {"Echo": path, "Token": rpc.token}, path=path)
        assert answer["result"] == {"Result": path}


async def test_http_level_errors_are_json(rpc):
    response = await rpc.client.get("/jsonrpc")
    assert response.status == 405 and (await response.json())["error"]["code"] == codes.INVALID_REQUEST
    response = await rpc.client.post("/elsewhere", data=b"{}")
    assert response.status == 404 and (await response.json())["error"]["code"] == codes.INVALID_REQUEST
    assert response.content_type == "application/json"


async def test_oversized_body(rpc):
    big = b'{"jsonrpc":"2.0","id":1,"method":"Echo","params":{"Echo":"' + b"x" * 70_000 + b'"}}'
    status, answer = await rpc.raw(big)
    assert status == 413 and answer["error"]["code"] == codes.INVALID_REQUEST


async def test_oversized_chunked_body(rpc):
    async def chunks():
        for _ in range(20):
            yield b"x" * 8192
    response = await rpc.client.post("/jsonrpc", data=chunks())
    assert response.status == 413 and (await response.json())["error"]["code"] == codes.INVALID_REQUEST


async def test_foreign_host_header_is_refused(rpc):
    status, answer = await rpc.raw({"jsonrpc": "2.0", "id": 1, "method": "Echo"},
                                   headers={"Host": "attacker.example:7650"})
    assert status == 403 and answer["error"]["code"] == codes.INVALID_REQUEST
    status, answer = await rpc.raw({"jsonrpc": "2.0", "id": 1, "method": "Echo",
                                    "params": {"Echo": "ok", "Token": rpc.token}}, headers={"Host": "localhost:7650"})
    assert status == 200 and answer["result"] == {"Result": "ok"}

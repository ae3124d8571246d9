"""Session option rules, the registry and routing by protocol and port, without sockets."""
from __future__ import annotations

import pytest

from core.data.privatekeys import PrivateKeys
from core.sam.parser import SamError, parse_line
from core.sam.sessions import (DestinationSession, SessionRegistry, Subsession, check_primary_options, parse_style,
                               route, router_options, subsession_spec)


def spec(line: str, *, is_add: bool = True):
    command = parse_line(line)
    return subsession_spec(command, parse_style(command.get("STYLE"), allow_primary=False), is_add=is_add)


def test_styles():
    assert parse_style("master", allow_primary=True) == "PRIMARY"
    assert parse_style("Datagram3", allow_primary=False) == "DATAGRAM3"
    for bad, allow in (("PRIMARY", False), ("STREAMS", True), (None, True)):
        with pytest.raises(SamError):
            parse_style(bad, allow_primary=allow)


def test_add_defaults_listen_port_to_from_port():
    s = spec("SESSION ADD STYLE=DATAGRAM ID=d PORT=9 FROM_PORT=6881 TO_PORT=5 HOST=localhost")
    assert (s.listen_port, s.from_port, s.to_port, s.forward_port, s.forward_host) == (6881, 6881, 5, 9, "localhost")
    assert s.send_protocol == 17
    created = spec("SESSION CREATE STYLE=DATAGRAM ID=d FROM_PORT=6881", is_add=False)
    assert created.listen_port == 0 and created.forward_port is None


def test_raw_protocols():
    s = spec("SESSION ADD STYLE=RAW ID=r PORT=1 PROTOCOL=200 HEADER=true")
    assert (s.protocol, s.listen_protocol, s.header, s.send_protocol) == (200, 200, True, 200)
    assert spec("SESSION ADD STYLE=RAW ID=r PORT=1 LISTEN_PROTOCOL=0").listen_protocol == 0
    for bad in ("PROTOCOL=6", "PROTOCOL=19", "PROTOCOL=20", "LISTEN_PROTOCOL=6", "PROTOCOL=-1", "HEADER=1"):
        with pytest.raises(SamError):
            spec(f"SESSION ADD STYLE=RAW ID=r PORT=1 {bad}")


def test_router_options_leave_out_what_sam_reads():
    command = parse_line("SESSION CREATE STYLE=STREAM ID=x DESTINATION=TRANSIENT SIGNATURE_TYPE=7 "
                         "inbound.length=1 i2cp.leaseSetEncType=4 i2p.streaming.maxConnsPerMinute=5 "
                         "sam.udp.port=7655 FROM_PORT=1")
    assert router_options(command) == {"inbound.length": "1", "i2cp.leaseSetEncType": "4",
                                       "i2p.streaming.maxConnsPerMinute": "5"}


def test_primary_rejects_subsession_options():
    check_primary_options(parse_line("SESSION CREATE STYLE=PRIMARY ID=p DESTINATION=TRANSIENT inbound.length=1"))
    with pytest.raises(SamError):
        check_primary_options(parse_line("SESSION CREATE STYLE=PRIMARY ID=p DESTINATION=TRANSIENT HEADER=true"))


def _owner() -> DestinationSession:
    return DestinationSession("p", "PRIMARY", PrivateKeys.generate(7), None, (3, 3))


def _subs(*lines: str) -> list[Subsession]:
    owner = _owner()
    return [Subsession(spec(line), owner) for line in lines]


def test_routing_by_protocol_and_port():
    subs = _subs("SESSION ADD STYLE=STREAM ID=web FROM_PORT=80",
                 "SESSION ADD STYLE=STREAM ID=any",
                 "SESSION ADD STYLE=DATAGRAM ID=dht PORT=1 FROM_PORT=6881",
                 "SESSION ADD STYLE=DATAGRAM2 ID=d2 PORT=1",
                 "SESSION ADD STYLE=RAW ID=raw77 PORT=1 LISTEN_PROTOCOL=77",
                 "SESSION ADD STYLE=RAW ID=default PORT=1 LISTEN_PROTOCOL=0")
    names = {(protocol, port): getattr(route(subs, protocol, port), "nickname", None)
             for protocol, port in [(6, 80), (6, 81), (6, 0), (17, 6881), (17, 1), (19, 5), (20, 5), (77, 3),
                                    (18, 3), (200, 0)]}
    assert names == {(6, 80): "web", (6, 81): "any", (6, 0): "any", (17, 6881): "dht", (17, 1): "default",
                     (19, 5): "d2", (20, 5): "default", (77, 3): "raw77", (18, 3): "default", (200, 0): "default"}


def test_streaming_never_goes_to_raw_and_unmatched_traffic_is_dropped():
    subs = _subs("SESSION ADD STYLE=RAW ID=default PORT=1 LISTEN_PROTOCOL=0",
                 "SESSION ADD STYLE=DATAGRAM ID=dht PORT=1 FROM_PORT=6881")
    assert route(subs, 6, 0) is None
    assert route(subs[1:], 17, 5) is None
    assert route(subs[1:], 18, 6881) is None


def test_exact_port_beats_wildcard_protocol():
    subs = _subs("SESSION ADD STYLE=RAW ID=anyproto PORT=1 LISTEN_PROTOCOL=0 FROM_PORT=9",
                 "SESSION ADD STYLE=RAW ID=anyport PORT=1 LISTEN_PROTOCOL=50")
    assert route(subs, 50, 9).nickname == "anyproto"
    assert route(subs, 50, 8).nickname == "anyport"


def test_registry_uniqueness_and_release():
    registry = SessionRegistry(max_sessions=1)
    registry.reserve("a", b"h" * 32)
    with pytest.raises(SamError) as dup_id:
        registry.reserve("a")
    assert dup_id.value.result == "DUPLICATED_ID"
    with pytest.raises(SamError) as dup_dest:
        registry.reserve("b", b"h" * 32)
    assert dup_dest.value.result == "DUPLICATED_DEST"
    with pytest.raises(SamError) as full:
        registry.reserve("c", b"i" * 32)
    assert full.value.result == "I2P_ERROR"
    with pytest.raises(SamError) as missing:
        registry.find("a")                  # reserved but not ready: not usable yet
    assert missing.value.result == "INVALID_ID"
    registry.release("a", b"h" * 32)
    registry.reserve("a", b"i" * 32)


def test_registry_finds_subsessions_not_primaries():
    registry = SessionRegistry()
    owner = _owner()
    registry.reserve("p", owner.keys.destination.hash)
    registry.register(owner)
    registry.reserve("s")
    sub = Subsession(spec("SESSION ADD STYLE=STREAM ID=s"), owner)
    owner.subsessions["s"] = sub
    registry.add_subsession(sub)
    assert registry.find_subsession("s", "STREAM") is sub
    with pytest.raises(SamError):
        registry.find_subsession("p")
    with pytest.raises(SamError):
        registry.find_subsession("s", "DATAGRAM")
    registry.unregister(owner)
    assert len(registry) == 0
    with pytest.raises(SamError):
        registry.find("s")

"""The router's identity and data dir: created once, 0600, reloaded the same, RouterInfo signed."""
import argparse
import stat

import pytest

from core.clock import FakeClock
from core.config import ConfigError, load_config
from core.data.encoding import b64encode
from core.data.routerinfo import RouterInfo
from core.router import Router
from core.transport.ssu2.driver import introduced_ssu2
from pyi2p.run import add_router_options, config_from_args


async def start_router(datadir, **overrides):
    overrides.setdefault("control_port", 0)
    router = Router(load_config(datadir, overrides), clock=FakeClock())
    await router.start()
    await router.stop()
    return router


async def test_first_start_creates_private_files_0600_and_reload_keeps_identity(tmp_path):
    first = await start_router(tmp_path, netid=42)
    for name in ("router.keys", "ntcp2.keys"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    second = await start_router(tmp_path, netid=42)
    assert second.hash == first.hash
    assert second.keys.ntcp2_static.public_bytes == first.keys.ntcp2_static.public_bytes


async def test_router_info_on_disk_is_signed_and_announces_ntcp2(tmp_path, free_port):
    router = await start_router(tmp_path, netid=42, host="127.0.0.1", port=free_port)
    ri = RouterInfo.parse((tmp_path / "router.info").read_bytes())
    assert ri.verify()
    assert ri.hash == router.hash
    assert ri.netid == 42
    (address,) = ri.addresses_of("NTCP2")
    assert address.host == "127.0.0.1" and address.port == free_port
    assert address.s == router.keys.ntcp2_static.public_bytes
    assert address.i == router.keys.ntcp2_iv
    assert "R" in ri.caps


async def test_without_host_the_address_is_unpublished(tmp_path):
    await start_router(tmp_path, netid=42)
    ri = RouterInfo.parse((tmp_path / "router.info").read_bytes())
    (address,) = ri.addresses_of("NTCP2")
    assert address.host is None and address.s is not None
    assert "U" in ri.caps and ri.netid == 42


def test_port_is_chosen_once_and_kept(tmp_path):
    port = load_config(tmp_path).port
    assert 9000 <= port <= 31000
    assert load_config(tmp_path).port == port
    assert load_config(tmp_path, {"port": 4567}).port == 4567
    assert load_config(tmp_path).port == port


@pytest.mark.parametrize("text", ["port = 'x'\n", "netid = 999\n", "bogus = 1\n", "port = [\n",
                                  "bandwidth = 'Q'\n"])
def test_bad_config_is_a_clear_error(tmp_path, text):
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError):
        load_config(tmp_path)


async def test_reseed_servers_are_asked_while_the_netdb_is_small(tmp_path, monkeypatch):
    """With reseed_urls set, the router runs the reseed service (here against a closed loopback port)."""
    router = Router(load_config(tmp_path, {"netid": 42, "control_port": 0,
                                           "reseed_urls": ("http://127.0.0.1:9/",)}), clock=FakeClock())
    await router.start()
    try:
        assert router.reseed_service is not None
        assert router.reseed_service.fetcher.urls == ["http://127.0.0.1:9/"]
        await router.reseed()
        assert router.reseed_service.needs_reseed()
    finally:
        await router.stop()


async def test_automatic_floodfill_after_two_hours_when_reachable_and_fast(tmp_path, free_port):
    clock = FakeClock()
    router = Router(load_config(tmp_path, {"netid": 42, "control_port": 0, "host": "127.0.0.1", "port": free_port,
                                           "floodfill": "auto", "bandwidth": "X"}), clock=clock)
    await router.start()
    try:
        assert not router.floodfill_active and "f" not in router.router_info.caps
        assert not router.floodfill_wanted()
        clock.advance(2 * 3600)
        assert router.floodfill_wanted()
        router.set_floodfill(router.floodfill_wanted())
        assert router.floodfill_active and router.netdb_service.floodfill
        assert "f" in router.router_info.caps
        assert "netdb.knownRouters" in router.router_info.options
    finally:
        await router.stop()


async def test_automatic_floodfill_never_when_unreachable_or_slow(tmp_path):
    clock = FakeClock()
    router = Router(load_config(tmp_path, {"netid": 42, "control_port": 0, "floodfill": "auto",
                                           "bandwidth": "L"}), clock=clock)
    await router.start()
    try:
        clock.advance(3 * 3600)
        assert not router.floodfill_wanted()
    finally:
        await router.stop()


def test_floodfill_setting_takes_true_false_or_auto(tmp_path):
    (tmp_path / "config.toml").write_text('port = 12000\nfloodfill = "auto"\n')
    assert load_config(tmp_path).floodfill == "auto"
    (tmp_path / "config.toml").write_text('port = 12000\nfloodfill = "sometimes"\n')
    with pytest.raises(ConfigError):
        load_config(tmp_path)


async def test_ssu2_is_on_by_default_on_the_ntcp2_port_with_its_own_private_keys(tmp_path, free_port):
    load_config(tmp_path, {"port": free_port})          # writes config.toml, [ssu2] left as the default
    router = await start_router(tmp_path, netid=42, host="127.0.0.1")
    assert stat.S_IMODE((tmp_path / "ssu2.keys").stat().st_mode) == 0o600
    ri = RouterInfo.parse((tmp_path / "router.info").read_bytes())
    (address,) = ri.addresses_of("SSU2")
    assert (address.host, address.port, address.v) == ("127.0.0.1", free_port, "2")
    assert address.s == router.keys.ssu2_static.public_bytes and address.i == router.keys.ssu2_intro
    assert address.caps == "BC"          # peer tests as Bob and Charlie, introductions as Bob
    (ntcp2,) = ri.addresses_of("NTCP2")
    assert ntcp2.port == address.port == router.transports.ssu2.port     # one port number, TCP and UDP
    # `[ssu2] enabled = false` (or `pyi2p run --no-ssu2`): NTCP2 only, no SSU2 address, no UDP socket
    load_config(tmp_path / "plain")
    with open(tmp_path / "plain" / "config.toml", "a") as f:
        f.write("\n[ssu2]\nenabled = false\n")
    plain = await start_router(tmp_path / "plain", netid=42)
    assert not RouterInfo.parse((tmp_path / "plain" / "router.info").read_bytes()).addresses_of("SSU2")
    assert plain.transports.ssu2 is None
    args = argparse.ArgumentParser()
    add_router_options(args)
    assert config_from_args(args.parse_args(["--datadir", str(tmp_path / "flag"), "--no-ssu2"])).ssu2_enabled is False
    assert config_from_args(args.parse_args(["--datadir", str(tmp_path / "flag")])).ssu2_enabled is True


async def test_firewalled_ssu2_address_names_the_introducers_the_transports_hold(tmp_path):
    load_config(tmp_path, {"port": 12000})
    with open(tmp_path / "config.toml", "a") as f:
        f.write("\n[ssu2]\nenabled = true\n")
    router = await start_router(tmp_path, netid=42)
    bob = bytes(range(32))
    router.transports.introducers = [(bob, 77, 1_750_003_600)]
    router._introducers_changed()
    (address,) = router.router_info.addresses_of("SSU2")
    assert address.host is None and address.caps == "4"
    assert (address.get("ih0"), address.get("itag0"), address.get("iexp0")) == (b64encode(bob), "77", "1750003600")
    assert introduced_ssu2(router.router_info, 1_750_000_000)[1] == [(bob, 77)]
    assert introduced_ssu2(router.router_info, 1_750_003_601) is None          # expired


def test_unknown_ssu2_setting_is_an_error(tmp_path):
    load_config(tmp_path)
    with open(tmp_path / "config.toml", "a") as f:
        f.write("\n[ssu2]\nenable = true\n")
    with pytest.raises(ConfigError):
        load_config(tmp_path)

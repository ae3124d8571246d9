"""The testnet harness: its pure parts everywhere, the real i2pd network where root and i2pd are there."""
from __future__ import annotations

import argparse
import base64
import configparser
import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.data.encoding import b64encode
from core.data.errors import ProtocolError
from core.data.routerinfo import RouterInfo
from pyi2p import testnet as tn
from pyi2p.testnet import Router, RouterStatus, Testnet, TestnetError, private_netns_name

FIXTURE_RI = Path(__file__).parent.parent / "data" / "fixtures" / "i2pd-router.info"

# Trimmed from the web console of i2pd 2.45.1 running in this testnet.
MAIN_PAGE = """<div class="content"><b>Uptime:</b> 19 seconds<br>
<b>Network status:</b> Testing<br>
<b>Tunnel creation success rate:</b> 100%<br>
<div class="slidecontent">
<b>Router Ident:</b> 1Vj7I~P3WfzSB8p4iELLR4D2FKTN5VBUPL1yMTHzEuw=<br>
<b>Router Caps:</b> Xf<br>
</div>
<b>Routers:</b> 3 <b>Floodfills:</b> 2 <b>LeaseSets:</b> 0<br>
<b>Client Tunnels:</b> 14 <b>Transit Tunnels:</b> 19<br>
"""
TRANSPORTS_PAGE = """<div class="content"><b>Transports:</b><br>
<div class='slide'><label for='slide_ntcp2'><b>NTCP2</b> ( 3 )</label>
<input type="checkbox" id="slide_ntcp2" />
<div class="slidecontent list"><div class="listitem">
 &#8658; DG3B: 198.18.0.1:20000 [55141:62071]</div>

<div class="listitem">
 &#8658; Gwx3: 198.18.0.5:20040 [79758:14731]</div>

<div class="listitem">
ykWn: 198.18.0.2:51037 &#8658;  [56708:96313]</div>

</div>
</div>
<div class='slide'><label for='slide_ssu2'><b>SSU2</b> ( 2 )</label>
<input type="checkbox" id="slide_ssu2" />
<div class="slidecontent list"><div class="listitem">
 &#8658; Gwx3: 198.18.0.5:20040 [1266:2125]</div>

<div class="listitem">
jFc1: 198.18.0.4:20030 &#8658;  [4270:1579]</div>

</div>
</div>
</div>
"""
TUNNELS_PAGE = """<b>Inbound tunnels:</b><br>
<div class="list">
<div class="listitem">&#8658; 1348648690:me<span class="tunnel established"> established</span>,  5&nbsp;KiB
</div>
<div class="listitem">&#8658; 2009091709:me<span class="tunnel established"> established (exploratory)</span>,  0&nbsp;KiB
</div>
<div class="listitem">&#8658; z6SA &#8658; 2214190269:me<span class="tunnel established"> established (exploratory)</span>,  0&nbsp;KiB
</div>
<div class="listitem">&#8658; Mkrt &#8658; 1234:me<span class="tunnel building"> building (exploratory)</span>,  0&nbsp;KiB
</div>
</div>
<br>
<b>Outbound tunnels:</b><br>
<div class="list">
<div class="listitem">3023714455:me &#8658; z6SA &#8658;<span class="tunnel established"> established</span>,  3&nbsp;KiB
</div>
<div class="listitem">1886938670:me &#8658; Mkrt &#8658;<span class="tunnel established"> established (exploratory)</span>,  0&nbsp;KiB
</div>
<div class="listitem">1886938671:me &#8658; Mkrt &#8658; z6SA &#8658;<span class="tunnel established"> established (exploratory)</span>,  0&nbsp;KiB
</div>
</div>
"""


def read_conf(text: str) -> configparser.ConfigParser:
    """i2pd.conf is INI with a nameless top section."""
    conf = configparser.ConfigParser(inline_comment_prefixes=("#",), interpolation=None)
    conf.read_string("[main]\n" + text)
    return conf


# ---------------------------------------------------------------- pure parts (no root needed)

def test_router_hash_is_sha256_of_the_identity_in_an_i2pd_router_info():
    ri = FIXTURE_RI.read_bytes()
    cert_len = int.from_bytes(ri[385:387], "big")
    expected = base64.b64encode(hashlib.sha256(ri[:387 + cert_len]).digest(), b"-~").decode()
    assert tn.router_hash_b64(ri) == expected
    assert tn.netdb_file("/d", expected) == Path(f"/d/netDb/r{expected[0]}/routerInfo-{expected}.dat")


@given(st.binary(max_size=600))
def test_router_hash_of_garbage_raises_only_protocol_errors(data):
    try:
        tn.router_hash_b64(data)
    except ProtocolError:
        pass


@given(st.integers(0, 1000), st.binary(min_size=1, max_size=8), st.integers(300, 1000))
def test_router_hash_of_mutated_router_info_raises_only_protocol_errors(position, patch, length):
    ri = bytearray(FIXTURE_RI.read_bytes())
    position %= len(ri)
    ri[position:position + len(patch)] = patch
    try:
        assert len(tn.router_hash_b64(bytes(ri[:length]))) == 44
    except ProtocolError:
        pass


def test_unavailable_reason_names_what_is_missing(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "root" in tn.unavailable_reason()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real_which = tn.shutil.which
    monkeypatch.setattr(tn.shutil, "which", lambda name: None if name == "ip" else real_which(name))
    assert "`ip`" in tn.unavailable_reason()
    monkeypatch.setattr(tn, "i2pd_binary", lambda: None)
    monkeypatch.setattr(tn.shutil, "which", lambda name: "/usr/sbin/ip")
    assert "i2pd" in tn.unavailable_reason()


def test_only_whole_signed_router_infos_are_read(tmp_path):
    ri = FIXTURE_RI.read_bytes()
    path = tmp_path / "router.info"
    assert tn.read_signed_router_info(path) is None          # not there yet
    path.write_bytes(ri[:-10])
    assert tn.read_signed_router_info(path) is None          # half-written
    path.write_bytes(ri[:-1] + bytes([ri[-1] ^ 1]))
    assert tn.read_signed_router_info(path) is None          # signature does not verify
    path.write_bytes(ri)
    assert tn.read_signed_router_info(path) == ri


def test_reseed_zip_holds_every_router_info_under_its_netdb_name():
    infos = {"AAAA~": b"one", "B-bb=": b"two" * 100}
    with zipfile.ZipFile(io.BytesIO(tn.build_reseed_zip(infos))) as z:
        assert sorted(z.namelist()) == ["routerInfo-AAAA~.dat", "routerInfo-B-bb=.dat"]
        assert z.read("routerInfo-B-bb=.dat") == b"two" * 100
        assert z.testzip() is None


def test_private_namespace_names_carry_the_owner_and_never_repeat():
    names = {tn.private_netns_name("t") for _ in range(50)}
    assert len(names) == 50
    for name in names:
        m = tn.PRIVATE_NETNS_NAME.fullmatch(name)
        assert m and int(m.group(1)) == os.getpid() and len(name) <= 31
    assert tn.PRIVATE_NETNS_NAME.fullmatch("pyi2p-t123").group(1) == "123"     # names of earlier runs
    assert tn.PRIVATE_NETNS_NAME.fullmatch("pyi2p-testnet") is None


def test_layout_gives_each_router_its_own_address_and_ports(tmp_path):
    net = Testnet(tmp_path, i2pd_count=3, pyi2p_count=2, floodfills=2, first_port=30000)
    assert [r.name for r in net.routers] == ["r1", "r2", "r3", "p1", "p2"]
    assert [r.address for r in net.routers] == ["198.18.0.1", "198.18.0.2", "198.18.0.3",
                                                "198.18.0.101", "198.18.0.102"]
    assert [r.floodfill for r in net.routers] == [True, True, False, False, False]
    r3 = net.router("r3")
    assert (r3.port, r3.console, r3.sam, r3.http_proxy, r3.i2cp) == (30020, 30021, 30022, 30023, 30024)
    assert (net.router("p2").port, net.router("p2").i2pcontrol, net.router("p2").sam) == (30040, 30041, 30042)
    ports = [p for r in net.routers for p in (r.port, r.console, r.sam, r.http_proxy, r.i2cp) if p]
    assert len(ports) == len(set(ports))
    with pytest.raises(TestnetError):
        net.router("r4")


@pytest.mark.parametrize("kwargs", [{"i2pd_count": 0}, {"floodfills": 6}, {"first_port": 80},
                                    {"netns": "../etc"}, {"pyi2p_count": -1}])
def test_bad_parameters_are_refused(tmp_path, kwargs):
    with pytest.raises(TestnetError):
        Testnet(tmp_path, **kwargs)


def test_i2pd_config_has_the_options_a_private_testnet_needs(tmp_path):
    net = Testnet(tmp_path, i2pd_count=3, netid=42)
    for router in (net.router("r1"), net.router("r3")):
        conf = read_conf(tn.i2pd_config(router, netid=42, seed_file="/s/seed.zip", hops=1))
        main = conf["main"]
        assert main["netid"] == "42"
        assert main["host"] == main["address4"] == router.address
        assert main["port"] == conf["ntcp2"]["port"] == conf["ssu2"]["port"] == str(router.port)
        assert main["floodfill"] == ("true" if router.floodfill else "false")
        assert (main["ipv6"], main["nat"], main["bandwidth"], main["notransit"]) == ("false", "false", "X", "false")
        assert conf["reseed"]["zipfile"] == "/s/seed.zip"
        assert conf["reseed"]["urls"] == conf["reseed"]["yggurls"] == ""
        assert conf["reseed"]["verify"] == "false"
        assert conf["upnp"]["enabled"] == conf["nettime"]["enabled"] == conf["i2pcontrol"]["enabled"] == "false"
        assert conf["addressbook"]["enabled"] == "true"
        # an empty subscriptions/defaulturl key aborts i2pd 2.45.1 three minutes after start
        assert "subscriptions" not in conf["addressbook"] and "defaulturl" not in conf["addressbook"]
        assert conf["persist"]["profiles"] == "false"
        for service, port in (("http", router.console), ("sam", router.sam), ("httpproxy", router.http_proxy),
                              ("i2cp", router.i2cp)):
            assert (conf[service]["enabled"], conf[service]["address"], conf[service]["port"]) == \
                ("true", "127.0.0.1", str(port))
        assert conf["exploratory"]["inbound.length"] == conf["exploratory"]["outbound.length"] == "1"
        assert main["logfile"] == f"{router.datadir}/i2pd.log"


def test_pyi2p_routers_get_their_own_control_and_sam_ports_and_keep_what_is_set(tmp_path):
    net = Testnet(tmp_path, i2pd_count=1, pyi2p_count=2, floodfills=1, netid=42, first_port=30000)
    p1, p2 = net.router("p1"), net.router("p2")
    Path(p2.datadir).mkdir(parents=True)
    (Path(p2.datadir) / "config.toml").write_text("port = 30020\nfloodfill = true\nbandwidth = \"O\"\n")
    net._write_files()
    net._write_files()                                   # a second up adds nothing
    first = tomllib.loads((Path(p1.datadir) / "config.toml").read_text())
    second = tomllib.loads((Path(p2.datadir) / "config.toml").read_text())
    apps_off = {app: {"enabled": False} for app in tn.PYI2P_APPS}   # the apps would share one 127.0.0.1
    assert first == {"port": 30010, "netid": 42, "control_port": 30011, "bandwidth": "X", "sam_port": 30012,
                     "sam_udp_port": 0, **apps_off}
    assert second == {"port": 30020, "floodfill": True, "bandwidth": "O", "netid": 42, "control_port": 30021,
                      "sam_port": 30022, "sam_udp_port": 0, **apps_off}
    assert (p1.i2pcontrol, p2.i2pcontrol, p1.sam, p2.sam) == (30011, 30021, 30012, 30022)


def test_parse_main_page():
    summary = tn.parse_main_page(MAIN_PAGE)
    assert summary == tn.ConsoleSummary(known_routers=3, floodfills=2, network_status="Testing",
                                        router_ident="1Vj7I~P3WfzSB8p4iELLR4D2FKTN5VBUPL1yMTHzEuw=")


def test_parse_transports_page():
    sessions = tn.parse_transports_page(TRANSPORTS_PAGE)
    assert [(s.transport, s.hash_prefix, s.address, s.port, s.outbound) for s in sessions] == [
        ("NTCP2", "DG3B", "198.18.0.1", 20000, True),
        ("NTCP2", "Gwx3", "198.18.0.5", 20040, True),
        ("NTCP2", "ykWn", "198.18.0.2", 51037, False),
        ("SSU2", "Gwx3", "198.18.0.5", 20040, True),
        ("SSU2", "jFc1", "198.18.0.4", 20030, False),
    ]


def test_parse_tunnels_page_counts_only_established_exploratory_tunnels_with_hops():
    assert tn.parse_tunnels_page(TUNNELS_PAGE) == (1, 2)


@given(st.text(max_size=400) | st.sampled_from([MAIN_PAGE, TRANSPORTS_PAGE, TUNNELS_PAGE]).flatmap(
    lambda page: st.integers(0, len(page)).map(lambda n: page[:n])))
def test_console_parsers_take_any_text(text):
    assert isinstance(tn.parse_main_page(text), tn.ConsoleSummary)
    assert all(s.transport in ("NTCP2", "SSU2") for s in tn.parse_transports_page(text))
    inbound, outbound = tn.parse_tunnels_page(text)
    assert inbound >= 0 and outbound >= 0


def test_status_readiness_rules():
    full = RouterStatus("r1", True, known_routers=5, ntcp2_sessions=1, ssu2_sessions=0,
                        exploratory_in=1, exploratory_out=1)
    assert full.ready(5)
    assert not full.ready(6)
    assert not RouterStatus("r1", False).ready(5)
    assert not RouterStatus("r1", True, known_routers=5, ntcp2_sessions=0, ssu2_sessions=0,
                            exploratory_in=1, exploratory_out=1).ready(5)
    assert not RouterStatus("r1", True, known_routers=5, ntcp2_sessions=2, exploratory_in=0,
                            exploratory_out=1).ready(5)
    assert RouterStatus("p1", True).ready(5)               # a pyi2p router: running is all we ask
    assert not RouterStatus("r1", True, error="console: refused").ready(5)


def test_state_file_round_trip(tmp_path):
    net = Testnet(tmp_path, i2pd_count=2, pyi2p_count=1, netns="pyi2p-x", first_port=25000)
    net.router("r1").pid = 12345
    net.router("r2").ident_hash = "x" * 44
    net.extra_addresses.append("198.18.0.201")
    net.save()
    loaded = Testnet.load(tmp_path)
    assert loaded is not None
    assert loaded.routers == net.routers
    assert loaded._layout() == net._layout()
    assert loaded.extra_addresses == ["198.18.0.201"]
    assert Testnet.load(tmp_path / "nothing") is None
    (tmp_path / tn.STATE_FILE).write_text("{not json")
    with pytest.raises(TestnetError):
        Testnet.load(tmp_path)


def test_process_ownership_needs_the_routers_own_command_line(tmp_path):
    router = Router("p1", "pyi2p", str(tmp_path / "p1"), "198.18.0.101", 20050)
    assert not router.owns_process(None)
    assert not router.owns_process(os.getpid())            # pytest is not that router
    assert not router.owns_process(2 ** 22 + 1)              # above pid_max: no such process
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "run", "--datadir",
                             router.datadir])
    try:
        for _ in range(500):                             # until exec, the child's cmdline is empty
            if router.owns_process(fake.pid):
                break
            time.sleep(0.01)
        assert router.owns_process(fake.pid)
        assert not Router("p2", "pyi2p", str(tmp_path / "p2"), "198.18.0.102", 20060).owns_process(fake.pid)
    finally:
        fake.send_signal(signal.SIGKILL)
        fake.wait(timeout=10)
    assert not router.owns_process(fake.pid)


def test_an_empty_command_line_read_is_tried_again(monkeypatch):
    """/proc/PID/cmdline of a running i2pd sometimes reads empty: a router seen as stopped for one read made
    the testnet stop every router while they wrote their identities."""
    reads = iter([b"", b"", b"i2pd\0--conf\0/d/i2pd.conf\0"])

    class Cmdline(io.BytesIO):
        def __init__(self, *args):
            super().__init__(next(reads))
    monkeypatch.setattr(tn, "open", Cmdline, raising=False)
    assert tn.process_argv(1234) == ["i2pd", "--conf", "/d/i2pd.conf"]
    reads = iter([b""] * 5)
    assert tn.process_argv(1234) == []                      # still empty: gone (an exiting process)
    monkeypatch.undo()
    assert tn.process_argv(os.getpid())                     # a live process: its argv
    assert tn.process_argv(None) == [] and tn.process_argv(2 ** 22 + 1) == []


def test_extra_processes_are_recorded_kept_and_stopped_by_down(tmp_path):
    net = Testnet(tmp_path, i2pd_count=1, floodfills=1, netns="pyi2p-x-none")   # no namespace: nothing to delete
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "extra-of", str(tmp_path)]
    extra = net.start_extra("sleeper", argv, in_netns=False)
    try:
        assert extra.running and extra.owns_process(extra.pid)
        assert not tn.Extra("other", [*argv[:-1], "elsewhere"], False).owns_process(extra.pid)
        loaded = Testnet.load(tmp_path)
        assert loaded.extras == [extra]
        again = loaded.start_extra("sleeper", argv, in_netns=False)      # still running: kept
        assert again.pid == extra.pid and len(loaded.extras) == 1
        assert "sleeper" in loaded.format_table()
        assert loaded.down() == []
        assert not extra.running and Testnet.load(tmp_path).extras[0].pid is None
    finally:
        if extra.running:
            os.kill(extra.pid, signal.SIGKILL)
    with pytest.raises(TestnetError, match="bad process name"):
        net.start_extra("../x", argv, in_netns=False)


def test_cli_parses_the_subcommands():
    parser = argparse.ArgumentParser(prog="pyi2p")
    tn.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["testnet", "up", "-n", "3", "-m", "1", "--base", "/b", "--netid", "43",
                              "--floodfills", "1", "--first-port", "21000", "--wait", "0"])
    assert (args.i2pd_count, args.pyi2p_count, args.base, args.netid, args.floodfills, args.first_port,
            args.wait) == (3, 1, "/b", 43, 1, 21000, 0)
    assert args.func is tn._cmd_up
    assert parser.parse_args(["testnet", "status"]).func is tn._cmd_status
    assert parser.parse_args(["testnet", "down", "--base", "/b"]).base == "/b"
    demo = parser.parse_args(["testnet", "up", "--demo", "--demo-ports", "1,2,3,4"])
    assert (demo.demo, demo.demo_ports, demo.pyi2p_count) == (True, "1,2,3,4", 0)
    assert parser.parse_args(["testnet", "up"]).demo is False


def test_cli_without_a_testnet(tmp_path, capsys):
    assert tn.main(["status", "--base", str(tmp_path)]) == 1
    assert "no testnet" in capsys.readouterr().err
    assert tn.main(["down", "--base", str(tmp_path)]) == 0
    assert not tn.log.handlers                            # progress output ends with the command


# ---------------------------------------------------------------- the real testnet

@pytest.mark.interop
def test_every_i2pd_knows_every_other_and_has_ntcp2_sessions(testnet):
    routers = testnet.i2pd_routers
    assert len(routers) == 5
    hashes = {r.ident_hash for r in routers}
    assert len(hashes) == 5 and all(len(h) == 44 for h in hashes)
    for r in routers:
        status = testnet.router_status(r)
        assert status.router_ident == r.ident_hash          # our hash of router.info = i2pd's own
        assert status.known_routers >= 5                     # counts itself too
        assert status.floodfills == 2
        peers = testnet.i2pd_peers(r)
        assert peers, f"{r.name} has no NTCP2 session"
        assert peers <= hashes - {r.ident_hash}, f"{r.name}: unexpected peers {peers - hashes}"
        assert tn.netdb_hashes(r.datadir) >= hashes - {r.ident_hash}


@pytest.mark.interop
def test_status_works_from_another_process(testnet):
    proc = subprocess.run([sys.executable, "-m", "pyi2p.testnet", "status", "--base", str(testnet.base)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "READY"
    for r in testnet.routers:
        assert any(line.startswith(r.name + " ") and r.ident_hash in line and f"{r.address}:{r.port}" in line
                   for line in lines)


@pytest.mark.interop
def test_in_netns_reaches_sam_and_returns_to_the_host_namespace(testnet):
    def namespace_inode() -> int:
        return os.stat("/proc/thread-self/ns/net").st_ino
    home = namespace_inode()
    with testnet.in_netns():
        assert namespace_inode() != home
        sock = socket.create_connection(("127.0.0.1", testnet.sam_port("r3")), timeout=5)
    assert namespace_inode() == home
    with sock:                                           # the socket stays in the namespace
        sock.sendall(b"HELLO VERSION MIN=3.0 MAX=3.1\n")
        reply = sock.makefile("rb").readline()
    assert reply.startswith(b"HELLO REPLY RESULT=OK VERSION=3.1"), reply


@pytest.mark.interop
def test_added_address_can_be_bound_inside_the_namespace(testnet):
    first = testnet.add_pyi2p_address()
    second = testnet.add_pyi2p_address()
    assert first != second and first.startswith("198.18.0.2")
    with testnet.in_netns():
        with socket.socket() as sock:
            sock.bind((second, 0))
    with pytest.raises(OSError):                         # the host namespace does not have it
        with socket.socket() as sock:
            sock.bind((second, 0))


def test_a_dead_i2pd_is_started_again_before_the_next_test(testnet):
    from .conftest import restart_dead_i2pd
    r5 = testnet.router("r5")
    old_pid = r5.pid
    os.kill(old_pid, signal.SIGKILL)                     # as i2pd 2.45.1's SAM thread segfault ends it
    deadline = time.monotonic() + 10
    while r5.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert restart_dead_i2pd(testnet) == ["r5"]
    assert r5.running and r5.pid != old_pid
    assert restart_dead_i2pd(testnet) == []             # all alive: nothing to do
    assert testnet.router_status("r5").known_routers == len(testnet.routers)


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}") and Path(f"/proc/{pid}/cmdline").read_bytes() != b""


@pytest.mark.interop
def test_up_is_idempotent_and_down_leaves_no_process_and_no_namespace(testnet_requirements, tmp_path):
    netns = private_netns_name("d")
    net = Testnet(tmp_path, i2pd_count=2, netns=netns, first_port=21000, die_with_parent=True)
    try:
        net.up(wait=0)
        pids = [r.pid for r in net.routers]
        assert all(r.running for r in net.routers) and tn.netns_exists(netns)
        assert set(tn.netns_pids(netns)) == set(pids)
        assert (tmp_path / "seed.zip").exists()
        assert tn.netdb_file(net.router("r1").datadir, net.router("r2").ident_hash).exists()
        net.up(wait=0)                                   # again: nothing restarts
        assert [r.pid for r in net.routers] == pids
        again = Testnet.load(tmp_path)
        with pytest.raises(TestnetError, match="other parameters"):
            Testnet(tmp_path, i2pd_count=3, netns=netns, first_port=21000).up(wait=0)
        assert again.down() == []                        # from the state file, as another process would
        assert not any(_alive(p) for p in pids)
        assert not tn.netns_exists(netns)
        assert again.down() == []
        # a router.info older than a day is signed afresh before it is seeded (i2pd drops stale netDbs)
        r1, r2 = net.router("r1"), net.router("r2")
        old = RouterInfo.parse(r1.router_info_path.read_bytes()).published
        two_days_ago = time.time() - 2 * 86400
        os.utime(r1.router_info_path, (two_days_ago, two_days_ago))
        net.up(wait=0)
        seeded = RouterInfo.parse(tn.netdb_file(r2.datadir, r1.ident_hash).read_bytes())
        assert seeded.published > old and b64encode(seeded.hash) == r1.ident_hash
        assert net.down() == [] and not tn.netns_exists(netns)
    finally:
        net.down()


@pytest.mark.interop
def test_pyi2p_router_that_writes_no_router_info_fails_clearly(testnet_requirements, tmp_path, monkeypatch):
    def broken_command(self, netid, seed_file):
        if self.kind == "i2pd":
            return original(self, netid, seed_file)
        return [sys.executable, "-c", "import sys; sys.exit('cannot start')", "run", "--datadir", self.datadir]
    original = Router.command
    monkeypatch.setattr(Router, "command", broken_command)
    net = Testnet(tmp_path, i2pd_count=1, pyi2p_count=1, floodfills=1, netns=private_netns_name("d"),
                  first_port=22000, die_with_parent=True)
    try:
        with pytest.raises(TestnetError, match="pyi2p run wrote no router.info.*cannot start"):
            net.up(wait=0)
    finally:
        net.down()
    assert not tn.netns_exists(net.netns)

"""tunnels.conf parsing: every option, i2pd's own file as is, warnings and errors with file:line."""
from __future__ import annotations

from core.data.encoding import b32encode
from apps.tunnels.config import (DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS, TunnelConfig, load_tunnels,
                                 parse_tunnels)

HASH_A = bytes(range(32))
HASH_B = bytes(range(32, 64))

# i2pd's packaged tunnels.conf (Debian 2.45.1), as an i2pd user has it
I2PD_DEFAULT = """\
[IRC-ILITA]
type = client
address = 127.0.0.1
port = 6668
destination = irc.ilita.i2p
destinationport = 6667
keys = irc-keys.dat

#[IRC-IRC2P]
#type = client
#address = 127.0.0.1
#port = 6669
#destination = irc.postman.i2p
#destinationport = 6667
#keys = irc-keys2.dat

[SMTP]
type = client
address = 127.0.0.1
port = 7659
destination = smtp.postman.i2p
destinationport = 25
keys = smtp-keys.dat

; a boost-style comment
[anon-website]
type = http
host = 127.0.0.1
port = 8080
keys = anon-website.dat
"""


def test_i2pd_default_file_parses_as_is():
    tunnels, problems = parse_tunnels(I2PD_DEFAULT, "tunnels.conf")
    assert problems == []
    assert [t.name for t in tunnels] == ["IRC-ILITA", "SMTP", "anon-website"]
    irc = tunnels[0]
    assert (irc.type, irc.address, irc.port, irc.destination, irc.destination_port, irc.keys) == (
        "client", "127.0.0.1", 6668, "irc.ilita.i2p", 6667, "irc-keys.dat")
    assert irc.where == "tunnels.conf:1" and not irc.transient
    web = tunnels[2]
    assert (web.type, web.host, web.port, web.inport, web.i2p_headers) == ("http", "127.0.0.1", 8080, 0, True)
    assert web.address == ""        # server tunnels connect from any local address unless told


def test_every_option():
    text = f"""
[all]
type = http
address = 127.0.0.5
port = 8080
keys = site.dat
signaturetype = 11
cryptotype = 0
inport = 80
accesslist = {b32encode(HASH_A)}, {b32encode(HASH_B)}.b32.i2p
host = 127.0.0.1
hostoverride = site.i2p
gzip = false
i2pheaders = false
webircpassword = secret
keepaliveinterval = 30
connecttimeout = 15
maxconns = 10
inbound.length = 2
outbound.quantity = 3
i2cp.leaseSetEncType = 4,0
i2p.streaming.maxConnsPerMinute = 20

[cl]
type = client
port = 1234
destination = a.i2p, b.i2p ,
destinationport = 80
"""
    tunnels, problems = parse_tunnels(text, "f.conf")
    assert problems == []
    t, c = tunnels
    assert (t.address, t.port, t.keys, t.signature_type, t.crypto_type, t.inport) == (
        "127.0.0.5", 8080, "site.dat", 11, 0, 80)
    assert t.accesslist == (HASH_A, HASH_B)
    assert (t.host, t.host_override, t.gzip, t.i2p_headers, t.webirc_password) == (
        "127.0.0.1", "site.i2p", False, False, "secret")
    assert (t.keepalive_interval, t.connect_timeout, t.max_connections) == (30, 15.0, 10)
    # option names keep their case: the router reads i2cp.leaseSetEncType as written
    assert dict(t.session_options) == {"inbound.length": "2", "outbound.quantity": "3",
                                       "i2cp.leaseSetEncType": "4,0", "i2p.streaming.maxConnsPerMinute": "20",
                                       "i2cp.gzip": "false"}
    assert c.destinations == ("a.i2p", "b.i2p")
    assert (c.address, c.keys, c.transient, c.connect_timeout, c.max_connections) == (
        "127.0.0.1", "transient", True, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS)
    assert isinstance(c, TunnelConfig) and c.listens and not t.listens


def test_unknown_option_warned_with_file_and_line():
    tunnels, problems = parse_tunnels("[x]\ntype = server\nhost = h\nport = 1\ncolour = blue\nssl = true\n", "a.conf")
    assert len(tunnels) == 1
    assert [(p.line, p.fatal) for p in problems] == [(5, False), (6, False)]
    assert str(problems[0]) == "a.conf:5: [x] unknown option 'colour' ignored"
    assert "not supported" in problems[1].message


def test_bad_section_fails_alone():
    text = """
[good]
type = server
host = 127.0.0.1
port = 80

[badport]
type = client
port = 70000
destination = x.i2p

[notype]
port = 1

[weird]
type = teleport
port = 1

[noline]
type = client
this is not an option
port = 1
destination = x.i2p

[nodest]
type = client
port = 5

[dup]
type = client
port = 5
port = 6
destination = x.i2p

[good2]
type = udpclient
port = 5
destination = x.i2p

[badacl]
type = server
host = h
port = 1
accesslist = notahash

[badbool]
type = http
host = h
port = 1
gzip = maybe

[badsig]
type = server
host = h
port = 1
signaturetype = 99
"""
    tunnels, problems = parse_tunnels(text, "t.conf")
    assert [t.name for t in tunnels] == ["good", "good2"]
    fatal = {(p.section, p.line) for p in problems if p.fatal}
    assert ("badport", 9) in fatal
    assert ("notype", 12) in fatal
    assert ("weird", 16) in fatal
    assert ("noline", 21) in fatal
    assert ("nodest", 25) in fatal
    assert ("dup", 32) in fatal
    assert ("badacl", 44) in fatal
    assert ("badbool", 50) in fatal
    assert ("badsig", 56) in fatal
    assert any("70000" in p.message for p in problems)


def test_lines_outside_sections_and_bad_headers():
    tunnels, problems = parse_tunnels("port = 1\n[\n[ok]\ntype=server\nhost=h\nport=2\n", "z.conf")
    assert [t.name for t in tunnels] == ["ok"]
    assert [p.line for p in problems] == [1, 2]


def test_server_needs_host_and_port():
    _, problems = parse_tunnels("[a]\ntype = server\nport = 80\n[b]\ntype = http\nhost = h\nport = 0\n", "s.conf")
    assert {p.section for p in problems} == {"a", "b"}


def test_proxy_sections_keep_their_own_options():
    tunnels, problems = parse_tunnels("[p]\ntype = httpproxy\nport = 4444\noutproxy = o.i2p\n"
                                      "inbound.length = 1\n", "p.conf")
    assert problems == []
    assert tunnels[0].is_proxy and dict(tunnels[0].raw)["outproxy"] == "o.i2p"
    assert dict(tunnels[0].session_options) == {"inbound.length": "1"}


def test_gzip_sets_what_the_destination_sends_with_i2pds_defaults():
    tunnels, problems = parse_tunnels(
        "[srv]\ntype = server\nhost = h\nport = 1\n"
        "[srv-gz]\ntype = http\nhost = h\nport = 2\ngzip = true\n"
        "[cli]\ntype = client\nport = 3\ndestination = a.i2p\n"
        "[uc]\ntype = udpclient\nport = 4\ndestination = a.i2p\n"
        "[uc-plain]\ntype = udpclient\nport = 5\ndestination = a.i2p\ngzip = false\n"
        "[us]\ntype = udpserver\nhost = h\nport = 6\n"
        "[own]\ntype = server\nhost = h\nport = 7\ngzip = true\ni2cp.gzip = false\n", "g.conf")
    assert problems == []
    gzip = {t.name: (t.gzip, dict(t.session_options)["i2cp.gzip"]) for t in tunnels}
    assert gzip == {"srv": (False, "false"), "srv-gz": (True, "true"), "cli": (False, "false"),
                    "uc": (True, "true"), "uc-plain": (False, "false"), "us": (False, "false"),
                    "own": (True, "false")}      # an explicit i2cp.gzip is the router's option as written


def test_tunnels_d_files_in_order_and_duplicates(tmp_path):
    (tmp_path / "tunnels.conf").write_text("[a]\ntype = server\nhost = h\nport = 1\n")
    (tmp_path / "tunnels.d").mkdir()
    (tmp_path / "tunnels.d" / "2.conf").write_text("[c]\ntype = server\nhost = h\nport = 3\n")
    (tmp_path / "tunnels.d" / "1.conf").write_text("[b]\ntype = server\nhost = h\nport = 2\n[a]\ntype = server\n")
    (tmp_path / "tunnels.d" / "skip.txt").write_text("[d]\ntype = server\nhost = h\nport = 4\n")
    config = load_tunnels(tmp_path / "tunnels.conf", tmp_path / "tunnels.d")
    assert [t.name for t in config.tunnels] == ["a", "b", "c"]
    assert len(config.errors) == 1 and config.errors[0].file.endswith("1.conf") and config.errors[0].line == 5


def test_missing_files_are_no_tunnels(tmp_path):
    config = load_tunnels(tmp_path / "tunnels.conf", tmp_path / "tunnels.d")
    assert config.tunnels == () and config.problems == ()

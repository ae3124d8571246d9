"""The IRC filters against transcripts of real sessions (what a client sends, what a server sends)."""
from __future__ import annotations

from apps.tunnels.irc import IRCClientFilter, IRCMessage, IRCServerRewriter, LineSplitter

B32 = "ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p"

# (line the client sends, what goes into I2P or None)
OUTBOUND = [
    ("CAP LS 302", "CAP LS 302"),
    ("NICK alice", "NICK alice"),
    ("USER alice alice.home.lan irc.server :Alice Liddell", "USER alice 0 * :Alice Liddell"),
    ("USER alice 0 *", None),                                     # too few parameters
    ("JOIN #i2p", "JOIN #i2p"),
    ("PRIVMSG #i2p :hello there", "PRIVMSG #i2p :hello there"),
    ("PRIVMSG #i2p :\x01ACTION waves\x01", "PRIVMSG #i2p :\x01ACTION waves\x01"),
    ("PRIVMSG bob :\x01VERSION\x01", None),                        # CTCP query
    ("NOTICE bob :\x01VERSION irssi 1.4.3 - running on Linux x86_64\x01", None),   # CTCP reply: leaks the OS
    ("PRIVMSG bob :\x01DCC SEND file.txt 3232235777 5000 1024\x01", None),          # DCC: leaks the IP
    ("NOTICE bob :DCC Send file.txt (192.168.1.1)", None),         # mIRC's DCC notice names the IP
    ("PRIVMSG bob :\x01ACTION a\x01\x01VERSION\x01", None),       # two CTCPs in one
    ("PRIVMSG bob :\x01TIME\x01", None),
    ("PING irc.server", "PING irc.server"),
    ("PING 1234567890 192.168.1.20", "PING 1234567890"),           # BitchX names our address
    ("PONG irc.server", "PONG irc.server"),
    ("PONG 192.168.1.20 :irc.server", "PONG irc.server"),
    ("PART #i2p :gone to dinner at home", "PART #i2p leaving"),
    ("QUIT :Leaving: irssi 1.4.3 on Linux", "QUIT :leaving"),
    ("WHOIS bob", "WHOIS bob"),
    ("MODE #i2p +i", "MODE #i2p +i"),
    ("TOPIC #i2p :new topic", "TOPIC #i2p :new topic"),
    ("USERHOST bob", "USERHOST bob"),
    ("CONNECT evil.server 6667", None),                           # not allowed
    ("DCC CHAT bob", None),
    (":alice!a@b PRIVMSG #i2p :x", None),                         # clients send no prefix
    ("@+typing=active TAGMSG #i2p", None),
    ("@label=1 PRIVMSG #i2p :tags dropped", "PRIVMSG #i2p :tags dropped"),
    ("", None),
]

INBOUND = [
    (":irc.server 001 alice :Welcome to the Internet Relay Network", ":irc.server 001 alice :Welcome to the Internet Relay Network"),
    (":irc.server 353 alice = #i2p :alice @bob", ":irc.server 353 alice = #i2p :alice @bob"),
    (":bob!bob@b32 PRIVMSG #i2p :hi alice", ":bob!bob@b32 PRIVMSG #i2p :hi alice"),
    (":bob!bob@b32 PRIVMSG alice :\x01VERSION\x01", None),
    (":bob!bob@b32 PRIVMSG #i2p :\x01ACTION dances\x01", ":bob!bob@b32 PRIVMSG #i2p :\x01ACTION dances\x01"),
    (":bob!bob@b32 PRIVMSG alice :\x01DCC CHAT chat 3232235777 5000\x01", None),
    (":bob!bob@b32 NOTICE alice :\x01PING 123\x01", None),
    (":bob!bob@b32 JOIN #i2p", ":bob!bob@b32 JOIN #i2p"),
    (":bob!bob@b32 QUIT :leaving", ":bob!bob@b32 QUIT leaving"),
    ("PING :irc.server", "PING irc.server"),
    (":irc.server KILL alice :bye", None),                         # not on the list
    (":irc.server SQUERY x", None),
    ("ERROR :Closing Link", "ERROR :Closing Link"),
]


def test_outbound_transcript():
    f = IRCClientFilter()
    for sent, expected in OUTBOUND:
        assert f.outbound(sent) == expected, sent
    assert f.dropped_out == sum(1 for _, e in OUTBOUND if e is None)


def test_inbound_transcript():
    f = IRCClientFilter()
    for received, expected in INBOUND:
        assert f.inbound(received) == expected, received


def test_pong_answers_the_ping_the_client_sent():
    f = IRCClientFilter()
    assert f.outbound("PING 1234567890 192.168.1.20") == "PING 1234567890"
    # the server answers the token only; the client gets the PONG it expects (server, token)
    assert f.inbound(":irc.server PONG irc.server :1234567890") == "PONG 192.168.1.20 1234567890"
    assert f.inbound(":irc.server PONG irc.server :99") == ":irc.server PONG irc.server 99"


def test_message_round_trip():
    m = IRCMessage.parse(":n!u@h PRIVMSG #c :two words")
    assert (m.prefix, m.command, m.params) == ("n!u@h", "PRIVMSG", ["#c", "two words"])
    assert m.format() == ":n!u@h PRIVMSG #c :two words"
    assert IRCMessage.parse("   ") is None
    assert IRCMessage.parse(":onlyprefix") is None


def test_server_rewrites_user_host_and_drops_webirc():
    r = IRCServerRewriter(B32)
    assert r.greeting() is None
    assert r.rewrite("USER alice 0 * :Alice") == f"USER alice {B32} * Alice"
    assert r.rewrite("WEBIRC pass gw 1.2.3.4 1.2.3.4") is None
    assert r.rewrite("NICK alice\r") == "NICK alice"


def test_server_webirc_greeting():
    r = IRCServerRewriter(B32, "s3cret")
    assert r.greeting() == f"WEBIRC s3cret cgiirc {B32} 127.0.0.1"


def test_line_splitter_bounds_long_lines():
    s = LineSplitter(limit=10)
    assert s.feed(b"NICK a\r\nJO") == [b"NICK a"]
    assert s.feed(b"IN #c\n") == [b"JOIN #c"]
    assert s.feed(b"x" * 25) == []
    assert s.feed(b"yyy\nok\n") == [b"ok"]
    assert s.too_long == 1
    assert s.feed(b"0123456789AB\n") == []
    assert s.too_long == 2

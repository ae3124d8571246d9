"""The SAM client core (apps/network/sam_protocol.py): the lines it sends, what replies mean, and
hostile replies, which only ever raise the port's NetworkError."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.network import ConnectTimeout, Datagram, NameNotFound, NetworkError, PeerNotFound, PeerUnreachable
from apps.network import sam_protocol as sam
from apps.network.sam_protocol import SamProtocolError, SamRefused
from core.data.encoding import b64decode
from core.data.privatekeys import PrivateKeys
from core.sam.parser import parse_line

KEYS = PrivateKeys.generate()
DEST = KEYS.destination


def test_hello_asks_for_3_1_to_3_3():
    assert sam.hello() == b"HELLO VERSION MIN=3.1 MAX=3.3\n"
    assert sam.hello(user="u", password="p w") == b'HELLO VERSION MIN=3.1 MAX=3.3 USER=u PASSWORD="p w"\n'


@pytest.mark.parametrize("line,version", [(b"HELLO REPLY RESULT=OK VERSION=3.1\n", (3, 1)),
                                          (b"HELLO REPLY RESULT=OK VERSION=3.3\n", (3, 3)),
                                          (b"hello reply RESULT=OK VERSION=3.2\r\n", (3, 2))])
def test_hello_reply_gives_the_version(line, version):
    assert sam.parse_hello_reply(line) == version


@pytest.mark.parametrize("line,error", [
    (b"HELLO REPLY RESULT=NOVERSION\n", SamRefused),
    (b"HELLO REPLY RESULT=I2P_ERROR MESSAGE=\"authorization failed\"\n", SamRefused),
    (b"HELLO REPLY RESULT=OK VERSION=3.0\n", SamRefused),        # below 3.1: no signature types
    (b"HELLO REPLY RESULT=OK\n", SamProtocolError),
    (b"HELLO REPLY RESULT=OK VERSION=three\n", SamProtocolError),
    (b"HELLO REPLY VERSION=3.1\n", SamProtocolError),
    (b"SESSION STATUS RESULT=OK\n", SamProtocolError),
    (b"HTTP/1.1 400 Bad Request\n", SamProtocolError),
    (b"HELLO REPLY RESULT=\"OK\n", SamProtocolError),
    (b"\xff\xfe\n", SamProtocolError),
])
def test_bad_hello_replies(line, error):
    with pytest.raises(error):
        sam.parse_hello_reply(line)


def test_session_create_transient_and_with_keys():
    line = sam.session_create("STREAM", "web-1", None, {"inbound.length": "2"})
    assert line == (b"SESSION CREATE STYLE=STREAM ID=web-1 DESTINATION=TRANSIENT SIGNATURE_TYPE=7 "
                    b"i2cp.leaseSetEncType=4,0 inbound.length=2\n")
    given = parse_line(sam.session_create("STREAM", "x", None, {"i2cp.leaseSetEncType": "4"}))
    assert given.options["i2cp.leaseSetEncType"] == "4"
    line = sam.session_create("DATAGRAM", "web-d", sam.private_keys_b64(KEYS), PORT=4000, HOST="127.0.0.1")
    command = parse_line(line)
    assert (command.verb, command.action, command.options["STYLE"]) == ("SESSION", "CREATE", "DATAGRAM")
    assert PrivateKeys.parse(b64decode(command.options["DESTINATION"])) == KEYS
    assert (command.options["PORT"], command.options["HOST"]) == ("4000", "127.0.0.1")


@pytest.mark.parametrize("options", [{"bad key": "1"}, {"STYLE": "RAW"}, {"DESTINATION": "x"}, {"a": "two words"},
                                     {"a": 'quote"'}, {"a": "line\nbreak"}, {"": "1"}])
def test_session_options_sam_cannot_carry_are_refused(options):
    with pytest.raises(ValueError):
        sam.session_create("STREAM", "x", None, options)


@pytest.mark.parametrize("nickname", ["", "a b", "a/b", "x" * 65, 'a"b'])
def test_nicknames_are_one_safe_word(nickname):
    with pytest.raises(ValueError):
        sam.check_nickname(nickname)


def test_stream_connect_sends_ports_from_3_2_on():
    assert parse_line(sam.stream_connect("s", DEST, (3, 1), from_port=5, to_port=80)).options == {
        "ID": "s", "DESTINATION": DEST.b64, "SILENT": "false"}
    options = parse_line(sam.stream_connect("s", DEST, (3, 3), from_port=5, to_port=80)).options
    assert (options["FROM_PORT"], options["TO_PORT"]) == ("5", "80")


def test_session_status_keys_read_back():
    line = f"SESSION STATUS RESULT=OK DESTINATION={sam.private_keys_b64(KEYS)}\n".encode()
    keys = sam.parse_session_keys(sam.parse_session_status(line, "s"))
    assert keys.keys == KEYS and keys.b64 == sam.private_keys_b64(KEYS)
    # keys of a type this side cannot read are kept as sent (reused verbatim), not parsed
    odd = sam.parse_session_keys(parse_line(b"SESSION STATUS RESULT=OK DESTINATION=AAAA\n"))
    assert (odd.b64, odd.keys) == ("AAAA", None)


@pytest.mark.parametrize("line,result", [(b"SESSION STATUS RESULT=DUPLICATED_DEST\n", "DUPLICATED_DEST"),
                                         (b"SESSION STATUS RESULT=DUPLICATED_ID\n", "DUPLICATED_ID"),
                                         (b"SESSION STATUS RESULT=INVALID_KEY\n", "INVALID_KEY"),
                                         (b'SESSION STATUS RESULT=I2P_ERROR MESSAGE="Unknown STYLE"\n', "I2P_ERROR")])
def test_session_refusals_carry_their_result(line, result):
    with pytest.raises(SamRefused) as caught:
        sam.parse_session_status(line, "the session x")
    assert caught.value.result == result


@pytest.mark.parametrize("line", [b"SESSION STATUS RESULT=OK\n", b"SESSION STATUS RESULT=OK DESTINATION=!!!\n"])
def test_session_status_without_usable_keys(line):
    with pytest.raises(SamProtocolError):
        sam.parse_session_keys(sam.parse_session_status(line, "s"))


@pytest.mark.parametrize("result,message,error", [
    ("TIMEOUT", "", ConnectTimeout),
    ("CANT_REACH_PEER", "", PeerNotFound),                                    # i2pd 2.45.1: LeaseSet not found
    ("CANT_REACH_PEER", "Destination not found on 7 floodfills", PeerNotFound),
    ("CANT_REACH_PEER", "no leaseset for x.b32.i2p", PeerNotFound),           # ours
    ("CANT_REACH_PEER", "stream reset", PeerUnreachable),
    ("CANT_REACH_PEER", "Can't connect to myself", PeerUnreachable),          # i2pd 2.58
    ("PEER_NOT_FOUND", "", PeerNotFound),
    ("INVALID_KEY", "", NameNotFound),
    ("I2P_ERROR", "boom", PeerUnreachable),
    ("INVALID_ID", "", NetworkError),
])
def test_stream_status_errors_map_to_the_port(result, message, error):
    line = f'STREAM STATUS RESULT={result} MESSAGE="{message}"\n'.encode()
    with pytest.raises(error) as caught:
        sam.parse_stream_status(line, "x.i2p")
    assert type(caught.value) is error
    sam.parse_stream_status(b"STREAM STATUS RESULT=OK\n", "x.i2p")


def test_peer_lines_with_and_without_ports():
    assert sam.parse_peer_line(DEST.b64.encode() + b"\n") == sam.PeerLine(DEST, None, None)
    assert sam.parse_peer_line(DEST.b64.encode() + b" FROM_PORT=7 TO_PORT=80\n") == sam.PeerLine(DEST, 7, 80)
    with pytest.raises(SamRefused):      # samv3.md "Errors After OK"
        sam.parse_peer_line(b'STREAM STATUS RESULT=I2P_ERROR MESSAGE="the session closed"\n')
    for bad in (b"\n", b"garbage\n", DEST.b64.encode() + b" TO_PORT=70000\n", DEST.b64.encode() + b" TO_PORT=x\n",
                b"\xff" * 600 + b"\n", DEST.b64[:-10].encode() + b"\n"):
        with pytest.raises(SamProtocolError):
            sam.parse_peer_line(bad)


def test_naming_replies():
    assert sam.parse_naming_reply(f"NAMING REPLY RESULT=OK NAME=x.i2p VALUE={DEST.b64}\n".encode(), "x.i2p") == DEST
    assert sam.parse_naming_reply(b"NAMING REPLY RESULT=KEY_NOT_FOUND NAME=x.i2p\n", "x.i2p") is None
    assert sam.parse_naming_reply(b"NAMING REPLY RESULT=INVALID_KEY NAME=x.b32.i2p\n", "x.b32.i2p") is None
    for bad in (b"NAMING REPLY RESULT=OK NAME=x\n", b"NAMING REPLY RESULT=OK VALUE=abc\n",
                b"NAMING REPLY NAME=x\n", b"DEST REPLY PUB=x PRIV=y\n"):
        with pytest.raises(SamProtocolError):
            sam.parse_naming_reply(bad, "x")


def test_forwarded_datagrams():
    peer, payload = sam.parse_forwarded_datagram(DEST.b64.encode() + b" FROM_PORT=1 TO_PORT=53\n\x00\nhi")
    assert (peer, payload) == (sam.PeerLine(DEST, 1, 53), b"\x00\nhi")
    peer, payload = sam.parse_forwarded_datagram(DEST.b64.encode() + b"\nhi")          # i2pd: no ports
    assert (peer.to_port, payload) == (None, b"hi")
    assert sam.parse_forwarded_raw(b"FROM_PORT=2 TO_PORT=9 PROTOCOL=18\nraw\n") == (2, 9, b"raw\n")
    for bad in (b"no header line", b"junk\npayload"):
        with pytest.raises(SamProtocolError):
            sam.parse_forwarded_datagram(bad)
    with pytest.raises(SamProtocolError):
        sam.parse_forwarded_raw(b"TO_PORT=99999\nx")


def test_datagram_header():
    assert sam.datagram_header("3.3", "n-d", DEST, from_port=1, to_port=2) == \
        f"3.3 n-d {DEST.b64} FROM_PORT=1 TO_PORT=2\n".encode()
    # i2pd takes everything after the nickname as the destination: no options for it
    assert sam.datagram_header("3.0", "n-d", DEST, to_port=2, with_ports=False) == f"3.0 n-d {DEST.b64}\n".encode()


def test_datagrams_received_on_the_control_socket():
    command, size = sam.parse_received_header(f"DATAGRAM RECEIVED DESTINATION={DEST.b64} SIZE=2 TO_PORT=9\n".encode())
    assert size == 2 and sam.received_datagram(command, b"hi") == Datagram(b"hi", 0, 9, DEST, True)
    command, size = sam.parse_received_header(b"RAW RECEIVED SIZE=3\n")
    assert sam.received_datagram(command, b"raw") == Datagram(b"raw")
    for bad in (b"RAW RECEIVED\n", b"RAW RECEIVED SIZE=0\n", b"RAW RECEIVED SIZE=40000\n", b"DATAGRAM SEND SIZE=3\n"):
        with pytest.raises(SamProtocolError):
            sam.parse_received_header(bad)
    with pytest.raises(SamProtocolError):
        sam.received_datagram(sam.parse_received_header(b"DATAGRAM RECEIVED DESTINATION=x SIZE=1\n")[0], b"x")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_any_reply_raises_only_network_errors(data):
    for parse in (sam.parse_hello_reply, lambda d: sam.parse_stream_status(d, "x"), sam.parse_accept_status,
                  lambda d: sam.parse_naming_reply(d, "x"), sam.parse_peer_line, sam.parse_forwarded_datagram,
                  sam.parse_forwarded_raw, lambda d: sam.parse_session_keys(sam.parse_session_status(d, "x")),
                  lambda d: sam.received_datagram(sam.parse_received_header(d)[0], b"x")):
        try:
            parse(data)
        except NetworkError:
            pass

"""SOCKS 4, 4a and 5 (RFC 1928, RFC 1929 user/password), sans-I/O: the server side of the handshake,
and the few client messages a `socks://` outproxy needs.

    hs = SocksHandshake(credentials=None)
    hs.receive(data); out = hs.data_to_send()     # until hs.request is set (or hs.error)
    ... connect ...; writer.write(hs.reply(REPLY_SUCCEEDED))
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from core.data.errors import ProtocolError

# RFC 1928 section 6 reply codes
REPLY_SUCCEEDED = 0x00
REPLY_GENERAL_FAILURE = 0x01
REPLY_NOT_ALLOWED = 0x02
REPLY_NETWORK_UNREACHABLE = 0x03
REPLY_HOST_UNREACHABLE = 0x04
REPLY_CONNECTION_REFUSED = 0x05
REPLY_TTL_EXPIRED = 0x06
REPLY_COMMAND_NOT_SUPPORTED = 0x07
REPLY_ADDRESS_NOT_SUPPORTED = 0x08

METHOD_NONE, METHOD_USERPASS, METHOD_REFUSED = 0x00, 0x02, 0xFF
CMD_CONNECT, CMD_BIND, CMD_UDP = 1, 2, 3
ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 1, 3, 4
SOCKS4_GRANTED, SOCKS4_REJECTED = 0x5A, 0x5B
MAX_HANDSHAKE = 1024


class SocksError(ProtocolError):
    """The client broke the protocol; `reply` is what to send it before closing (may be empty)."""

    def __init__(self, message: str, reply: bytes = b""):
        super().__init__(message, structure="SOCKS")
        self.reply = reply


@dataclass(frozen=True, slots=True)
class SocksRequest:
    version: int           # 4 (4a when the host is a name) or 5
    command: int
    host: str              # a name, or an IP address as text
    port: int
    username: str = ""


class SocksHandshake:
    def __init__(self, credentials: tuple[str, str] | None = None, *, udp: bool = False):
        self._credentials = credentials
        self._udp = udp             # accept SOCKS5 UDP ASSOCIATE
        self._buf = bytearray()
        self._out = bytearray()
        self._state = "start"       # start | auth | request | done
        self.version = 0
        self.username = ""
        self.request: SocksRequest | None = None

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    @property
    def leftover(self) -> bytes:
        """Bytes the client sent after its request (the first of the payload)."""
        return bytes(self._buf) if self._state == "done" else b""

    def receive(self, data: bytes) -> None:
        """Raises SocksError when the client breaks the protocol."""
        self._buf += data
        if len(self._buf) > MAX_HANDSHAKE and self._state != "done":
            raise SocksError("handshake too long")
        while self._state != "done" and self._step():
            pass

    def _take(self, n: int) -> bytes:
        chunk = bytes(self._buf[:n])
        del self._buf[:n]
        return chunk

    def _step(self) -> bool:
        buf = self._buf
        if self._state == "start":
            if not buf:
                return False
            self.version = buf[0]
            if self.version == 4:
                return self._socks4()
            if self.version != 5:
                raise SocksError(f"not a SOCKS request (version byte {buf[0]})")
            if len(buf) < 2 or len(buf) < 2 + buf[1]:
                return False
            methods = set(self._take(2 + buf[1])[2:])
            if self._credentials is not None:
                method = METHOD_USERPASS if METHOD_USERPASS in methods else METHOD_REFUSED
            else:   # user/password offered and no credentials configured: any pair is accepted (stream isolation)
                method = METHOD_NONE if METHOD_NONE in methods else (
                    METHOD_USERPASS if METHOD_USERPASS in methods else METHOD_REFUSED)
            if method == METHOD_REFUSED:
                raise SocksError("no acceptable authentication method", bytes([5, METHOD_REFUSED]))
            self._out += bytes([5, method])
            self._state = "auth" if method == METHOD_USERPASS else "request"
            return True
        if self._state == "auth":   # RFC 1929
            if len(buf) < 2:
                return False
            if buf[0] != 1:
                raise SocksError("bad user/password version", b"\x01\x01")
            ulen = buf[1]
            if len(buf) < 3 + ulen or len(buf) < 3 + ulen + buf[2 + ulen]:
                return False
            plen = buf[2 + ulen]
            raw = self._take(3 + ulen + plen)
            user, password = raw[2:2 + ulen].decode("utf-8", "replace"), raw[3 + ulen:].decode("utf-8", "replace")
            if self._credentials is not None and (user, password) != self._credentials:
                raise SocksError("wrong user name or password", b"\x01\x01")
            self.username = user
            self._out += b"\x01\x00"
            self._state = "request"
            return True
        return self._socks5_request()

    def _socks4(self) -> bool:
        buf = self._buf
        end = buf.find(b"\0", 8)
        if len(buf) < 9 or end == -1:
            return False
        command, port = buf[1], struct.unpack_from(">H", buf, 2)[0]
        ip = bytes(buf[4:8])
        end_host = end
        if ip[:3] == b"\0\0\0" and ip[3] != 0:    # SOCKS 4a: the host name follows the user id
            end_host = buf.find(b"\0", end + 1)
            if end_host == -1:
                return False
            host = bytes(buf[end + 1:end_host]).decode("ascii", "replace")
        else:
            host = str(ipaddress.IPv4Address(ip))
        self.username = bytes(buf[8:end]).decode("utf-8", "replace")
        self._take(end_host + 1)
        if command != CMD_CONNECT:
            raise SocksError("SOCKS4 BIND is not supported", self.reply(REPLY_COMMAND_NOT_SUPPORTED))
        self.request = SocksRequest(4, command, host, port, self.username)
        self._state = "done"
        return False

    def _socks5_request(self) -> bool:
        buf = self._buf
        if len(buf) < 5:
            return False
        if buf[0] != 5:
            raise SocksError("bad request version")
        command, atyp = buf[1], buf[3]
        if atyp == ATYP_IPV4:
            size = 4 + 4 + 2
        elif atyp == ATYP_DOMAIN:
            size = 4 + 1 + buf[4] + 2
        elif atyp == ATYP_IPV6:
            size = 4 + 16 + 2
        else:
            raise SocksError(f"address type {atyp}", self.reply(REPLY_ADDRESS_NOT_SUPPORTED))
        if len(buf) < size:
            return False
        raw = self._take(size)
        port = struct.unpack(">H", raw[-2:])[0]
        if atyp == ATYP_IPV4:
            host = str(ipaddress.IPv4Address(raw[4:8]))
        elif atyp == ATYP_IPV6:
            host = str(ipaddress.IPv6Address(raw[4:20]))
        else:
            host = raw[5:-2].decode("ascii", "replace")
        if command != CMD_CONNECT and not (command == CMD_UDP and self._udp):
            raise SocksError(f"command {command} is not supported", self.reply(REPLY_COMMAND_NOT_SUPPORTED))
        self.request = SocksRequest(5, command, host, port, self.username)
        self._state = "done"
        return False

    def reply(self, code: int, bound: tuple[str, int] = ("0.0.0.0", 0)) -> bytes:
        """The answer to the request: a SOCKS5 reply code (mapped to granted/rejected for SOCKS 4), with the
        bound address (where a UDP ASSOCIATE client sends its datagrams)."""
        if self.version == 4:
            return bytes([0, SOCKS4_GRANTED if code == REPLY_SUCCEEDED else SOCKS4_REJECTED]) + b"\0" * 6
        return bytes([5, code, 0]) + _address(*bound)


# RFC 1928 section 7: each UDP datagram between the client and the proxy carries this header

def parse_udp(data: bytes) -> tuple[str, int, bytes]:
    """(host, port, payload) of a client's UDP datagram; fragments (FRAG != 0) are refused."""
    if len(data) < 4 or data[:2] != b"\0\0":
        raise SocksError("not a SOCKS5 UDP datagram")
    if data[2] != 0:
        raise SocksError("fragmented SOCKS5 UDP datagrams are not supported")
    atyp = data[3]
    if atyp == ATYP_IPV4 and len(data) >= 10:
        return str(ipaddress.IPv4Address(data[4:8])), struct.unpack_from(">H", data, 8)[0], data[10:]
    if atyp == ATYP_IPV6 and len(data) >= 22:
        return str(ipaddress.IPv6Address(data[4:20])), struct.unpack_from(">H", data, 20)[0], data[22:]
    if atyp == ATYP_DOMAIN and len(data) >= 5 and len(data) >= 7 + data[4]:
        end = 5 + data[4]
        return data[5:end].decode("ascii", "replace"), struct.unpack_from(">H", data, end)[0], data[end + 2:]
    raise SocksError("truncated SOCKS5 UDP datagram")


def build_udp(host: str, port: int, payload: bytes) -> bytes:
    """A datagram for the client, from `host` (a b32 name, an IP or a domain) and port."""
    return b"\0\0\0" + _address(host, port) + payload


def _address(host: str, port: int) -> bytes:
    if _is_ip(host):
        ip = ipaddress.ip_address(host.strip("[]"))
        return bytes([ATYP_IPV4 if ip.version == 4 else ATYP_IPV6]) + ip.packed + struct.pack(">H", port)
    try:
        name = host.encode("ascii") if host.isascii() else host.encode("idna")
    except UnicodeError:
        raise SocksError(f"{host[:60]!r} is not a valid host name") from None
    if len(name) > 255:
        raise SocksError("host name too long")
    return bytes([ATYP_DOMAIN, len(name)]) + name + struct.pack(">H", port)


# The client side, for a socks:// outproxy (SOCKS5, no authentication, the host name sent as is)

def client_greeting() -> bytes:
    return bytes([5, 1, METHOD_NONE])


def client_connect(host: str, port: int) -> bytes:
    return bytes([5, CMD_CONNECT, 0]) + _address(host, port)


def client_reply_length(head: bytes) -> int:
    """The full length of a SOCKS5 reply, given its first 5 bytes."""
    if len(head) < 5 or head[0] != 5:
        raise SocksError("not a SOCKS5 reply")
    atyp = head[3]
    if atyp == ATYP_IPV4:
        return 10
    if atyp == ATYP_IPV6:
        return 22
    if atyp == ATYP_DOMAIN:
        return 7 + head[4]
    raise SocksError(f"reply address type {atyp}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False

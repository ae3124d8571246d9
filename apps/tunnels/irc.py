"""IRC over I2P, sans-I/O: the client-side line filter (what Java I2PTunnel's IRC client does) and the
server-side rewriting (what i2pd's `irc` server tunnel does).

Client side: only known commands pass either way, CTCP is dropped except ACTION, DCC is dropped,
and what would identify the user's machine (USER host, PART/QUIT messages, PING/PONG servers) is
rewritten. Server side: the ircd sees the caller's b32 as its host (USER, or WEBIRC with a password).
Lines are RFC 1459/2812 messages; IRCv3 message tags are dropped on the client side.
"""
from __future__ import annotations

MAX_LINE_BYTES = 8192          # IRCv3 allows 8191 bytes of tags + 512 of message; longer lines are dropped
CTCP = "\x01"

# Numeric replies pass too. PRIVMSG/NOTICE pass with their CTCP filtered; PING/PONG are rewritten.
INBOUND_COMMANDS = frozenset({
    "AUTHENTICATE", "AWAY", "CAP", "ERROR", "H", "INVITE", "JOIN", "KICK", "MODE", "NICK", "PART", "QUIT",
    "TOPIC", "WALLOPS"})
OUTBOUND_COMMANDS = frozenset({
    # users
    "ADMIN", "AUTHENTICATE", "AWAY", "CAP", "CYCLE", "DCCALLOW", "HELPME", "HELPOP", "INFO", "INVITE", "ISON",
    "JOIN", "KICK", "KNOCK", "LINKS", "LIST", "LUSERS", "MAP", "MODE", "MOTD", "NAMES", "NICK", "OPER", "PASS",
    "RULES", "SETNAME", "SILENCE", "STATS", "TIME", "TOPIC", "USERHOST", "VHOST", "WATCH", "WHO", "WHOIS",
    "WHOWAS",
    # services aliases
    "BOTSERV", "BS", "CHANSERV", "CS", "HELPSERV", "HOSTSERV", "HS", "MEMOSERV", "MS", "NICKSERV", "NS",
    "OPERSERV", "OS", "STATSERV",
    # operators
    "CHATOPS", "CHGHOST", "CHGIDENT", "CHGNAME", "DIE", "GLOBOPS", "GLINE", "GZLINE", "KILL", "KLINE",
    "LOCOPS", "OPERMOTD", "REHASH", "RESTART", "SAJOIN", "SAMODE", "SAPART", "SETHOST", "SETIDENT", "SHUN",
    "SQUIT", "WALLOPS", "ZLINE"})


class IRCMessage:
    """One line split as RFC 2812 section 2.3.1 has it: [":" prefix] command params [":" trailing]."""

    __slots__ = ("prefix", "command", "params")

    def __init__(self, prefix: str, command: str, params: list[str]):
        self.prefix, self.command, self.params = prefix, command, params

    @classmethod
    def parse(cls, line: str) -> IRCMessage | None:
        line = line.strip("\r\n")
        if line.startswith("@"):                     # IRCv3 tags
            _, _, line = line.partition(" ")
        line = line.lstrip(" ")
        prefix = ""
        if line.startswith(":"):
            prefix, _, line = line[1:].partition(" ")
            line = line.lstrip(" ")
        head, sep, trailing = line.partition(" :")
        words = head.split()
        if not words:
            return None
        params = words[1:] + ([trailing] if sep else [])
        return cls(prefix, words[0].upper(), params)

    def format(self) -> str:
        parts = ([f":{self.prefix}"] if self.prefix else []) + [self.command]
        if self.params:
            middle, last = self.params[:-1], self.params[-1]
            parts += middle + [f":{last}" if (not last or " " in last or last.startswith(":")) else last]
        return " ".join(parts)


def _ctcp_allowed(text: str) -> bool:
    """No CTCP, or exactly one ACTION (a /me); DCC and every other CTCP query or reply are refused."""
    if CTCP not in text:
        return True
    return text.count(CTCP) == 2 and text.startswith(CTCP + "ACTION ") and text.endswith(CTCP)


class IRCClientFilter:
    """Filters one IRC client connection, both ways. Methods return the line to pass, or None to drop it."""

    def __init__(self) -> None:
        self.expected_pong: str | None = None
        self.dropped_out = 0
        self.dropped_in = 0

    def outbound(self, line: str) -> str | None:
        """A line from the local IRC client, before it goes into I2P."""
        result = self._outbound(line)
        if result is None:
            self.dropped_out += 1
        return result

    def inbound(self, line: str) -> str | None:
        """A line from the IRC server, before the local client sees it."""
        result = self._inbound(line)
        if result is None:
            self.dropped_in += 1
        return result

    def _outbound(self, line: str) -> str | None:
        message = IRCMessage.parse(line)
        if message is None or message.prefix:      # a client does not send a prefix
            return None
        command, params = message.command, message.params
        if command == "PING":
            # keep the token only; a second parameter names a server (or our address): answer it ourselves
            if not params:
                return "PING"
            if len(params) >= 2:
                self.expected_pong = IRCMessage("", "PONG", [params[1], params[0]]).format()
            return IRCMessage("", "PING", params[:1]).format()
        if command == "PONG":
            return IRCMessage("", "PONG", params[-1:]).format() if params else None
        if command in ("PRIVMSG", "NOTICE"):
            if len(params) < 2 or not _ctcp_allowed(params[-1]) or params[-1].upper().startswith("DCC "):
                return None          # mIRC also announces a DCC in a plain NOTICE, with the IP
            return IRCMessage("", command, params).format()
        if command == "USER":
            if len(params) < 4:
                return None
            return IRCMessage("", "USER", [params[0], "0", "*", params[-1]]).format()
        if command == "PART":
            return IRCMessage("", "PART", [params[0], "leaving"]).format() if params else None
        if command == "QUIT":
            return "QUIT :leaving"
        if command in OUTBOUND_COMMANDS:
            return IRCMessage("", command, params).format()
        return None

    def _inbound(self, line: str) -> str | None:
        message = IRCMessage.parse(line)
        if message is None:
            return None
        command = message.command
        if command.isdigit() and len(command) == 3:
            return message.format()
        if command == "PING":
            return message.format()
        if command == "PONG":
            pong, self.expected_pong = self.expected_pong, None
            return pong or message.format()
        if command in ("PRIVMSG", "NOTICE"):
            if len(message.params) < 2 or not _ctcp_allowed(message.params[-1]):
                return None
            return message.format()
        if command in INBOUND_COMMANDS:
            return message.format()
        return None


class IRCServerRewriter:
    """What an `irc` server tunnel does to the caller's lines: its b32 as USER host, or a WEBIRC line first."""

    def __init__(self, caller_b32: str, webirc_password: str = "", local_ip: str = "127.0.0.1"):
        self.caller_b32 = caller_b32
        self.webirc_password = webirc_password
        self.local_ip = local_ip

    def greeting(self) -> str | None:
        """The line to send the ircd before anything of the caller's (WEBIRC password gateway host ip)."""
        if not self.webirc_password:
            return None
        return f"WEBIRC {self.webirc_password} cgiirc {self.caller_b32} {self.local_ip}"

    def rewrite(self, line: str) -> str | None:
        message = IRCMessage.parse(line)
        if message is None:
            return None
        if message.command == "WEBIRC":            # only the tunnel speaks for where a caller comes from
            return None
        if message.command == "USER" and len(message.params) >= 4:
            params = list(message.params)
            params[1] = self.caller_b32
            return IRCMessage(message.prefix, "USER", params).format()
        return line.rstrip("\r\n")


class LineSplitter:
    """Bytes in, complete lines out (without the line end); an over-long line is dropped, not buffered."""

    def __init__(self, limit: int = MAX_LINE_BYTES):
        self.limit = limit
        self._buffer = bytearray()
        self._skipping = False
        self.too_long = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        lines = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.limit:
                    self._buffer.clear()
                    if not self._skipping:
                        self.too_long += 1
                    self._skipping = True
                return lines
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[:end + 1]
            if self._skipping:
                self._skipping = False
                continue
            if len(line) > self.limit:
                self.too_long += 1
                continue
            lines.append(line)

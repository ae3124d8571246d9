"""Mail over I2P: local SMTP/POP3 for mail programs, direct node-to-node delivery, and an optional mail host.

    mail programs --SMTP 127.0.0.1:7659--> MailService --queue--> I2P stream, port 25 --> the recipient's node
    mail programs <--POP3 127.0.0.1:7660-- DATADIR/mail/boxes/<user>/ <-- I2P stream, port 25 <-- other nodes

The node's mail address is `user@<mail destination b32>` (plus any names in [mail] domain). A message from
another node is taken only when its envelope sender's domain is the destination the stream came from.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections import deque
from email.message import EmailMessage, Message
from datetime import datetime, timezone
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import Any, Mapping

from apps.network import I2PNetwork, IncomingStream, NameNotFound, NetworkError, parse_address
from apps.network.inprocess import resolve_name
from apps.service import ServiceError
from core.clock import Clock, SystemClock
from core.data.encoding import b32decode
from core.data.errors import ProtocolError
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys

from .pop3 import serve_pop3
from .queue import OutboundQueue, QueueEntry, QueueFull
from .scrub import field_name, field_value, scrub, split_message
from .smtpclient import Reply, SmtpError, send_mail
from .store import Accounts, Mailboxes, MailStoreError, StoredMessage

log = logging.getLogger(__name__)


def _smtpserver():
    """The SMTP protocol module: aiosmtpd loads with the first SMTP connection, not with the node."""
    from . import smtpserver
    return smtpserver

MAIL_DIR = "mail"
KEYS_FILE = "destination.keys"
SMTP_PORT_I2P = 25
POP3_PORT_I2P = 110
DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "host": "127.0.0.1",            # where the local SMTP and POP3 listen
    "smtp_port": 7659,
    "pop3_port": 7660,
    "server": False,                # also SMTP (25) and POP3 (110) over I2P for the accounts: a mail host
    "domain": [],                   # address-book names of this node's mail destination, taken as ours
    "max_message_size": 10 * 1024 * 1024,
    "quota_mb": 100,                # per account, for new accounts
    "send_per_hour": 100,           # per account: messages submitted
    "receive_per_hour": 1000,       # per sending destination
    "max_age_days": 7,              # undelivered mail is bounced after this
    "connect_timeout": 120,
    "options": {},                  # I2CP options of the mail destination (inbound.length ...)
}
MAX_RECIPIENTS = 100
I2P_RETRY_FIRST, I2P_RETRY_MAX = 5.0, 300.0
STOP_WAIT = 10.0     # opening the mail destination again after a failure
MAX_RATE_KEYS = 10_000
AUTH_FAILURES_PER_HOUR = 30     # per source (a b32, or the local address): then logins fail unchecked
MAILER_DAEMON = "MAILER-DAEMON"


def split_address(address: str) -> tuple[str, str]:
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at or not local or not domain:
        return "", ""
    return local.lower(), domain.lower().rstrip(".")


def _check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    settings = dict(DEFAULTS)
    for key, value in config.items():
        if key not in DEFAULTS:
            log.warning("[mail] %s: unknown key, ignored", key)
            continue
        expected = type(DEFAULTS[key])
        if expected is list and isinstance(value, str):
            value = [value]
        if expected is int and isinstance(value, bool) or not isinstance(value, expected):
            raise ServiceError(f"[mail] {key} = {value!r}: expected {expected.__name__}")
        settings[key] = value
    for key in ("smtp_port", "pop3_port"):
        if not 0 <= settings[key] <= 65535:
            raise ServiceError(f"[mail] {key} = {settings[key]}: a port is 0-65535")
    for key in ("max_message_size", "quota_mb", "send_per_hour", "receive_per_hour", "max_age_days",
                "connect_timeout"):
        if settings[key] <= 0:
            raise ServiceError(f"[mail] {key} = {settings[key]}: must be positive")
    settings["domain"] = [str(name).lower().rstrip(".") for name in settings["domain"]]
    for name in settings["domain"]:
        if not name.endswith(".i2p") or name.endswith(".b32.i2p"):
            raise ServiceError(f"[mail] domain: {name!r} is not an address-book name (name.i2p)")
    settings["options"] = {str(k): str(v) for k, v in settings["options"].items()}
    if settings["host"] not in ("127.0.0.1", "::1", "localhost"):
        log.warning("[mail] host = %s: mail programs' passwords cross the network in the clear", settings["host"])
    return settings


class RateLimit:
    """At most `limit` events per hour per key (a sliding window on the injected clock); bounded keys."""

    def __init__(self, limit: int, clock: Clock):
        self.limit, self.clock = limit, clock
        self._events: dict[str, deque[float]] = {}

    def _window(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= MAX_RATE_KEYS:
                self._events = {k: v for k, v in self._events.items() if v and v[-1] > now - 3600}
            events = self._events[key] = deque()
        while events and events[0] <= now - 3600:
            events.popleft()
        return events

    def full(self, key: str) -> bool:
        return len(self._window(key, self.clock.monotonic())) >= self.limit

    def add(self, key: str) -> None:
        now = self.clock.monotonic()
        self._window(key, now).append(now)

    def allow(self, key: str) -> bool:
        """Counts the event when it is allowed."""
        if self.full(key):
            return False
        self.add(key)
        return True


class _Drop:
    """A user's Maildir as a POP3 session sees it (pop3.Maildrop), with the one-session lock."""

    def __init__(self, service: MailService, user: str):
        self.service, self.user = service, user

    def messages(self) -> list[tuple[str, int]]:
        return [(m.key, m.size) for m in self.service.mailboxes.list(self.user)]

    def read(self, unique_id: str) -> bytes:
        return self.service.mailboxes.read(self.user, unique_id)

    def delete(self, unique_ids: list[str]) -> None:
        self.service.mailboxes.delete(self.user, unique_ids)

    def release(self) -> None:
        self.service._pop3_locks.discard(self.user)


class _SmtpHandler:
    """aiosmtpd hooks for one face: "submission" (local, AUTH required) or "i2p" (other nodes, and the
    host's own accounts with AUTH when [mail] server is on)."""

    def __init__(self, service: MailService, face: str):
        self.service, self.face = service, face

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname          # aiosmtpd leaves this to an EHLO hook
        # aiosmtpd says "AUTH" with no mechanisms where logins are off: say nothing then
        kept = [line for line in responses[:-1] if line.strip() != "250-AUTH"]
        return kept + ["250-PIPELINING"] + responses[-1:]

    async def handle_exception(self, error: Exception) -> str:
        log.warning("SMTP (%s): %s: %s", self.face, type(error).__name__, error)
        return "451 4.3.0 local error, try again later"

    async def handle_MAIL(self, server, session, envelope, address, options):
        refusal = await self.service.check_sender(self.face, server, session, address)
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 too many recipients"
        refusal = await self.service.check_recipient(address, bool(session.authenticated),
                                                     _size_option(envelope.mail_options))
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        return await self.service.accept_message(self.face, server, session, envelope)


class MailService:
    name = "mail"

    def __init__(self, config: Mapping[str, Any], datadir: Path, network: I2PNetwork, *,
                 clock: Clock | None = None, rng=os.urandom, **deps: Any):
        self.settings = _check_config(config)
        self.folder = Path(datadir) / MAIL_DIR
        self.network = network
        self.clock = clock or SystemClock()
        self.rng = rng
        self.session = None
        self._domain = "localhost"
        self._ready = asyncio.Event()
        self.i2p_error: str | None = None
        self.accounts: Accounts | None = None
        self.mailboxes: Mailboxes | None = None
        self.queue: OutboundQueue | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task] = set()
        self._i2p_task: asyncio.Task | None = None
        self._pop3_locks: set[str] = set()
        self._send_rate = RateLimit(self.settings["send_per_hour"], self.clock)
        self._receive_rate = RateLimit(self.settings["receive_per_hour"], self.clock)
        self._auth_failures = RateLimit(AUTH_FAILURES_PER_HOUR, self.clock)
        self.state, self.error = "stopped", None
        self.smtp_address = self.pop3_address = None
        self.stats = {"submitted": 0, "received": 0, "refused": 0}

    # lifecycle
    async def start(self) -> None:
        if self.state == "running":
            return
        try:
            await self._start()
        except ServiceError as exc:
            self.state, self.error = "failed", str(exc)
            await self._close()
            raise
        except (OSError, NetworkError, MailStoreError, ProtocolError) as exc:
            self.state, self.error = "failed", str(exc)
            await self._close()
            raise ServiceError(f"mail: {exc}") from exc
        self.state, self.error = "running", None

    async def _start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self.accounts = Accounts(self.folder, self.rng)
        self.mailboxes = Mailboxes(self.folder)
        self.queue = OutboundQueue(self.folder, self._deliver_remote, self._bounce, self.clock, self.rng,
                                   max_age=self.settings["max_age_days"] * 86400.0)
        keys = load_or_create_mail_keys(self.folder, self.rng)
        self._domain = keys.destination.b32_address
        loop = asyncio.get_running_loop()
        host = self.settings["host"]
        size = self.settings["max_message_size"]
        try:
            smtp = await loop.create_server(
                lambda: _smtpserver().make_smtp(_SmtpHandler(self, "submission"), hostname=self.domain,
                                                size_limit=size, auth=self._login, auth_required=True),
                host, self.settings["smtp_port"])
        except OSError as exc:
            raise ServiceError(f"[mail] smtp_port: cannot listen on {host}:{self.settings['smtp_port']}: "
                               f"{exc.strerror or exc}") from None
        self._servers.append(smtp)
        try:
            pop3 = await asyncio.start_server(self._on_pop3_tcp, host, self.settings["pop3_port"], limit=1024)
        except OSError as exc:
            raise ServiceError(f"[mail] pop3_port: cannot listen on {host}:{self.settings['pop3_port']}: "
                               f"{exc.strerror or exc}") from None
        self._servers.append(pop3)
        self.smtp_address = "%s:%d" % smtp.sockets[0].getsockname()[:2]
        self.pop3_address = "%s:%d" % pop3.sockets[0].getsockname()[:2]
        # tunnels may take minutes: mail programs are served meanwhile, outgoing mail waits in the queue
        self._i2p_task = loop.create_task(self._run_i2p(keys))

    async def _run_i2p(self, keys: PrivateKeys) -> None:
        delay = I2P_RETRY_FIRST
        while self.session is None:
            try:
                session = await self.network.open_session(keys, self.settings["options"], name="mail")
            except NetworkError as exc:
                self.i2p_error = str(exc)
                log.warning("mail: the mail destination is not up yet (%s); trying again in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, I2P_RETRY_MAX)
                continue
            await session.serve(self._on_smtp_stream, port=SMTP_PORT_I2P)
            if self.settings["server"]:
                await session.serve(self._on_pop3_stream, port=POP3_PORT_I2P)
            self.session, self.i2p_error = session, None
        self._ready.set()
        await self.queue.run()

    async def ready(self, timeout: float | None = None) -> None:
        """Wait until the mail destination is reachable over I2P."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def stop(self) -> None:
        await self._close()
        self.state = "stopped"

    async def _close(self) -> None:
        if self._i2p_task is not None:
            self._i2p_task.cancel()
            await _settle("the delivery queue", [self._i2p_task])
            self._i2p_task = None
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await _settle("POP3 sessions", list(self._tasks))
        self._servers = []
        if self.session is not None:
            session, self.session = self.session, None
            try:
                await asyncio.wait_for(session.close(), STOP_WAIT)
            except asyncio.TimeoutError:
                log.warning("mail: the mail destination did not close within %.0f s", STOP_WAIT)
        self._ready.clear()

    # who we are
    @property
    def domain(self) -> str:
        return self._domain

    @property
    def domains(self) -> frozenset[str]:
        return frozenset([self.domain, *self.settings["domain"]])

    def address(self, user: str) -> str:
        return f"{user}@{self.domain}"

    def _login(self, user: str, password: str, source: str) -> str | None:
        """The account name, or None; a source with too many failures this hour is not even checked
        (each check is a deliberately slow scrypt)."""
        assert self.accounts is not None
        if self._auth_failures.full(source):
            return None
        self.accounts.reload()          # `pyi2p mail adduser` may have run since
        user = user.strip().lower()
        local, domain = split_address(user) if "@" in user else (user, self.domain)
        if domain not in self.domains or not self.accounts.check(local, password):
            self._auth_failures.add(source)
            return None
        return local

    # SMTP policy
    async def check_sender(self, face: str, server, session, address: str) -> str | None:
        user = session.auth_data if session.authenticated else None
        local, domain = split_address(address)
        if user is not None:
            if domain not in self.domains or local != user:
                return f"553 5.7.1 send as <{self.address(user)}> (the account you logged in with)"
            if not self._send_rate.allow(user):
                return "452 4.7.0 too many messages this hour; try later"
            return None
        if face == "submission":
            return "530 5.7.0 authentication required"
        peer: Destination = server.transport.get_extra_info("destination")
        if not self._receive_rate.allow(peer.b32_address):
            return "421 4.7.0 too many messages from your destination this hour"
        if not address.strip("<>"):
            return None                 # a bounce (null sender) names no one
        if not domain or not await self._is_domain_of(domain, peer):
            self.stats["refused"] += 1
            return f"550 5.7.1 sender domain {domain or '?'} is not the destination you connect from"
        return None

    async def _is_domain_of(self, domain: str, peer: Destination) -> bool:
        try:
            if domain.endswith(".b32.i2p"):
                return len(domain) == 60 and b32decode(domain[:-8]) == peer.hash
            return (await self.session.resolve(domain, timeout=30)).hash == peer.hash
        except (NetworkError, ProtocolError, ValueError):
            return False

    async def check_recipient(self, address: str, authenticated: bool, size: int = 0) -> str | None:
        local, domain = split_address(address)
        if not domain:
            return "553 5.1.3 an address is user@domain"
        if domain in self.domains:
            if local not in self.accounts:
                self.accounts.reload()
                if local not in self.accounts:
                    return f"550 5.1.1 <{address}>: no such user here"
            if self.mailboxes.usage(local) + size > self.accounts.quota(local):
                return f"552 5.2.2 <{address}>: mailbox full"
            return None
        if not authenticated:
            return "550 5.7.1 relaying denied: only mail for this destination is taken"
        if not domain.endswith(".i2p"):
            return f"550 5.1.2 {domain}: only .i2p addresses are reachable"
        try:
            target = parse_address(domain)
            if isinstance(target, str):
                await resolve_name(self.network.resolver, target)
        except NetworkError as exc:
            return f"550 5.1.2 {domain}: {exc}"
        return None

    async def accept_message(self, face: str, server, session, envelope) -> str:
        sender, recipients = envelope.mail_from, list(envelope.rcpt_tos)
        data = envelope.content
        peer = None if session.authenticated else server.transport.get_extra_info("destination")
        refusal = await self._check_from_header(data, peer)
        if refusal:
            self.stats["refused"] += 1
            return refusal
        if session.authenticated:
            data = scrub(data, self.domain, self.clock.time(), self.rng, self.domains)
            self.stats["submitted"] += 1
        else:
            data = _received_line(peer.b32_address, self.domain, self.clock.time()) + data
            self.stats["received"] += 1
        try:
            self.route(sender, recipients, data)
        except QueueFull:
            return "452 4.3.1 the outgoing queue is full; try later"
        except OSError as exc:
            log.warning("mail: storing a message failed: %s", exc)
            return "451 4.3.0 cannot store the message now; try later"
        return "250 2.0.0 OK"

    async def _check_from_header(self, data: bytes, peer: Destination | None) -> str | None:
        """From and Sender must name our domain (our accounts) or the sending node's (`peer`), so the reader
        sees who really sent it, whatever the envelope (a null sender included)."""
        fields, _ = split_message(data)
        values = [field_value(f) for f in fields if field_name(f) in ("from", "sender")]
        for _, address in getaddresses(values) if values else []:
            domain = split_address(address)[1]
            mine = domain in self.domains if peer is None else domain and await self._is_domain_of(domain, peer)
            if not mine:
                return f"550 5.7.1 From: {address[:80] or '?'} is not of the sending destination"
        return None

    def route(self, sender: str, recipients: list[str], data: bytes) -> None:
        """Local recipients get it now (fsynced); the rest wait in the queue, one entry per domain."""
        remote: dict[str, list[str]] = {}
        for recipient in recipients:
            local, domain = split_address(recipient)
            if domain in self.domains:
                self.mailboxes.deliver(local, data)
            else:
                remote.setdefault(domain, []).append(recipient)
        for domain, addresses in remote.items():
            self.queue.add(sender, domain, addresses, data)

    async def _deliver_remote(self, entry: QueueEntry, data: bytes) -> dict[str, Reply]:
        try:
            reader, writer = await self.session.connect(entry.domain, SMTP_PORT_I2P,
                                                        timeout=self.settings["connect_timeout"])
        except NameNotFound as exc:         # like a domain without MX: the address is wrong, say so now
            raise SmtpError(550, str(exc)) from None
        return await send_mail(reader, writer, self.domain, entry.sender, entry.recipients, data)

    def _bounce(self, entry: QueueEntry, failures: list[tuple[str, str]], data: bytes) -> None:
        """A delivery status notification (RFC 3464) to the local sender."""
        local, domain = split_address(entry.sender)
        if domain not in self.domains or local not in self.accounts:
            log.info("mail: undeliverable message from %s dropped (no local sender)", entry.sender or "<>")
            return
        from email.mime.base import MIMEBase          # only bounces build MIME: not loaded with the node
        from email.mime.multipart import MIMEMultipart
        from email.mime.text import MIMEText
        report = MIMEMultipart("report", report_type="delivery-status")
        report["From"] = f"Mail Delivery System <{MAILER_DAEMON}@{self.domain}>"
        report["To"] = entry.sender
        report["Subject"] = "Undelivered Mail Returned to Sender"
        report["Auto-Submitted"] = "auto-replied"
        report.attach(MIMEText("Your message could not be delivered to:\n\n"
                               + "".join(f"  {r}: {why}\n" for r, why in failures), "plain", "utf-8"))
        status = MIMEBase("message", "delivery-status")
        blocks = [Message()]            # RFC 3464 section 2.1: per-message fields, then one block per recipient
        blocks[0]["Reporting-MTA"] = f"dns; {self.domain}"
        for recipient, why in failures:
            block = Message()
            block["Final-Recipient"] = f"rfc822; {recipient}"
            block["Action"] = "failed"
            block["Status"] = _dsn_status(why)
            block["Diagnostic-Code"] = f"smtp; {why}"
            blocks.append(block)
        status.set_payload(blocks)
        report.attach(status)
        headers, _ = split_message(data)
        original = MIMEBase("text", "rfc822-headers")
        original.set_payload(b"".join(headers).decode("utf-8", "replace"))
        report.attach(original)
        payload = scrub(_crlf(report), self.domain,
                        self.clock.time(), self.rng, self.domains)
        self.mailboxes.deliver(local, payload)

    # POP3
    def _pop3_login(self, user: str, password: str, source: str):
        local = self._login(user, password, source)
        if local is None:
            return None
        if local in self._pop3_locks:
            return "the mailbox is in use by another session"
        self._pop3_locks.add(local)
        return _Drop(self, local)

    async def _on_pop3_tcp(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            source = str((writer.get_extra_info("peername") or ("?",))[0])
            await serve_pop3(reader, writer, functools.partial(self._pop3_login, source=source), self.domain)
        finally:
            self._tasks.discard(task)

    async def _on_pop3_stream(self, stream: IncomingStream) -> None:
        await serve_pop3(stream.reader, stream.writer,
                         functools.partial(self._pop3_login, source=stream.peer.b32_address), self.domain)

    async def _on_smtp_stream(self, stream: IncomingStream) -> None:
        auth = self._login if self.settings["server"] else None
        smtpserver = _smtpserver()
        protocol = smtpserver.make_smtp(_SmtpHandler(self, "i2p"), hostname=self.domain,
                                        size_limit=self.settings["max_message_size"], auth=auth, auth_required=False)
        await smtpserver.serve_smtp_stream(protocol, stream.reader, stream.writer,
                                           (stream.peer.b32_address, stream.from_port), destination=stream.peer)

    # status and control
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"state": self.state}
        if self.error:
            status["error"] = self.error
        if self.state == "running":
            status.update(listen={"SMTP": self.smtp_address, "POP3": self.pop3_address, "I2P": self.domain},
                          i2p="ready" if self.session is not None else "opening",
                          smtp=self.smtp_address, pop3=self.pop3_address, b32=self.domain,
                          domains=sorted(self.domains), server=self.settings["server"],
                          accounts=len(self.accounts.names()), queued=len(self.queue.entries),
                          **self.stats, **{f"queue_{k}": v for k, v in self.queue.stats.items()})
        return status

    def control_methods(self) -> dict[str, Any]:
        return {"Address": self._control_address, "Inbox": self._control_inbox, "Read": self._control_read,
                "Send": self._control_send, "Queue": self._control_queue}

    def _running(self) -> None:
        if self.state != "running":
            raise ValueError("the mail service is not running")

    def _user(self, params: Mapping[str, Any]) -> str:
        self._running()
        user = str(params.get("user", "")).lower()
        if user not in self.accounts:
            self.accounts.reload()
            if user not in self.accounts:
                raise ValueError(f"user: no account {user!r}")
        return user

    def _control_address(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self._running()
        try:
            self.accounts.reload()      # accounts added by `pyi2p mail adduser` since the start
        except MailStoreError as exc:
            raise ValueError(str(exc)) from None
        return {"domain": self.domain, "domains": sorted(self.domains),
                "addresses": [self.address(user) for user in self.accounts.names()]}

    def _control_inbox(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        user = self._user(params)
        listing = self.mailboxes.list(user)
        limit = max(1, min(int(params.get("limit", 200)), 1000))
        return [dict(self._summary(user, message), id=message.key, size=message.size)
                for message in listing[-limit:]]

    def _summary(self, user: str, message: StoredMessage) -> dict[str, str]:
        try:
            fields, _ = split_message(self.mailboxes.read(user, message.key)[:65536])
        except MailStoreError:
            return {}
        wanted = {"from": "", "to": "", "subject": "", "date": ""}
        for field in fields:
            name = field_name(field)
            if name in wanted and not wanted[name]:
                wanted[name] = field_value(field)[:300]
        return wanted

    def _control_read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        user = self._user(params)
        key = str(params.get("id", ""))
        try:
            data = self.mailboxes.read(user, key)
        except MailStoreError as exc:
            raise ValueError(str(exc)) from None
        if params.get("delete"):
            self.mailboxes.delete(user, [key])
        return {"id": key, "message": data.decode("utf-8", "replace")}

    async def _control_send(self, params: Mapping[str, Any]) -> dict[str, Any]:
        user = self._user(params)
        to = params.get("to")
        recipients = [to] if isinstance(to, str) else list(to or [])
        if not recipients or len(recipients) > MAX_RECIPIENTS:
            raise ValueError(f"to: 1 to {MAX_RECIPIENTS} addresses")
        sender = self.address(user)
        for recipient in recipients:
            refusal = await self.check_recipient(str(recipient), True)
            if refusal:
                raise ValueError(f"to: {refusal[4:]}")
        if not self._send_rate.allow(user):
            raise ValueError("too many messages this hour")
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = str(params.get("subject", ""))[:500]
        message.set_content(str(params.get("body", "")))
        data = scrub(_crlf(message), self.domain,
                     self.clock.time(), self.rng, self.domains)
        try:
            self.route(sender, [str(r) for r in recipients], data)
        except QueueFull as exc:
            raise ValueError(str(exc)) from None
        self.stats["submitted"] += 1
        return {"from": sender, "to": recipients}

    def _control_queue(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._running()
        if params.get("flush"):
            self.queue.retry_now()
        return self.queue.list()


async def _settle(what: str, tasks: list[asyncio.Task]) -> None:
    """Wait a bounded time for cancelled tasks to end: a stop must not hang on one that does not."""
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=STOP_WAIT)
        if pending:
            log.warning("mail: %s did not stop within %.0f s", what, STOP_WAIT)


def load_or_create_mail_keys(folder: Path, rng=os.urandom) -> PrivateKeys:
    """The mail destination's keys (its b32 is the node's mail address), kept 0600 across restarts."""
    path = folder / KEYS_FILE
    if path.exists():
        try:
            return PrivateKeys.load(path)
        except ProtocolError as exc:
            raise ServiceError(f"{path}: not a private key file ({exc})") from None
    keys = PrivateKeys.generate(rng=rng)
    keys.save(path)
    return keys


def _size_option(options: list[str]) -> int:
    for option in options:
        if option.upper().startswith("SIZE=") and option[5:].isdigit():
            return int(option[5:])
    return 0


def _received_line(peer: str, domain: str, now: float) -> bytes:
    when = format_datetime(datetime.fromtimestamp(int(now), timezone.utc))
    return f"Received: from {peer} by {domain} with ESMTP; {when}\r\n".encode()


def _crlf(message: Message) -> bytes:
    """A message we make, with the CRLF line ends SMTP, POP3 and our Maildirs use."""
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def _dsn_status(why: str) -> str:
    return "5.0.0" if why[:1] == "5" else "4.4.7"

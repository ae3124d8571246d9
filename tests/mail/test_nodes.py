"""Mail between MailServices on one in-memory I2P, driven by Python's own smtplib and poplib: direct
user@b32 mail, names through the resolver, the sender rule, a node that is down, bounces, a mail host."""
from __future__ import annotations

import asyncio
import poplib
import smtplib

import pytest

from apps.mail import MailService

from apps.network import NetworkError
from core.clock import FakeClock
from apps.mail.smtpclient import SmtpError, read_reply, send_mail
from tests.mail.conftest import client_tunnel, host_port, message, pop_all, smtp_send, wait_until


async def test_direct_mail_b32_to_b32_with_smtplib_and_poplib(nodes):
    a = await nodes("a", "alice", "pw-a")
    b = await nodes("b", "bob", "pw-b")
    alice, bob = a.address("alice"), b.address("bob")
    data = message(alice, bob, extra="X-Mailer: Foo 1.0\r\nReceived: from laptop.lan (10.0.0.7)\r\n",
                   body="line one\r\n.leading dot\r\n")
    assert await smtp_send(a, "alice", "pw-a", alice, [bob], data) == {}
    await wait_until(lambda: b.mailboxes.list("bob"))
    [got] = await pop_all(b, "bob", "pw-b", delete=True)
    header, body = got.split(b"\r\n\r\n", 1)
    assert body == b"line one\r\n.leading dot\r\n"
    assert f"From: {alice}".encode() in header and b"Subject: hello" in header
    assert b"laptop" not in header and b"10.0.0.7" not in header and b"X-Mailer" not in header
    assert header.startswith(f"Received: from {a.domain} by {b.domain} with ESMTP;".encode())
    assert f"Message-ID: <".encode() in header and f"@{a.domain}>".encode() in header
    assert await pop_all(b, "bob", "pw-b") == []
    assert a.status()["queue_delivered"] == 1 and b.status()["received"] == 1


async def test_name_i2p_through_the_resolver_and_a_local_copy(nodes, network):
    a = await nodes("a", "alice")
    b = await nodes("b", "bob", domain="bob-node.i2p")
    network.resolver = {"bob-node.i2p": b.session.destination}.get
    a.accounts.add("carol", "pw")
    alice = a.address("alice")
    data = message(alice, "bob@bob-node.i2p")
    await smtp_send(a, "alice", "secret", alice, ["bob@bob-node.i2p", a.address("carol")], data)
    assert len(a.mailboxes.list("carol")) == 1            # local recipient: delivered at once
    await wait_until(lambda: b.mailboxes.list("bob"))
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await smtp_send(a, "alice", "secret", alice, ["x@unknown-name.i2p"], data)
    assert refused.value.recipients["x@unknown-name.i2p"][0] == 550


async def test_submission_needs_the_account_and_its_own_address(nodes):
    a = await nodes("a", "alice")
    b = await nodes("b", "bob")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        await smtp_send(a, "alice", "wrong", a.address("alice"), [b.address("bob")], b"x\r\n")

    def unauthenticated():
        with smtplib.SMTP(*host_port(a.smtp_address), timeout=10) as client:
            return client.sendmail(a.address("alice"), [b.address("bob")], b"Subject: x\r\n\r\nx\r\n")
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await asyncio.to_thread(unauthenticated)
    assert refused.value.smtp_code == 530
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await smtp_send(a, "alice", "secret", b.address("bob"), [b.address("bob")], b"x\r\n")
    assert refused.value.smtp_code == 553
    with pytest.raises(smtplib.SMTPDataError) as refused:     # header From of another domain
        await smtp_send(a, "alice", "secret", a.address("alice"), [b.address("bob")],
                        message(b.address("bob"), b.address("bob")))
    assert refused.value.smtp_code == 550
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await smtp_send(a, "alice", "secret", a.address("alice"), ["someone@example.com"], b"x\r\n")
    assert b.mailboxes.list("bob") == []


async def test_a_forged_sender_between_nodes_is_refused(nodes, network):
    a = await nodes("a", "alice")
    b = await nodes("b", "bob")
    mallory = await network.open_session(name="mallory")
    bob = b.address("bob")
    # mallory claims to be alice's node
    reader, writer = await mallory.connect(b.session.destination, 25, timeout=5)
    with pytest.raises(SmtpError) as refused:
        await asyncio.wait_for(send_mail(reader, writer, mallory.b32, a.address("alice"), [bob],
                                         message(a.address("alice"), bob)), 10)
    assert refused.value.code == 550 and refused.value.permanent
    # with its own domain in the envelope but alice's in From
    reader, writer = await mallory.connect(b.session.destination, 25, timeout=5)
    outcome = await asyncio.wait_for(send_mail(reader, writer, mallory.b32, f"m@{mallory.b32}", [bob],
                                               message(a.address("alice"), bob)), 10)
    assert outcome[bob].code == 550 and "From" in outcome[bob].text
    # a null envelope sender does not let a forged From through either
    reader, writer = await mallory.connect(b.session.destination, 25, timeout=5)
    outcome = await asyncio.wait_for(send_mail(reader, writer, mallory.b32, "", [bob],
                                               message(a.address("alice"), bob)), 10)
    assert outcome[bob].code == 550
    # and no relaying through bob's node for anyone
    reader, writer = await mallory.connect(b.session.destination, 25, timeout=5)
    outcome = await asyncio.wait_for(send_mail(reader, writer, mallory.b32, f"m@{mallory.b32}",
                                               [a.address("alice")], message(f"m@{mallory.b32}", "x")), 10)
    assert outcome[a.address("alice")].code == 550
    # its own name is fine
    reader, writer = await mallory.connect(b.session.destination, 25, timeout=5)
    outcome = await asyncio.wait_for(send_mail(reader, writer, mallory.b32, f"m@{mallory.b32}", [bob],
                                               message(f"m@{mallory.b32}", bob)), 10)
    assert outcome[bob].code == 250
    assert len(b.mailboxes.list("bob")) == 1 and b.status()["refused"] >= 2
    await mallory.close()


async def test_a_node_that_is_down_gets_the_mail_when_it_is_back(nodes, tmp_path, network):
    a = await nodes("a", "alice")
    b = await nodes("b", "bob")
    bob = b.address("bob")
    await b.stop()
    await smtp_send(a, "alice", "secret", a.address("alice"), [bob], message(a.address("alice"), bob))
    await wait_until(lambda: a.queue.stats["retries"] >= 1)
    [entry] = a.queue.list()
    assert entry["attempts"] == 1 and "LeaseSet" in entry["last_error"]
    assert a._control_queue({})[0]["recipients"] == [bob]
    await b.start()                                       # same data dir: same keys, same address
    await b.ready(30)
    assert b.address("bob") == bob
    assert a._control_queue({"flush": True}) != []        # what `pyi2p mail queue --flush` asks
    await wait_until(lambda: b.mailboxes.list("bob"))
    await wait_until(lambda: not a.queue.entries)


async def test_an_unknown_user_on_the_other_node_bounces_to_the_sender(nodes):
    a = await nodes("a", "alice")
    b = await nodes("b", "bob")
    nobody = f"nobody@{b.domain}"
    await smtp_send(a, "alice", "secret", a.address("alice"), [nobody], message(a.address("alice"), nobody,
                                                                                 subject="lost"))
    await wait_until(lambda: a.mailboxes.list("alice"))
    [bounce] = await pop_all(a, "alice", "secret")
    assert b"Undelivered Mail Returned to Sender" in bounce and b"multipart/report" in bounce
    assert nobody.encode() in bounce and b"550" in bounce and b"Subject: lost" in bounce
    stored = a.mailboxes.read("alice", a.mailboxes.list("alice")[0].key)
    assert stored.count(b"\n") == stored.count(b"\r\n") and b"Final-Recipient: rfc822;" in stored


async def test_mailbox_quota_refuses_at_rcpt(nodes):
    a = await nodes("a", "alice")
    a.accounts.add("small", "pw", quota=1000)
    small = a.address("small")
    await smtp_send(a, "alice", "secret", a.address("alice"), [small],
                    message(a.address("alice"), small, body="x" * 600 + "\r\n"))
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await smtp_send(a, "alice", "secret", a.address("alice"), [small], message(a.address("alice"), small))
    assert refused.value.recipients[small][0] == 552
    assert len(a.mailboxes.list("small")) == 1


async def test_mail_host_accounts_over_client_tunnels(nodes, network):
    """Postman-style: alice has no node of her own; her mail program reaches the host through client
    tunnels (7659 -> host:25, 7660 -> host:110), and the host relays for her, and only for her."""
    host = await nodes("host", "alice", "alice-pw", server=True)
    b = await nodes("b", "bob", "bob-pw")
    laptop = await network.open_session(name="laptop")
    smtp_tunnel, smtp_address = await client_tunnel(laptop, host.domain, 25)
    pop_tunnel, pop_address = await client_tunnel(laptop, host.domain, 110)
    alice, bob = host.address("alice"), b.address("bob")
    try:
        await smtp_send(host, "alice", "alice-pw", alice, [bob], message(alice, bob), address=smtp_address)
        await wait_until(lambda: b.mailboxes.list("bob"))
        await smtp_send(b, "bob", "bob-pw", bob, [alice], message(bob, alice, subject="re: hello"))
        await wait_until(lambda: host.mailboxes.list("alice"))
        [reply] = await pop_all(host, "alice", "alice-pw", address=pop_address)
        assert b"Subject: re: hello" in reply and f"Received: from {b.domain}".encode() in reply
        # the host relays only for its accounts
        with pytest.raises(smtplib.SMTPAuthenticationError):
            await smtp_send(host, "alice", "guess", alice, [bob], message(alice, bob), address=smtp_address)

        def unauthenticated_relay():
            with smtplib.SMTP(*host_port(smtp_address), timeout=10) as client:
                return client.sendmail(f"x@{laptop.b32}", [bob], message(f"x@{laptop.b32}", bob))
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await asyncio.to_thread(unauthenticated_relay)
    finally:
        smtp_tunnel.close()
        pop_tunnel.close()
        await laptop.close()


async def test_a_node_without_server_mode_offers_no_pop3_over_i2p(nodes, network):
    b = await nodes("b", "bob")
    other = await network.open_session()
    with pytest.raises((NetworkError, ConnectionError, asyncio.IncompleteReadError)):
        reader, writer = await other.connect(b.session.destination, 110, timeout=3)
        await asyncio.wait_for(reader.readexactly(1), 3)
    reader, writer = await other.connect(b.session.destination, 25, timeout=3)
    greeting = await read_reply(reader, 5)
    assert greeting.code == 220 and b.domain in greeting.text
    writer.write(b"EHLO x\r\n")
    assert "AUTH" not in (await read_reply(reader, 5)).text    # no accounts' logins over I2P
    writer.close()
    await other.close()


async def test_control_methods_send_list_read(nodes):
    a = await nodes("a", "alice")
    b = await nodes("b", "bob")
    methods = a.control_methods()
    assert methods["Address"]({})["addresses"] == [a.address("alice")]
    sent = await methods["Send"]({"user": "alice", "to": b.address("bob"), "subject": "from the console",
                                  "body": "typed in the TUI"})
    assert sent["from"] == a.address("alice")
    await wait_until(lambda: b.mailboxes.list("bob"))
    [summary] = b.control_methods()["Inbox"]({"user": "bob"})
    assert summary["subject"] == "from the console" and summary["from"] == a.address("alice")
    read = b.control_methods()["Read"]({"user": "bob", "id": summary["id"], "delete": True})
    assert "typed in the TUI" in read["message"]
    assert read["message"].count("\n") == read["message"].count("\r\n")        # CRLF throughout
    assert b.control_methods()["Inbox"]({"user": "bob"}) == []
    with pytest.raises(ValueError):
        methods["Inbox"]({"user": "nobody"})
    with pytest.raises(ValueError):
        await methods["Send"]({"user": "alice", "to": "x@example.com"})


class SlowNetwork:
    """The in-memory I2P, but the first open_session fails and the second waits until the test says go
    (tunnels that take minutes to build)."""

    def __init__(self, network):
        self.network, self.resolver = network, None
        self.go = asyncio.Event()
        self.tries = 0

    async def open_session(self, keys=None, options=None, name=None):
        self.tries += 1
        if self.tries == 1:
            raise NetworkError("no tunnels were built in time")
        await self.go.wait()
        return await self.network.open_session(keys, options, name)


async def test_mail_programs_are_served_while_the_destination_is_still_opening(nodes, network, tmp_path,
                                                                                monkeypatch):
    monkeypatch.setattr("apps.mail.service.I2P_RETRY_FIRST", 0.05)
    b = await nodes("b", "bob")
    slow = SlowNetwork(network)
    a = MailService({"smtp_port": 0, "pop3_port": 0}, tmp_path / "slow", slow)
    await a.start()
    try:
        a.accounts.add("alice", "pw")
        assert a.status()["i2p"] == "opening" and a.status()["listen"]["SMTP"] == a.smtp_address
        await smtp_send(a, "alice", "pw", a.address("alice"), [b.address("bob")],
                        message(a.address("alice"), b.address("bob")))
        assert len(a.queue.entries) == 1
        await wait_until(lambda: slow.tries == 2)
        slow.go.set()
        await a.ready(10)
        assert a.status()["i2p"] == "ready" and a.session.b32 == a.domain
        await wait_until(lambda: b.mailboxes.list("bob"))
    finally:
        await a.stop()


async def test_hourly_limits_per_account_and_per_sending_destination(nodes, network):
    a = await nodes("a", "alice", send_per_hour=2)
    b = await nodes("b", "bob", receive_per_hour=1)
    alice, bob = a.address("alice"), b.address("bob")
    for _ in range(2):
        await smtp_send(a, "alice", "secret", alice, [alice], message(alice, alice))
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await smtp_send(a, "alice", "secret", alice, [alice], message(alice, alice))
    assert refused.value.smtp_code == 452
    other = await network.open_session()
    try:
        for expected in (250, 421):
            reader, writer = await other.connect(b.session.destination, 25, timeout=5)
            try:
                outcome = await asyncio.wait_for(send_mail(reader, writer, other.b32, f"x@{other.b32}", [bob],
                                                           message(f"x@{other.b32}", bob)), 10)
                code = outcome[bob].code
            except SmtpError as exc:
                code = exc.code
            assert code == expected
    finally:
        await other.close()
    assert len(b.mailboxes.list("bob")) == 1


async def test_password_guessing_is_cut_off_per_source(network, tmp_path, monkeypatch):
    monkeypatch.setattr("apps.mail.service.AUTH_FAILURES_PER_HOUR", 3)
    clock = FakeClock()
    a = MailService({"smtp_port": 0, "pop3_port": 0}, tmp_path / "a", network, clock=clock)
    await a.start()
    try:
        a.accounts.add("alice", "secret")
        alice = a.address("alice")
        for guess in ("a", "b", "c", "secret"):           # the right one, after 3 wrong, is not even checked
            with pytest.raises(smtplib.SMTPAuthenticationError):
                await smtp_send(a, "alice", guess, alice, [alice], b"x\r\n")
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            await pop_all(a, "alice", "secret")
        clock.advance(3601)                                # an hour later it works again
        await smtp_send(a, "alice", "secret", alice, [alice], message(alice, alice))
    finally:
        await a.stop()

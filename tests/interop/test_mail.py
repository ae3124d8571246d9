"""Mail on the private testnet: two pyi2p nodes (in-process routers in the namespace) send mail to each
other directly over 2-hop tunnels through i2pd hops, a forged sender is refused, and one node as a mail
host is used by swaks and fetchmail through i2pd client tunnels (i2pd's tunnels.d); mail to a host whose
port 25 is closed waits in the queue and goes when it opens again."""
from __future__ import annotations

import asyncio
import getpass
import shutil
import time

import pytest

from apps.mail import MailService
from apps.mail.smtpclient import SmtpError, send_mail
from apps.network import InProcessNetwork
from core.config import load_config
from core.router import Router
from core.tunnel.service import TunnelSettings
from tests.client.routers import free_port
from tests.mail.test_real_clients import run

pytestmark = pytest.mark.interop

OPTIONS = {"inbound.length": "2", "outbound.length": "2", "inbound.quantity": "2", "outbound.quantity": "2",
           "i2cp.leaseSetEncType": "4"}
SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=10.0, tick_s=0.2)
DELIVERY_WAIT = 300.0


async def swaks(port: int, user: str, password: str, sender: str, to: str, subject: str) -> tuple[int, str]:
    return await run("swaks", "--server", "127.0.0.1", "--port", str(port), "--auth", "PLAIN", "--auth-user", user,
                     "--auth-password", password, "--from", sender, "--to", to, "--header", f"From: {sender}",
                     "--header", f"Subject: {subject}", "--body", f"{subject} over the testnet",
                     "--timeout", "120")


async def delivered(receiver: MailService, user: str, senders: list[MailService], count: int = 1) -> float:
    """Seconds until `user` has `count` messages; the senders' queues are flushed every 15 s so a first
    failed try (LeaseSet not yet found) does not wait out the whole backoff."""
    started = time.monotonic()
    while len(receiver.mailboxes.list(user)) < count:
        if time.monotonic() - started > DELIVERY_WAIT:
            raise AssertionError(f"not delivered in {DELIVERY_WAIT:.0f} s; queues: "
                                 f"{[s.queue.list() for s in senders]}")
        await asyncio.sleep(1.0)
        if int(time.monotonic() - started) % 15 == 0:
            for sender in senders:
                sender.queue.retry_now()
    return time.monotonic() - started


async def test_mail_between_pyi2p_nodes_and_through_a_host_over_i2pd(testnet, tmp_path):
    need = [tool for tool in ("swaks", "fetchmail") if not shutil.which(tool)]
    assert not need, f"{need} not installed"
    addresses = [testnet.add_pyi2p_address(), testnet.add_pyi2p_address()]
    with testnet.in_netns():
        routers = [Router(load_config(tmp_path / f"router-{i}", {
            "netid": testnet.netid, "host": address, "port": free_port(), "reseed_file": str(testnet.seed_file),
            "control_port": 0, "sam_port": 0}), tunnel_settings=SETTINGS) for i, address in enumerate(addresses)]
        networks: list[InProcessNetwork] = []
        services: list[MailService] = []
        try:
            for router in routers:
                await router.start()
            networks = [InProcessNetwork(router.client) for router in routers]
            a = MailService({"smtp_port": 0, "pop3_port": 0, "options": OPTIONS, "connect_timeout": 60},
                            tmp_path / "node-a", networks[0])
            host = MailService({"smtp_port": 0, "pop3_port": 0, "options": OPTIONS, "connect_timeout": 60,
                                "server": True}, tmp_path / "host", networks[1])
            services = [a, host]
            await asyncio.gather(a.start(), host.start())
            await asyncio.gather(a.ready(240), host.ready(240))
            a.accounts.add("alice", "alice-pw")
            host.accounts.add("bob", "bob-pw")
            host.accounts.add("carol", "carol-pw")
            alice, bob, carol = a.address("alice"), host.address("bob"), host.address("carol")

            # direct: alice's node hands the mail to bob's node over I2P
            smtp_a = int(a.smtp_address.rsplit(":", 1)[1])
            code, out = await swaks(smtp_a, "alice", "alice-pw", alice, bob, "direct")
            assert code == 0, out
            direct_s = await delivered(host, "bob", [a])
            [got] = [host.mailboxes.read("bob", m.key) for m in host.mailboxes.list("bob")]
            assert b"Subject: direct" in got and f"Received: from {a.domain}".encode() in got
            # and back
            smtp_h = int(host.smtp_address.rsplit(":", 1)[1])
            code, out = await swaks(smtp_h, "bob", "bob-pw", bob, alice, "reply")
            assert code == 0, out
            reply_s = await delivered(a, "alice", [host])

            # a third destination on alice's router claims to be alice's node
            mallory = await networks[0].open_session(options=OPTIONS, name="mallory")
            try:
                reader, writer = await mallory.connect(host.session.destination, 25, timeout=90)
                with pytest.raises(SmtpError) as refused:
                    await asyncio.wait_for(send_mail(reader, writer, mallory.b32, alice, [bob],
                                                     f"From: {alice}\r\n\r\nforged\r\n".encode()), 120)
                assert refused.value.code == 550
            finally:
                await mallory.close()
            assert len(host.mailboxes.list("bob")) == 1

            # carol uses the host through i2pd client tunnels on r3: SMTP 25 and POP3 110 of the host's b32
            smtp_port, pop_port = free_port(), free_port()
            testnet.set_i2pd_tunnels("r3", "mailhost", (
                f"[mail-smtp]\ntype = client\naddress = 127.0.0.1\nport = {smtp_port}\n"
                f"destination = {host.domain}\ndestinationport = 25\nkeys = mail-client.dat\n"
                + "".join(f"{k} = {v}\n" for k, v in OPTIONS.items() if k != "i2cp.leaseSetEncType")
                + f"\n[mail-pop3]\ntype = client\naddress = 127.0.0.1\nport = {pop_port}\n"
                f"destination = {host.domain}\ndestinationport = 110\nkeys = mail-client.dat\n"))
            # i2pd 2.45.1 is slow to open a first stream to a fresh pyi2p destination: bounded retries
            tunnel_started = time.monotonic()
            failed_tries = []
            for swaks_tries in range(1, 13):
                code, out = await swaks(smtp_port, "carol", "carol-pw", carol, alice, "via the host")
                if code == 0:
                    break
                failed_tries.append(out.strip().splitlines()[-1] if out.strip() else f"exit {code}")
                await asyncio.sleep(10)
            assert code == 0, f"swaks through the i2pd client tunnel failed {swaks_tries} times:\n{out}"
            via_tunnel_s = time.monotonic() - tunnel_started
            await delivered(a, "alice", [host], count=2)
            code, out = await swaks(smtp_a, "alice", "alice-pw", alice, carol, "to carol")
            assert code == 0, out
            await delivered(host, "carol", [a])
            rc = tmp_path / "fetchmailrc"
            mbox = tmp_path / "carol.mbox"
            rc.write_text(f"set no syslog\npoll 127.0.0.1 protocol POP3 port {pop_port} auth password timeout 120\n"
                          f'  user "carol" password "carol-pw" is "{getpass.getuser()}" here\n'
                          f'  sslproto "" no sslcertck fetchall nokeep\n  mda "/bin/sh -c \'cat >> {mbox}\'"\n')
            rc.chmod(0o600)
            for fetch_tries in range(1, 7):
                code, out = await run("fetchmail", "--fetchmailrc", str(rc), "--idfile", str(tmp_path / "ids"),
                                      "--pidfile", str(tmp_path / "pid"), "--nodetach", timeout=180)
                if code == 0:
                    break
                await asyncio.sleep(10)
            assert code == 0, out
            assert "Subject: to carol" in mbox.read_text() and host.mailboxes.list("carol") == []
            # the host's port 25 closes; alice's mail waits in her queue and goes when it opens again
            # (a destination restarted with the same keys is in tests/mail: here the sender's router would
            # keep using the LeaseSet it has cached until it expires, up to 10 minutes)
            host.session.stop_serving(25)
            code, out = await swaks(smtp_a, "alice", "alice-pw", alice, bob, "while you were away")
            assert code == 0, out
            started = time.monotonic()
            while a.queue.stats["retries"] < 1:
                assert time.monotonic() - started < 180, a.queue.list()
                await asyncio.sleep(0.5)
            assert a.queue.list()[0]["recipients"] == [bob]
            await host.session.serve(host._on_smtp_stream, port=25)
            back_s = await delivered(host, "bob", [a], count=2)
            assert any(b"Subject: while you were away" in host.mailboxes.read("bob", m.key)
                       for m in host.mailboxes.list("bob"))
            print(f"\nmail over 2-hop tunnels: port 25 open again, the queued message arrived {back_s:.1f} s later")
            print(f"mail over 2-hop tunnels: the host back up, the queued message arrived {back_s:.1f} s later")
            print(f"mail over 2-hop tunnels: alice->bob {direct_s:.1f} s, bob->alice {reply_s:.1f} s, "
                  f"swaks via the i2pd client tunnel {via_tunnel_s:.1f} s ({swaks_tries} tries), "
                  f"fetchmail {fetch_tries} tries; failed swaks tries: {failed_tries}")
        finally:
            testnet.set_i2pd_tunnels("r3", "mailhost", None)
            for service in services:
                await service.stop()
            for network in networks:
                await network.close()
            for router in routers:
                await router.stop()

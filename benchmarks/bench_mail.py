"""Prints mail figures between two MailServices on one in-memory I2P (InProcessNetwork over a ClientAPI):
messages per minute node to node (1 KB and 1 MB, submitted with smtplib), the time from
smtplib.sendmail on one node to the message being retrieved by poplib on the other, and the process RSS
with 10,000 messages in a mailbox (and what a POP3 session over them costs).

Every message is fsynced into the queue and into the Maildir, so the figures include the disk.

Run: python benchmarks/bench_mail.py [--small 200] [--large 20] [--latency 10] [--mailbox 10000]
     python benchmarks/bench_mail.py --testnet [--small 50] [--large 5]     (2-hop tunnels, i2pd hops)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import poplib
import smtplib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.mail import MailService  # noqa: E402
from apps.network import InProcessNetwork  # noqa: E402
from core.client import ClientAPI  # noqa: E402
from core.stats import rss_mb  # noqa: E402


def address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def submit(service: MailService, sender: str, to: str, count: int, size: int) -> None:
    body = (b"x" * 76 + b"\r\n") * max(1, size // 78)
    with smtplib.SMTP(*address(service.smtp_address), timeout=120) as client:
        client.login("alice", "pw")
        for n in range(count):
            client.sendmail(sender, [to], f"From: {sender}\r\nTo: {to}\r\nSubject: {n}\r\n\r\n".encode() + body)


async def wait_count(service: MailService, user: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(service.mailboxes.list(user)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(service.mailboxes.list(user))} of {count} arrived in {timeout:.0f} s")
        await asyncio.sleep(0.01)


async def throughput(a: MailService, b: MailService, count: int, size: int) -> tuple[float, float]:
    before = len(b.mailboxes.list("bob"))
    started = time.monotonic()
    await asyncio.to_thread(submit, a, a.address("alice"), b.address("bob"), count, size)
    submitted = time.monotonic() - started
    await wait_count(b, "bob", before + count, 600)
    elapsed = time.monotonic() - started
    return count / elapsed * 60, submitted


def pop_retrieve_last(service: MailService, expected: int) -> bool:
    client = poplib.POP3(*address(service.pop3_address), timeout=30)
    try:
        client.user("bob")
        client.pass_("pw")
        count, _ = client.stat()
        if count < expected:
            return False
        client.retr(count)
        return True
    finally:
        client.quit()


async def latency(a: MailService, b: MailService, rounds: int) -> tuple[list[float], list[float]]:
    """(to the Maildir, to retrieved with poplib) per message, seconds."""
    stored, retrieved = [], []
    for _ in range(rounds):
        expected = len(b.mailboxes.list("bob")) + 1
        started = time.monotonic()
        await asyncio.to_thread(submit, a, a.address("alice"), b.address("bob"), 1, 1000)
        await wait_count(b, "bob", expected, 60)
        stored.append(time.monotonic() - started)
        while not await asyncio.to_thread(pop_retrieve_last, b, expected):
            await asyncio.sleep(0.005)
        retrieved.append(time.monotonic() - started)
    return stored, retrieved


def big_mailbox(service: MailService, count: int) -> dict[str, float]:
    rss_before = rss_mb()
    data = b"From: x@y.b32.i2p\r\nSubject: filler\r\n\r\n" + (b"y" * 76 + b"\r\n") * 12
    started = time.monotonic()
    for _ in range(count):
        service.mailboxes.deliver("carol", data)
    stored = time.monotonic() - started
    rss_stored = rss_mb()
    started = time.monotonic()
    client = poplib.POP3(*address(service.pop3_address), timeout=120)
    client.user("carol")
    client.pass_("pw")
    total, _ = client.stat()
    client.list()
    client.uidl()
    client.retr(total)
    rss_session = rss_mb()
    client.quit()
    return {"deliver_s": stored, "pop3_s": time.monotonic() - started, "count": total, "rss_before": rss_before,
            "rss_stored": rss_stored, "rss_session": rss_session}


async def node_to_node(a: MailService, b: MailService, args: argparse.Namespace) -> None:
    a.accounts.add("alice", "pw")
    b.accounts.add("bob", "pw", quota=1 << 40)
    await asyncio.gather(a.ready(300), b.ready(300))
    for label, count, size in (("1 KB", args.small, 1000), ("1 MB", args.large, 1_000_000)):
        per_minute, submit_s = await throughput(a, b, count, size)
        print(f"  {label}: {count} messages, {per_minute:8.0f} messages/min node to node "
              f"(smtplib submission alone {count / submit_s * 60:.0f}/min)", flush=True)
    stored, retrieved = await latency(a, b, args.latency)
    print(f"  sendmail -> in the other node's Maildir: median {statistics.median(stored) * 1000:.0f} ms, "
          f"max {max(stored) * 1000:.0f} ms ({args.latency} messages)")
    print(f"  sendmail -> retrieved by poplib there:   median {statistics.median(retrieved) * 1000:.0f} ms, "
          f"max {max(retrieved) * 1000:.0f} ms", flush=True)


CONFIG = {"smtp_port": 0, "pop3_port": 0, "send_per_hour": 1_000_000, "receive_per_hour": 1_000_000,
          "quota_mb": 100_000}


async def in_memory(args: argparse.Namespace, tmp: Path) -> None:
    network = InProcessNetwork(ClientAPI())
    a = MailService(CONFIG, tmp / "a", network)
    b = MailService(CONFIG, tmp / "b", network)
    await a.start()
    await b.start()
    try:
        print(f"mail between two nodes on one in-memory I2P (InProcessNetwork), {os.cpu_count()} CPUs")
        await node_to_node(a, b, args)
        b.accounts.add("carol", "pw", quota=1 << 40)
        figures = await asyncio.to_thread(big_mailbox, b, args.mailbox)
        print(f"  {figures['count']} messages in one mailbox: stored in {figures['deliver_s']:.1f} s "
              f"({figures['count'] / figures['deliver_s']:.0f}/s, fsynced); RSS {figures['rss_before']:.0f} MB "
              f"before, {figures['rss_stored']:.0f} MB after storing, {figures['rss_session']:.0f} MB during a "
              f"POP3 session (login+STAT+LIST+UIDL+RETR {figures['pop3_s']:.2f} s)")
    finally:
        await a.stop()
        await b.stop()
        await network.close()


async def on_testnet(args: argparse.Namespace, tmp: Path) -> None:
    """Two in-process routers in a private testnet of 5 i2pd routers; the mail destinations use 2-hop tunnels."""
    from core.config import load_config
    from core.router import Router
    from core.tunnel.service import TunnelSettings
    from pyi2p.testnet import Testnet, private_netns_name, unavailable_reason

    reason = unavailable_reason()
    if reason:
        print(f"testnet unavailable: {reason}")
        return
    testnet = Testnet(tmp / "testnet", netns=private_netns_name("bench"), die_with_parent=True)
    try:
        testnet.up(wait=120)
        addresses = [testnet.add_pyi2p_address() for _ in range(2)]
        options = {"inbound.length": "2", "outbound.length": "2", "inbound.quantity": "2", "outbound.quantity": "2"}
        with testnet.in_netns():
            routers = [Router(load_config(tmp / f"router{i}", {
                "netid": testnet.netid, "host": address, "port": 24500 + i, "reseed_file": str(testnet.seed_file),
                "control_port": 0, "sam_port": 0}), tunnel_settings=TunnelSettings(ip_restriction=0))
                for i, address in enumerate(addresses)]
            services = []
            try:
                for router in routers:
                    await router.start()
                services = [MailService({**CONFIG, "options": options, "connect_timeout": 60}, tmp / f"mail{i}",
                                        InProcessNetwork(router.client)) for i, router in enumerate(routers)]
                for service in services:
                    await service.start()
                print("mail between two pyi2p nodes on a private testnet (5 i2pd routers), 2-hop tunnels")
                await node_to_node(services[0], services[1], args)
            finally:
                for service in services:
                    await service.stop()
                for router in routers:
                    await router.stop()
    finally:
        testnet.down()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=200, help="1 KB messages to send")
    parser.add_argument("--large", type=int, default=20, help="1 MB messages to send")
    parser.add_argument("--latency", type=int, default=10, help="messages timed one by one")
    parser.add_argument("--mailbox", type=int, default=10_000, help="messages in the big mailbox")
    parser.add_argument("--testnet", action="store_true", help="over 2-hop tunnels of a private testnet instead "
                        "(root and i2pd needed; no big-mailbox figure)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        await (on_testnet if args.testnet else in_memory)(args, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())

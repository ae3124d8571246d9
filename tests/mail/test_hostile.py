"""Bad input at the doors: huge messages, command floods, malformed MIME, POP3 garbage, a kill -9 of the node.
Each gets a clear SMTP/POP3 code and nothing that was accepted is lost."""
from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import subprocess
import sys
import textwrap

import pytest

from apps.mail import MailService
from apps.network import InProcessNetwork
from core.client import ClientAPI
from tests.mail.conftest import host_port, message, pop_all, smtp_send, wait_until

BIG = 50 * 1024 * 1024


async def test_fifty_megabytes_are_refused_by_size_and_the_session_goes_on(nodes):
    a = await nodes("a", "alice")
    alice = a.address("alice")
    big = message(alice, alice, body="y" * 76 + "\r\n") + (b"z" * 76 + b"\r\n") * (BIG // 78)

    def announced_size():
        with smtplib.SMTP(*host_port(a.smtp_address), timeout=60) as client:
            client.login("alice", "secret")
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail(alice, [alice], big)            # smtplib sends MAIL FROM ... SIZE=
            assert refused.value.smtp_code == 552
            client.sendmail(alice, [alice], message(alice, alice, subject="small after big"))
    await asyncio.to_thread(announced_size)

    def unannounced():
        with smtplib.SMTP(*host_port(a.smtp_address), timeout=60) as client:
            client.login("alice", "secret")
            client.mail(alice)
            client.rcpt(alice)
            code, _ = client.data(big)
            assert code == 552
            assert client.noop()[0] == 250
    await asyncio.to_thread(unannounced)
    [kept] = await pop_all(a, "alice", "secret")
    assert b"small after big" in kept


async def test_command_floods_end_the_session_with_421(nodes):
    a = await nodes("a", "alice")
    reader, writer = await asyncio.open_connection(*host_port(a.smtp_address))
    await reader.readline()
    writer.write(b"EHLO x\r\n" * 50 + b"NOOP\r\n")
    await writer.drain()
    replies = []
    for _ in range(2000):
        line = await asyncio.wait_for(reader.readline(), 10)
        if not line:
            break
        replies.append(line)
    assert replies[-1].startswith(b"421 4.7.0 EHLO sent too many times")
    writer.close()
    # unknown commands: a bounded count, then a goodbye
    reader, writer = await asyncio.open_connection(*host_port(a.smtp_address))
    await reader.readline()
    writer.write(b"XYZZY\r\n" * 20)
    await writer.drain()
    lines = [await asyncio.wait_for(reader.readline(), 10) for _ in range(5)]
    assert lines[0].startswith(b"500") and any(line.startswith(b"502") for line in lines)
    writer.close()
    # the service still serves
    await smtp_send(a, "alice", "secret", a.address("alice"), [a.address("alice")],
                    message(a.address("alice"), a.address("alice")))


async def test_malformed_mime_and_binary_bodies_arrive_byte_for_byte(nodes):
    a = await nodes("a", "alice")
    b = await nodes("b", "bob")
    alice, bob = a.address("alice"), b.address("bob")
    body = (b"--b0undary\r\nContent-Type: text/plain; charset=\"unterminated\r\n\r\n"
            b"\xc3\x28 invalid utf-8 \xff\r\n--not-the-boundary--\r\n.\r\n..\r\n")
    data = (f"From: {alice}\r\nTo: {bob}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=b0undary\r\n\r\n").encode() + body

    def send():
        with smtplib.SMTP(*host_port(a.smtp_address), timeout=30) as client:
            client.login("alice", "secret")
            client.sendmail(alice, [bob], data)
    await asyncio.to_thread(send)
    await wait_until(lambda: b.mailboxes.list("bob"))
    [got] = await pop_all(b, "bob", "secret")
    assert got.endswith(b"\r\n\r\n" + body)


async def test_pop3_garbage_and_wrong_logins(nodes):
    a = await nodes("a", "alice")
    reader, writer = await asyncio.open_connection(*host_port(a.pop3_address))
    assert (await reader.readline()).startswith(b"+OK")
    for line in (b"\x00\xff\xfe\r\n", b"RETR 1\r\n", b"PASS x\r\n", b"USER alice\r\n", b"PASS wrong\r\n"):
        writer.write(line)
        await writer.drain()
        reply = await asyncio.wait_for(reader.readline(), 10)
        assert reply.startswith(b"+OK" if line.startswith(b"USER") else b"-ERR"), (line, reply)
    writer.write(b"A" * 5000 + b"\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"-ERR")
    assert await asyncio.wait_for(reader.read(100), 10) == b""          # hung up on
    writer.close()
    # one session per mailbox at a time
    first = await asyncio.open_connection(*host_port(a.pop3_address))
    await first[0].readline()
    first[1].write(b"USER alice\r\nPASS secret\r\n")
    assert (await first[0].readline()).startswith(b"+OK")
    assert (await first[0].readline()).startswith(b"+OK")
    second = await asyncio.open_connection(*host_port(a.pop3_address))
    await second[0].readline()
    second[1].write(b"USER alice\r\nPASS secret\r\n")
    await second[0].readline()
    assert (await second[0].readline()).startswith(b"-ERR [IN-USE]")
    first[1].close()
    second[1].close()


KILLED_NODE = textwrap.dedent("""
    import asyncio, smtplib, sys
    from pathlib import Path
    from apps.mail import MailService
    from apps.network import InProcessNetwork
    from core.client import ClientAPI

    async def main():
        service = MailService({"smtp_port": 0, "pop3_port": 0, "connect_timeout": 1}, Path(sys.argv[1]),
                              InProcessNetwork(ClientAPI()))
        await service.start()
        service.accounts.add("alice", "secret")
        alice, far = service.address("alice"), "bob@" + "b" * 52 + ".b32.i2p"
        def send(n):
            with smtplib.SMTP(*service.smtp_address.rsplit(":", 1)) as client:
                client.login("alice", "secret")
                for i in range(n):
                    data = f"From: {alice}\\r\\nSubject: {i}\\r\\n\\r\\nbody {i}\\r\\n".encode()
                    client.sendmail(alice, [alice, far], data)
        await asyncio.to_thread(send, 20)
        print("ACCEPTED", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
""")


async def test_kill_9_loses_no_accepted_message(tmp_path):
    datadir = tmp_path / "node"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_NODE, str(datadir), stdout=subprocess.PIPE,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line == b"ACCEPTED\n"
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    network = InProcessNetwork(ClientAPI())
    service = MailService({"smtp_port": 0, "pop3_port": 0}, datadir, network)
    await service.start()
    try:
        assert len(service.mailboxes.list("alice")) == 20          # the local copies
        assert len(service.queue.entries) == 20                    # the far ones, still waiting
        subjects = sorted(int(service.queue.message(e).split(b"Subject: ")[1].split(b"\r\n")[0])
                          for e in service.queue.entries)
        assert subjects == list(range(20))
    finally:
        await service.stop()
        await network.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs of its own, so the disk really fills up (root only: mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


async def test_a_full_disk_answers_451_and_keeps_what_it_accepted(small_disk, network):
    service = MailService({"smtp_port": 0, "pop3_port": 0}, small_disk, network)
    await service.start()
    try:
        service.accounts.add("alice", "secret", quota=1 << 30)
        alice = service.address("alice")
        accepted, refused = [], None
        for n in range(6):
            data = message(alice, alice, subject=f"big {n}", body=(f"{n}" * 76 + "\r\n") * 8000)
            try:
                await smtp_send(service, "alice", "secret", alice, [alice], data)
                accepted.append(n)
            except smtplib.SMTPDataError as exc:
                refused = exc
                break
        assert refused is not None and refused.smtp_code == 451, "the disk never filled"
        assert accepted and not list((small_disk / "mail" / "boxes" / "alice" / "tmp").iterdir())
        kept = await pop_all(service, "alice", "secret", delete=True)
        assert [int(m.split(b"Subject: big ")[1][:1]) for m in kept] == accepted
        assert all(m.endswith(b"\r\n\r\n" + (str(n).encode() * 76 + b"\r\n") * 8000) for n, m in zip(accepted, kept))
        await smtp_send(service, "alice", "secret", alice, [alice], message(alice, alice, subject="room again"))
        assert len(service.mailboxes.list("alice")) == 1
    finally:
        await service.stop()

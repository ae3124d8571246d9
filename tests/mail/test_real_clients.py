"""Debian's own mail programs, unmodified, against the service: swaks submits (AUTH PLAIN and LOGIN,
pipelining), fetchmail collects over POP3 into an MDA."""
from __future__ import annotations

import asyncio
import getpass
import shutil

import pytest

from tests.mail.conftest import host_port, wait_until

pytestmark = pytest.mark.skipif(not (shutil.which("swaks") and shutil.which("fetchmail")),
                                reason="swaks and fetchmail (Debian packages) are not installed")


async def run(*argv: str, timeout: float = 60) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        return -1, "timed out"
    return process.returncode, out.decode("utf-8", "replace")


async def swaks(service, user: str, password: str, to: str, mechanism: str, subject: str, *extra: str):
    host, port = host_port(service.smtp_address)
    return await run("swaks", "--server", host, "--port", str(port), "--auth", mechanism, "--auth-user", user,
                     "--auth-password", password, "--from", service.address(user), "--to", to,
                     "--header", f"Subject: {subject}", "--header", f"From: {service.address(user)}",
                     "--body", f"sent by swaks with {mechanism}", "--ehlo", "client.invalid", *extra)


async def test_swaks_submits_with_plain_and_login_and_pipelining(nodes):
    a = await nodes("a", "alice")
    b = await nodes("b", "bob")
    code, out = await swaks(a, "alice", "secret", b.address("bob"), "PLAIN", "one")
    assert code == 0, out
    code, out = await swaks(a, "alice", "secret", b.address("bob"), "LOGIN", "two", "--pipeline")
    assert code == 0, out
    assert "PIPELINING" in out and "8BITMIME" in out and "SIZE" in out
    code, out = await swaks(a, "alice", "wrong", b.address("bob"), "LOGIN", "three")
    assert code != 0 and "535" in out
    await wait_until(lambda: len(b.mailboxes.list("bob")) == 2)
    bodies = [b.mailboxes.read("bob", m.key) for m in b.mailboxes.list("bob")]
    assert all(b"sent by swaks" in body for body in bodies)
    assert not any(b"client.invalid" in body for body in bodies)        # the EHLO name stays home


async def test_fetchmail_collects_every_message_into_an_mda(nodes, tmp_path):
    b = await nodes("b", "bob")
    a = await nodes("a", "alice")
    for subject in ("first", "second", "third"):
        code, out = await swaks(a, "alice", "secret", b.address("bob"), "PLAIN", subject)
        assert code == 0, out
    await wait_until(lambda: len(b.mailboxes.list("bob")) == 3)
    host, port = host_port(b.pop3_address)
    out_file = tmp_path / "delivered.mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f'set no syslog\npoll {host} protocol POP3 port {port} auth password timeout 30\n'
                  f'  user "bob" password "secret" is "{getpass.getuser()}" here\n'
                  f'  sslproto "" no sslcertck fetchall nokeep\n'
                  f'  mda "/bin/sh -c \'cat >> {out_file}; echo ==END== >> {out_file}\'"\n')
    rc.chmod(0o600)
    code, out = await run("fetchmail", "--fetchmailrc", str(rc), "--idfile", str(tmp_path / "ids"),
                          "--pidfile", str(tmp_path / "pid"), "--nodetach", "--verbose")
    assert code == 0, out
    delivered = out_file.read_text()
    assert delivered.count("==END==") == 3
    for subject in ("first", "second", "third"):
        assert f"Subject: {subject}" in delivered
    assert b.mailboxes.list("bob") == []          # fetchall nokeep: deleted at QUIT
    code, out = await run("fetchmail", "--fetchmailrc", str(rc), "--idfile", str(tmp_path / "ids"),
                          "--pidfile", str(tmp_path / "pid"), "--nodetach")
    assert code == 1, out                          # 1: no mail

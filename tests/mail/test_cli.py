"""`pyi2p mail`: accounts made from the command line work in a running node; the queue as on disk."""
from __future__ import annotations

import io

from pyi2p.cli import build_parser
from tests.mail.conftest import message, pop_all, smtp_send, wait_until


def mail(datadir, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    args = build_parser().parse_args(["mail", "--datadir", str(datadir), *argv])
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, out=out, err=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


async def test_adduser_passwd_address_queue(nodes, tmp_path):
    a = await nodes("a")
    code, out, _ = mail(tmp_path / "a", "adduser", "Alice", "--password-stdin", stdin="first\n")
    assert code == 0 and out.strip() == a.address("alice")
    assert mail(tmp_path / "a", "adduser", "alice", "--password-stdin", stdin="x\n")[0] == 1
    assert mail(tmp_path / "a", "adduser", "bad name!", "--password-stdin", stdin="x\n")[0] == 1
    assert (tmp_path / "a" / "mail" / "accounts.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "a" / "mail" / "destination.keys").stat().st_mode & 0o777 == 0o600
    alice = a.address("alice")
    await smtp_send(a, "alice", "first", alice, [alice], message(alice, alice))    # no restart needed
    assert mail(tmp_path / "a", "passwd", "alice", "--password-stdin", stdin="second\n")[0] == 0
    assert len(await pop_all(a, "alice", "second")) == 1
    assert mail(tmp_path / "a", "passwd", "nobody", "--password-stdin", stdin="x\n")[0] == 1
    code, out, _ = mail(tmp_path / "a", "address")
    assert out.split() == [a.domain, alice]
    far = "bob@" + "b" * 52 + ".b32.i2p"
    await smtp_send(a, "alice", "second", alice, [far], message(alice, far))
    await wait_until(lambda: a.queue.stats["retries"] >= 1)
    code, out, _ = mail(tmp_path / "a", "queue")
    assert code == 0 and f"from {alice}  to {far}" in out and "1 tries" in out
    code, out, err = mail(tmp_path / "a", "queue", "--flush")
    assert code == 1 and "control.json" in err       # no I2PControl in this test: said plainly

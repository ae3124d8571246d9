"""Mail inside a real node (`pyi2p run`'s Node): it starts at once while the router has no tunnels yet,
serves a mail program, offers pyi2p.Mail.* over I2PControl, and `pyi2p mail` talks to it."""
from __future__ import annotations

import asyncio

from core.config import load_config
from core.control.client import ControlClient
from core.control.config import read_control_config
from pyi2p.node import APPS, Node
from tests.mail.conftest import message, pop_all, smtp_send
from tests.mail.test_cli import mail


async def test_mail_in_the_node_with_control_methods_and_the_cli(tmp_path):
    config = load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0})
    node = Node(config, sections={"mail": {"smtp_port": 0, "pop3_port": 0}},
                apps=tuple(spec for spec in APPS if spec.name == "mail"))
    await node.start()
    try:
        service = node.service("mail")
        [status] = node.services_status()
        assert status["state"] == "running" and status["i2p"] == "opening"      # no peers: no tunnels yet
        listening = dict(node.listening())
        assert listening["mail SMTP"] == service.smtp_address and listening["mail POP3"] == service.pop3_address
        code, out, _ = mail(tmp_path, "adduser", "alice", "--password-stdin", stdin="pw\n")
        assert code == 0 and out.strip() == service.address("alice")
        alice = service.address("alice")
        await smtp_send(service, "alice", "pw", alice, [alice], message(alice, alice, subject="to myself"))
        client = ControlClient.from_config(read_control_config(tmp_path))
        loop = asyncio.get_running_loop()
        [summary] = await loop.run_in_executor(None, client.call, "pyi2p.Mail.Inbox", {"user": "alice"})
        assert summary["subject"] == "to myself"
        far = "bob@" + "b" * 52 + ".b32.i2p"
        await smtp_send(service, "alice", "pw", alice, [far], message(alice, far))
        queued = await loop.run_in_executor(None, client.call, "pyi2p.Mail.Queue", {})
        assert [entry["recipients"] for entry in queued] == [[far]]
        code, out, err = await loop.run_in_executor(None, mail, tmp_path, "queue", "--flush")
        assert code == 0 and far in out, err
        assert len(await pop_all(service, "alice", "pw")) == 1
    finally:
        await node.stop()

"""The service face: config validation, a taken port named, stop and start again with the same address."""
from __future__ import annotations

import logging
import socket

import pytest

from apps.mail import MailService
from apps.service import ServiceError


@pytest.mark.parametrize("config, key", [({"smtp_port": 70000}, "smtp_port"), ({"server": "yes"}, "server"),
                                         ({"quota_mb": 0}, "quota_mb"), ({"domain": ["x.b32.i2p"]}, "domain"),
                                         ({"pop3_port": True}, "pop3_port")])
def test_bad_values_name_their_key(tmp_path, network, config, key):
    with pytest.raises(ServiceError, match=key):
        MailService(config, tmp_path, network)


def test_unknown_keys_are_warned_about(tmp_path, network, caplog):
    with caplog.at_level(logging.WARNING):
        MailService({"smpt_port": 25}, tmp_path, network)
    assert "smpt_port" in caplog.text


async def test_a_taken_port_is_named_and_the_service_says_failed(tmp_path, network):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = MailService({"smtp_port": 0, "pop3_port": port}, tmp_path, network)
        with pytest.raises(ServiceError, match=f"pop3_port: cannot listen on 127.0.0.1:{port}"):
            await service.start()
    assert service.status()["state"] == "failed" and str(port) in service.status()["error"]


async def test_stop_and_start_keep_the_address_and_the_mail(nodes, tmp_path, network):
    a = await nodes("a", "alice")
    domain = a.domain
    key = a.mailboxes.deliver("alice", b"Subject: kept\r\n\r\nbody\r\n")
    status = a.status()
    assert status["state"] == "running" and status["b32"] == domain and status["accounts"] == 1
    await a.stop()
    assert a.status() == {"state": "stopped"}
    again = MailService({"smtp_port": 0, "pop3_port": 0}, tmp_path / "a", network)
    await again.start()
    try:
        await again.ready(10)
        assert again.domain == domain and again.session.b32 == domain
        assert [m.key for m in again.mailboxes.list("alice")] == [key]
        assert again.mailboxes.read("alice", key) == b"Subject: kept\r\n\r\nbody\r\n"
    finally:
        await again.stop()

"""Mail services on one in-memory I2P (InProcessNetwork over a ClientAPI), and what real clients need."""
from __future__ import annotations

import asyncio
import poplib
import smtplib

import pytest

from apps.mail import MailService
from apps.network import InProcessNetwork
from core.client import ClientAPI


@pytest.fixture
async def nodes(network, tmp_path):
    """make(name, user=..., password=..., **config): a started MailService with one account."""
    started: list[MailService] = []

    async def make(name: str, user: str | None = None, password: str = "secret", **config) -> MailService:
        settings = {"smtp_port": 0, "pop3_port": 0, "connect_timeout": 5, **config}
        service = MailService(settings, tmp_path / name, network)
        await service.start()
        await service.ready(30)
        if user:
            service.accounts.add(user, password)
        started.append(service)
        return service

    yield make
    for service in started:
        await service.stop()


def host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def message(sender: str, to: str, subject: str = "hello", body: str = "Hi there.\r\n", extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}\r\n{body}").encode()


async def smtp_send(service: MailService, user: str, password: str, sender: str, recipients: list[str],
                    data: bytes, address: str | None = None) -> dict:
    def send():
        with smtplib.SMTP(*host_port(address or service.smtp_address), timeout=30) as client:
            client.login(user, password)
            return client.sendmail(sender, recipients, data)
    return await asyncio.to_thread(send)


async def pop_all(service: MailService, user: str, password: str, delete: bool = False,
                  address: str | None = None) -> list[bytes]:
    def fetch():
        client = poplib.POP3(*host_port(address or service.pop3_address), timeout=30)
        try:
            client.user(user)
            client.pass_(password)
            count, _ = client.stat()
            found = [b"\r\n".join(client.retr(n)[1]) + b"\r\n" for n in range(1, count + 1)]
            if delete:
                for n in range(1, count + 1):
                    client.dele(n)
            return found
        finally:
            client.quit()
    return await asyncio.to_thread(fetch)


async def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def client_tunnel(session, destination: str, port: int) -> tuple[asyncio.AbstractServer, str]:
    """What an I2PTunnel client tunnel does: a local TCP port whose connections are streams to `destination`."""

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def on_client(reader, writer):
        try:
            remote_reader, remote_writer = await session.connect(destination, port, timeout=10)
        except Exception:
            writer.close()
            return
        await asyncio.gather(pipe(reader, remote_writer), pipe(remote_reader, writer))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    return server, "127.0.0.1:%d" % server.sockets[0].getsockname()[1]

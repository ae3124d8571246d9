"""A small SMTP client (RFC 5321) over any stream pair: how one node hands mail to another over I2P.

smtplib wants a socket; an I2P stream is a reader/writer pair, so this speaks the few commands a
relay needs: EHLO, MAIL, RCPT, DATA, QUIT.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

MAX_REPLY_LINES = 100
MAX_REPLY_LINE = 2048


class SmtpError(Exception):
    """The conversation failed as a whole: `code` is the server's (or 421 for a broken connection)."""

    def __init__(self, code: int, text: str):
        super().__init__(f"{code} {text}")
        self.code, self.text = code, text

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


async def read_reply(reader, timeout: float) -> Reply:
    lines = []
    for _ in range(MAX_REPLY_LINES):
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\n"), timeout)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError) as exc:
            raise SmtpError(421, f"connection lost ({type(exc).__name__})") from None
        except asyncio.TimeoutError:
            raise SmtpError(421, "no reply in time") from None
        line = raw[:MAX_REPLY_LINE].decode("utf-8", "replace").rstrip("\r\n")
        if len(line) < 3 or not line[:3].isdigit():
            raise SmtpError(421, f"not an SMTP reply: {line[:60]!r}")
        lines.append(line[4:])
        if line[3:4] != "-":
            return Reply(int(line[:3]), " ".join(lines))
    raise SmtpError(421, "reply too long")


def message_lines(data: bytes) -> list[bytes]:
    """The lines of a message without their line ends (CRLF or bare LF)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def dot_stuff(lines: list[bytes]) -> bytes:
    """RFC 5321 section 4.5.2 (and RFC 1939 section 3): CRLF line ends, a leading "." doubled, then "." CRLF."""
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


async def send_mail(reader, writer, helo: str, sender: str, recipients: list[str], data: bytes,
                    timeout: float = 120.0) -> dict[str, Reply]:
    """Deliver one message; returns each recipient's outcome (the DATA reply for those the server took).

    Raises SmtpError when the conversation fails before any recipient has an outcome of its own."""

    async def command(line: str) -> Reply:
        writer.write(line.encode("utf-8") + b"\r\n")
        await writer.drain()
        return await read_reply(reader, timeout)

    try:
        greeting = await read_reply(reader, timeout)
        if not greeting.ok:
            raise SmtpError(greeting.code, greeting.text)
        hello = await command(f"EHLO {helo}")
        if not hello.ok:
            raise SmtpError(hello.code, hello.text)
        size = f" SIZE={len(data)}" if "SIZE" in hello.text.upper() else ""
        mail = await command(f"MAIL FROM:<{sender}>{size}")
        if not mail.ok:
            raise SmtpError(mail.code, mail.text)
        outcome: dict[str, Reply] = {}
        for recipient in recipients:
            outcome[recipient] = await command(f"RCPT TO:<{recipient}>")
        accepted = [r for r, reply in outcome.items() if reply.ok]
        if accepted:
            start = await command("DATA")
            if start.code != 354:
                raise SmtpError(start.code, start.text)
            writer.write(dot_stuff(message_lines(data)))
            await writer.drain()
            done = await read_reply(reader, timeout)
            for recipient in accepted:
                outcome[recipient] = done
        try:
            await command("QUIT")
        except SmtpError:
            pass
        return outcome
    except (ConnectionError, OSError) as exc:
        raise SmtpError(421, f"connection lost ({type(exc).__name__})") from None
    finally:
        writer.close()

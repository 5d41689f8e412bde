"""The mailer: `.eml` files in the outbox, or real SMTP (a minimal SMTP server on 127.0.0.1 here)."""

from __future__ import annotations

import asyncio
import email
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tradebot.security.mailer import MailError, OutboxMailer, SmtpMailer, make_mailer


async def test_outbox_files_are_whole_and_private(tmp_path: Path) -> None:
    mailer = make_mailer(None, tmp_path / "outbox")
    assert isinstance(mailer, OutboxMailer)
    await asyncio.gather(*(mailer.send(f"u{i}@example.com", "Hello", f"body {i}") for i in range(5)))
    files = sorted((tmp_path / "outbox").iterdir())
    assert len(files) == 5 and all(f.suffix == ".eml" for f in files)  # no temporary file left behind
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        msg = email.message_from_bytes(f.read_bytes())
        assert msg["Subject"] == "Hello" and msg["To"].startswith("u")


class SmtpSink:
    """Just enough of RFC 5321 for smtplib: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.auth_lines: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ready\r\n")
        while line := await reader.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                writer.write(b"250-sink\r\n250 AUTH PLAIN\r\n")
            elif verb == "AUTH":
                self.auth_lines.append(command)
                writer.write(b"235 ok\r\n")
            elif verb == "DATA":
                writer.write(b"354 go on\r\n")
                await writer.drain()
                data = b""
                while (chunk := await reader.readline()) != b".\r\n":
                    data += chunk
                self.messages.append(data)
                writer.write(b"250 queued\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


@pytest.fixture
async def smtp_sink() -> AsyncIterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield sink, port


async def test_smtp_delivery(smtp_sink: tuple[SmtpSink, int], tmp_path: Path) -> None:
    sink, port = smtp_sink
    mailer = make_mailer(f"smtp://mailuser:p%40ss@127.0.0.1:{port}", tmp_path)
    assert isinstance(mailer, SmtpMailer)
    await mailer.send("alice@example.com", "Reset", "the link")
    [raw] = sink.messages
    msg = email.message_from_bytes(raw)
    assert msg["To"] == "alice@example.com" and msg["Subject"] == "Reset"
    assert sink.auth_lines  # logged in with the URL's credentials
    assert not await asyncio.to_thread(os.listdir, tmp_path)  # SMTP set: nothing in the outbox


async def test_smtp_failure_does_not_leak_the_url(tmp_path: Path) -> None:
    async with asyncio.timeout(30):
        with pytest.raises(MailError) as e:
            await SmtpMailer("smtp://user:secret-pass@127.0.0.1:1").send("a@example.com", "s", "b")
    assert "secret-pass" not in str(e.value)

"""Outgoing mail: SMTP when TRADEBOT_SMTP_URL is set, else `.eml` files in the outbox folder.

Both are blocking I/O and run in a thread. Messages are never logged (a reset link is a credential).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

SENDER = "tradebot <no-reply@tradebot.local>"
SMTP_TIMEOUT_S = 15.0


class MailError(Exception):
    """The message could not be handed over."""


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None: ...


def build_message(to: str, subject: str, body: str, sender: str = SENDER) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    # Plain 7bit when it can be (our mails are ASCII with short lines): the reset link then stands in
    # the file exactly as sent, where quoted-printable would split it and write `=` as `=3D`.
    plain = body.isascii() and all(len(line) <= 998 for line in body.splitlines())
    msg.set_content(body, cte="7bit" if plain else "quoted-printable")
    return msg


@dataclass(frozen=True, slots=True)
class OutboxMailer:
    """Writes each message as `<time>-<random>.eml`, atomically (a reader never sees half a file)."""

    folder: Path

    async def send(self, to: str, subject: str, body: str) -> None:
        data = bytes(build_message(to, subject, body))
        await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{secrets.token_hex(4)}"
        tmp = self.folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self.folder / f"{name}.eml")


@dataclass(frozen=True, slots=True)
class SmtpMailer:
    """`smtp://user:pass@host:port` (STARTTLS when offered) or `smtps://...` (TLS from the start)."""

    url: str

    async def send(self, to: str, subject: str, body: str) -> None:
        msg = build_message(to, subject, body)
        try:
            await asyncio.to_thread(self._send, msg)
        except (OSError, smtplib.SMTPException) as e:
            # The URL carries a password: name the failure, never the URL.
            raise MailError(f"SMTP delivery failed: {type(e).__name__}") from e

    def _send(self, msg: EmailMessage) -> None:
        parts = urlsplit(self.url)
        host = parts.hostname or "127.0.0.1"
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if parts.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(host, parts.port or 465, timeout=SMTP_TIMEOUT_S, context=context)
        else:
            smtp = smtplib.SMTP(host, parts.port or 25, timeout=SMTP_TIMEOUT_S)
        with smtp:
            if parts.scheme != "smtps":
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(msg)


def make_mailer(smtp_url: str | None, outbox_dir: Path) -> Mailer:
    if smtp_url:
        return SmtpMailer(smtp_url)
    return OutboxMailer(outbox_dir)

"""Telling the family: e-mail through real SMTP, and SMS through a named extension point."""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from hotline.config import Config
from hotline.privacy import mask_phone, mask_text

log = logging.getLogger(__name__)


class SmsGateway(Protocol):
    """Extension point: send one text message. Plug a real provider in here."""

    def send(self, phone: str, text: str) -> None: ...


class LoggingSmsGateway:
    """STAND-IN, NOT A REAL SMS GATEWAY: it only logs that a message would be sent.

    The number is masked and the text too; replace this with a provider's client.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, phone: str, text: str) -> None:
        self.sent.append((mask_phone(phone), mask_text(text)))
        log.info("sms stand-in (not sent) to %s: %s", mask_phone(phone), mask_text(text))


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str
    subtype: str


class Mailer:
    """Sends e-mail through the configured SMTP server (plain SMTP, STARTTLS if offered)."""

    def __init__(self, cfg: Config, timeout: float = 10.0) -> None:
        self.host = cfg.smtp_host
        self.port = cfg.smtp_port
        self.sender = cfg.smtp_from
        self.timeout = timeout

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    def send(
        self, to: str, subject: str, body: str, attachments: tuple[Attachment, ...] = ()
    ) -> bool:
        """Send one message; False (logged) if SMTP is off or fails. Never raises."""
        if not self.enabled:
            return False
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(body)
        for a in attachments:
            msg.add_attachment(
                a.content, maintype=a.maintype, subtype=a.subtype, filename=a.filename
            )
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls()
                    smtp.ehlo()
                smtp.send_message(msg)
            return True
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("e-mail to family failed: %s", exc)
            return False

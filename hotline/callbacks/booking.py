"""A family member's booking form, validated at the edge into a `BookingRequest` (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from hotline.callbacks.slots import DAY, is_hour_start
from hotline.errors import HotlineError

TOPICS = ("refund_order", "payment_password", "phone_settings", "anti_fraud", "other")
NOTE_MAX = 200
NAME_MAX = 40
MAX_WINDOWS = 5
_IDEM = re.compile(r"[A-Za-z0-9_\-]{16,64}")
_CARD = re.compile(r"[0-9]{10}")
# One recipient: no commas, semicolons, quotes, brackets or spaces in the local part.
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+")
_PHONE_JUNK = re.compile(r"[\s\-()]")


class BookingError(HotlineError):
    """A booking input problem: `key` names the catalogue message, `field` the form field."""

    status = 422
    code = "invalid"

    def __init__(self, key: str, field: str = "", *, status: int | None = None, **values: object):
        super().__init__(key, code=key.rsplit(".", 1)[-1])
        self.key = key
        self.field = field
        self.values = values
        if status is not None:
            self.status = status


@dataclass(frozen=True)
class BookingRequest:
    idem_key: str
    card_code: str
    name: str
    phone: str
    dialect: str
    topic: str
    note: str
    windows: tuple[float, ...]
    contact: str
    lang: str


def normalize_phone(raw: str) -> str | None:
    """Digits of a phone number (a leading + kept), or None if it is not one."""
    text = _PHONE_JUNK.sub("", raw or "")
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not digits.isascii() or not digits.isdigit() or not 5 <= len(digits) <= 15:
        return None
    return ("+" if plus else "") + digits


def parse_windows(raw: Sequence[str], now: float, tz: ZoneInfo, days: int = 14) -> list[float]:
    """Chosen hour starts, each a whole local hour from now to `days` ahead."""
    if not raw:
        raise BookingError("family.err_no_window", "slot")
    if len(raw) > MAX_WINDOWS:
        raise BookingError("family.err_too_many_windows", "slot", n=MAX_WINDOWS)
    out = []
    for item in raw:
        try:
            at = float(item)
        except (TypeError, ValueError):
            raise BookingError("family.err_bad_window", "slot") from None
        if at != at:  # NaN
            raise BookingError("family.err_bad_window", "slot")
        if at < now:
            raise BookingError("family.err_window_past", "slot")
        if at > now + days * DAY:
            raise BookingError("family.err_window_far", "slot", days=days)
        if not is_hour_start(at, tz):
            raise BookingError("family.err_bad_window", "slot")
        out.append(at)
    return sorted(set(out))


def parse_form(
    form: Mapping[str, str],
    windows: Sequence[str],
    *,
    now: float,
    tz: ZoneInfo,
    dialects: Sequence[str],
    lang: str,
) -> BookingRequest:
    """Validate the booking form; the first problem raises `BookingError`."""
    idem = (form.get("idem") or "").strip()
    if not _IDEM.fullmatch(idem):
        raise BookingError("family.err_form_expired", "idem")
    card = (form.get("card_code") or "").strip().replace(" ", "").replace("-", "")
    name = (form.get("name") or "").strip()
    phone_raw = (form.get("phone") or "").strip()
    if card:
        if not _CARD.fullmatch(card):
            raise BookingError("family.err_card", "card_code")
    elif not name:
        raise BookingError("family.err_name", "name")
    if len(name) > NAME_MAX:
        raise BookingError("family.err_name_long", "name", n=NAME_MAX)
    phone = ""
    if phone_raw:
        phone = normalize_phone(phone_raw) or ""
        if not phone:
            raise BookingError("family.err_phone", "phone")
    elif not card:
        raise BookingError("family.err_phone", "phone")
    dialect = form.get("dialect") or ""
    if dialect not in dialects:
        raise BookingError("family.err_dialect", "dialect")
    topic = form.get("topic") or ""
    if topic not in TOPICS:
        raise BookingError("family.err_topic", "topic")
    note = (form.get("note") or "").strip()
    if len(note) > NOTE_MAX:
        raise BookingError("family.err_note_long", "note", n=NOTE_MAX)
    chosen = parse_windows(windows, now, tz)
    contact = parse_contact(form.get("contact") or "")
    return BookingRequest(
        idem_key=idem,
        card_code=card,
        name=name,
        phone=phone,
        dialect=dialect,
        topic=topic,
        note=note,
        windows=tuple(chosen),
        contact=contact,
        lang=lang,
    )


def parse_contact(raw: str) -> str:
    """The family contact: an e-mail address or a phone number."""
    text = raw.strip()
    if "@" in text:
        if len(text) > 254 or not _EMAIL.fullmatch(text):
            raise BookingError("family.err_contact", "contact")
        return text
    phone = normalize_phone(text)
    if not phone:
        raise BookingError("family.err_contact", "contact")
    return phone

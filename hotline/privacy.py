"""Masking of phone, ID and bank-card numbers in text, and a logging filter that applies it.

Any run of 11 or more digits (Arabic or spoken Chinese numerals, optionally split by spaces
or dashes, an ID number's final X included) is replaced by stars keeping the last 4 digits:
that covers 11-digit phone numbers, 18-character ID numbers and 16-19 digit card numbers.
"""

from __future__ import annotations

import logging
import re

_CN_DIGITS = "零〇一幺二两三四五六七八九"
_DIGIT = rf"[0-9０-９{_CN_DIGITS}]"
_SEP = r"[ \-‐－–—]"
# A digit, then digits each optionally preceded by one separator; an ID may end in X.
_RUN = re.compile(rf"{_DIGIT}(?:{_SEP}?{_DIGIT})+(?:{_SEP}?[Xx])?")
MIN_DIGITS = 11


def _mask_match(match: re.Match[str]) -> str:
    raw = match.group(0)
    chars = [c for c in raw if not re.fullmatch(_SEP, c)]
    if len(chars) < MIN_DIGITS:
        return raw
    return "*" * (len(chars) - 4) + "".join(chars[-4:])


def mask_text(text: str) -> str:
    """The text with every long number masked to its last 4 digits."""
    if not text:
        return text
    return _RUN.sub(_mask_match, text)


def mask_phone(phone: str) -> str:
    """A phone number for display: all but the last 4 digits hidden."""
    digits = [c for c in phone if c.isdigit()]
    if not digits:
        return ""
    keep = min(4, len(digits))
    return "*" * (len(digits) - keep) + "".join(digits[-keep:])


class MaskingFilter(logging.Filter):
    """Masks long numbers in every log record's message before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, ()
        # Tracebacks carry input too (e.g. ValueError(f"bad number {phone}")): format and mask.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True

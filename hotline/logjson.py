"""JSON-lines log records (when `HOTLINE_LOG_JSON` is on), with the call id and masked text.

Wire it with `handler.setFormatter(JsonFormatter())`; the message is masked here as well as
by `MaskingFilter`, so a handler that lacks the filter still never writes a phone number.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from hotline.privacy import mask_text

# Log lines start with "call <id>: ..." by convention (STYLE.md); lift the id into a field.
_CALL_ID = re.compile(r"^call ([\w-]{1,64})\b")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, call_id?, exc?."""

    def format(self, record: logging.LogRecord) -> str:
        message = mask_text(record.getMessage())
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": message,
        }
        call_id = getattr(record, "call_id", None)
        if call_id is None:
            match = _CALL_ID.match(message)
            call_id = match.group(1) if match else None
        if call_id is not None:
            out["call_id"] = str(call_id)
        if record.exc_info:
            out["exc"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)

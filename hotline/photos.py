"""Registered photos for the identity check: what an image must be, where it is kept, and
how long. Files live under `<data_dir>/photos/`, named by a random id (never by the elder);
who may read them is decided by the web layer, and every read and write is audited."""

from __future__ import annotations

import logging
from pathlib import Path

from hotline.db import Database
from hotline.db import photos as photos_db
from hotline.errors import BadMessage
from hotline.tokens import new_secret

log = logging.getLogger(__name__)

MAX_BYTES = 200 * 1024  # a 640x480 JPEG still is 30-90 KB
KINDS = {b"\xff\xd8\xff": ("image/jpeg", "jpg"), b"\x89PNG\r\n\x1a\n": ("image/png", "png")}


def sniff(data: bytes) -> tuple[str, str]:
    """The image's MIME type and file suffix; BadMessage unless a JPEG or PNG of fair size."""
    if not data:
        raise BadMessage("no image", code="bad_image")
    if len(data) > MAX_BYTES:
        raise BadMessage("the image is over 200 KB", code="too_large")
    for magic, kind in KINDS.items():
        if data.startswith(magic):
            return kind
    raise BadMessage("send a JPEG or PNG image", code="bad_image")


def store(
    db: Database, folder: Path, elder_id: int, data: bytes, added_by: str, consent: bool
) -> int:
    """Keep a new registered photo of the elder; returns its row id."""
    if not consent:
        raise BadMessage("the elder's consent is required", code="consent_required")
    mime, suffix = sniff(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{new_secret(12)}.{suffix}"
    path.write_bytes(data)
    return photos_db.add(db, elder_id, path.name, mime, added_by, consent)


def read(db: Database, folder: Path, elder_id: int) -> tuple[bytes, str] | None:
    """The elder's newest registered photo (bytes, MIME type), or None."""
    row = photos_db.latest(db, elder_id)
    if row is None:
        return None
    path = folder / Path(row["path"]).name
    return (path.read_bytes(), row["mime"]) if path.exists() else None


def purge(db: Database, folder: Path, days: float) -> int:
    """Delete photos older than the retention period (file, then row); returns how many."""
    old = photos_db.older_than(db, days)
    for row in old:
        (folder / Path(row["path"]).name).unlink(missing_ok=True)
        photos_db.delete(db, row["id"])
    return len(old)

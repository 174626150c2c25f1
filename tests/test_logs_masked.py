"""No phone, ID or card number reaches a log file unmasked, at DEBUG, on any path that logs.

Root logging goes to a file at DEBUG (as `hotline serve` would with HOTLINE_LOG_LEVEL=DEBUG)
before the server starts, so start() installs its masking filter on that handler. Then a
scenario pushes numbers through elder creation, family booking (phone and SMS-style
contact), the websocket (every frame is logged by websockets at DEBUG), caption text,
and error paths (bad input, handler failures, 500s). The file is scanned afterwards.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.db import agents as agents_db
from hotline.db import callbacks as store
from hotline.db import elders as elders_db
from hotline.db import now
from hotline.web import create_app
from tests.support import Client, ServerThread
from tests.support import test_config as config_for

PHONE = "13812345678"
PHONE_SPACED = "138 1234 5678"
ID_NUMBER = "11010519491231002X"
CARD = "6222021234567890123"
NUMBERS = [PHONE, ID_NUMBER, CARD]

# What must never appear: 11 digits in a row (phones), 17 digits + digit/X (IDs), 16-19 digits.
LEAKS = [
    re.compile(r"(?<!\d)1\d{10}(?!\d)"),
    re.compile(r"(?<![\dXx])\d{17}[\dXx](?![\dXx])"),
    re.compile(r"(?<!\d)\d{16,19}(?!\d)"),
]


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[tuple[ServerThread, Path]]:
    path = tmp_path / "hotline.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    srv = ServerThread(config_for(tmp_path / "data"))
    try:
        yield srv, path
    finally:
        srv.stop()
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def leaks(text: str) -> list[str]:
    found = []
    for pattern in LEAKS:
        found += pattern.findall(text)
    return found


def test_no_unmasked_numbers_in_debug_logs(logged: tuple[ServerThread, Path]) -> None:
    srv, path = logged
    db = srv.db
    agent = agents_db.add(db, "mei", "pw-mei-123456", ["cmn"])
    for day in range(1, 8):
        store.add_shift(db, agent.id, day, 0, 24, now())
    app = create_app(srv.services)

    # Elder creation from the console (and its error paths).
    client = app.test_client()
    page = client.get("/agent").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    client.post("/agent/login", data={"username": "mei", "password": "pw-mei-123456", "csrf": csrf})
    token = re.search(r'"csrf":\s*"([^"]+)"', client.get("/agent").get_data(as_text=True))[1]
    headers = {"X-CSRF-Token": token}
    r = client.post("/api/elders", json={"name": "王奶奶", "phone": PHONE}, headers=headers)
    assert r.status_code == 201
    for bad in (
        {"name": ID_NUMBER, "phone": CARD},
        {"name": "x", "phone": PHONE, "dialect": {PHONE: CARD}},  # a 500 path (see fuzz)
        {"name": "x", "lang": PHONE},
    ):
        client.post("/api/elders", json=bad, headers=headers)
    client.post(f"/agent/login?next={PHONE}", data={"username": PHONE, "password": CARD})

    # Family booking with phones (elder and contact), then its error paths.
    family = app.test_client()
    page = family.get("/family?lang=en").get_data(as_text=True)
    fcsrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    slot = re.findall(r'<option value="(\d+)"', page)[1]
    form = {
        "csrf": fcsrf,
        "idem": "log-mask-booking-0001",
        "name": "王奶奶",
        "phone": PHONE_SPACED,
        "dialect": "cmn",
        "topic": "other",
        "slot": slot,
        "contact": "13987654321",
        "note": f"身份证 {ID_NUMBER} 卡号 {CARD}",
    }
    assert family.post("/family/book?lang=en", data=form).status_code == 303
    for field, value in (("phone", CARD + "99"), ("slot", PHONE), ("contact", ID_NUMBER)):
        family.post(
            "/family/book?lang=en", data={**form, "idem": "log-mask-" + PHONE, field: value}
        )
    family.get(f"/family/b/{PHONE}{CARD}")
    family.get(f"/c/{PHONE}")

    # The websocket: numbers in frames (logged by websockets at DEBUG) and in bad input.
    link = elders_db.new_link(db, elders_db.add(db, "李", phone=PHONE).id).token

    async def sockets() -> None:
        caller = await Client.open(f"{srv.ws}?role=caller&link={link}&x={PHONE}")
        await caller.expect("hello")
        await caller.send({"type": "call", "note": f"我的电话 {PHONE} 卡 {CARD}"})
        await caller.expect("queued")
        for raw in (
            f'{{"type": "{PHONE}"}}',
            f'{{"type": "rate", "rating": "{CARD}"}}',
            f"not json {ID_NUMBER}",
            f'{{"type": "signal", "data": {{"candidate": {{"candidate": "{PHONE}"}}}}}}',
            f'{{"type": "hangup", "reason": "{PHONE}"}}',
        ):
            await caller.send(raw)
        await caller.send({"type": "ping"})
        await caller.expect("pong")
        await caller.close()
        unknown = await Client.open(f"{srv.ws}?role=caller&link={PHONE}")
        await unknown.expect("error")
        await unknown.close()

    srv.call(sockets())

    # Caption text logged by any module is masked too (storage: tests/test_transcripts.py).
    logging.getLogger("hotline.asr").info("call x: partial %s", f"号码 {PHONE} 身份证 {ID_NUMBER}")
    logging.getLogger("hotline.live.captions").debug("call x: final %r", f"卡号 {CARD}")

    for handler in logging.getLogger().handlers:
        handler.flush()
    text = path.read_text(encoding="utf-8")
    assert len(text) > 1000, "the scenario logged almost nothing: is DEBUG on?"
    assert "5678" in text  # the numbers went through, masked
    found = leaks(text)
    lines = [line for line in text.splitlines() if leaks(line)]
    assert not found, f"{len(found)} unmasked numbers, e.g.: {lines[:3]}"


def test_tracebacks_are_masked_too(logged: tuple[ServerThread, Path]) -> None:
    """Regression (found here, fixed in ad37a40): MaskingFilter masked only the message."""
    _, path = logged
    try:
        int(PHONE + "x")
    except ValueError:
        logging.getLogger("hotline.live.server").exception("connection 1: handler failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = path.read_text(encoding="utf-8")
    assert "handler failed" in text
    assert not leaks(text), [line for line in text.splitlines() if leaks(line)]

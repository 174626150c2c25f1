"""Registered photos for the identity check: added by the family (manage page) or by the
agent of a call in progress with consent, shown only to that agent or a supervisor, every
access audited, deleted after the retention period."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from hotline import photos
from hotline.db import audit
from hotline.db import elders as elders_db
from hotline.db import photos as photos_db
from hotline.web import create_app
from tests.support import ServerThread, family_booking
from tests.test_call_ws import add_agent, connect_call, open_agent, open_caller, run

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def signed_in(server: ServerThread, username: str) -> tuple[FlaskClient, str]:
    client = create_app(server.services).test_client()
    page = client.get("/agent").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    client.post(
        "/agent/login", data={"username": username, "password": "pw-" + username, "csrf": token}
    )
    csrf = re.search(r'"csrf":\s*"([^"]+)"', client.get("/agent").get_data(as_text=True))
    return client, csrf.group(1) if csrf else ""


def actions(server: ServerThread, action: str) -> list[dict[str, Any]]:
    return audit.entries(server.db, action=action)


def test_family_adds_agent_in_the_call_sees_others_do_not(server: ServerThread) -> None:
    from hotline.db import agents as agents_db

    agent_id = add_agent(server)
    agent_name = agents_db.get(server.db, agent_id).username
    nosy_name = agents_db.get(server.db, add_agent(server)).username
    elder = elders_db.add(server.db, "王奶奶", dialect="cmn")
    link = elders_db.new_link(server.db, elder.id).token
    booking_id, token = family_booking(server, elder.id)
    family = create_app(server.services).test_client()
    page = family.get(f"/family/b/{token}").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    def upload(data: bytes, consent: bool) -> Any:
        from io import BytesIO

        form: dict[str, Any] = {"csrf": csrf, "photo": (BytesIO(data), "p.png")}
        if consent:
            form["consent"] = "1"
        return family.post(f"/family/b/{token}/photo", data=form)

    assert upload(PNG, consent=False).status_code == 400  # consent_required
    assert upload(b"GIF89a....", consent=True).status_code == 400  # bad_image
    assert upload(PNG + b"\x00" * photos.MAX_BYTES, consent=True).status_code in (400, 413)
    assert photos_db.latest(server.db, elder.id) is None
    assert upload(PNG, consent=True).status_code == 303
    assert photos_db.latest(server.db, elder.id)["added_by"] == f"family:{booking_id}"

    agent, agent_csrf = signed_in(server, agent_name)
    nosy, _ = signed_in(server, nosy_name)
    assert agent.get(f"/api/elders/{elder.id}/photo").status_code == 403  # not in a call yet

    async def scenario() -> None:
        console = await open_agent(server, agent_id)
        caller = await open_caller(server, link)
        await connect_call(caller, console)
        r = await asyncio.to_thread(agent.get, f"/api/elders/{elder.id}/photo")
        assert r.status_code == 200 and r.data == PNG
        assert r.headers["Content-Type"] == "image/png" and r.headers["Cache-Control"] == "no-store"
        r = await asyncio.to_thread(nosy.get, f"/api/elders/{elder.id}/photo")
        assert r.status_code == 403
        # The agent registers a still with consent (and not without).
        headers = {"X-CSRF-Token": agent_csrf, "Content-Type": "image/jpeg"}
        url = f"/api/elders/{elder.id}/photo"
        r = await asyncio.to_thread(agent.post, url, data=JPEG, headers=headers)
        assert r.status_code == 400 and r.get_json()["error"] == "consent_required"
        r = await asyncio.to_thread(agent.post, url + "?consent=1", data=JPEG, headers=headers)
        assert r.status_code == 201
        r = await asyncio.to_thread(agent.get, url)
        assert r.data == JPEG

    run(scenario())
    assert len(actions(server, "photo_read")) == 2
    assert len(actions(server, "photo_denied")) == 2
    assert len(actions(server, "photo_add")) == 2


def test_retention_deletes_file_and_row(server: ServerThread, tmp_path: Path) -> None:
    elder = elders_db.add(server.db, "李爷爷")
    folder = tmp_path / "photos"
    photos.store(server.db, folder, elder.id, PNG, "family:1", consent=True)
    assert len(list(folder.iterdir())) == 1
    assert photos.purge(server.db, folder, days=365) == 0
    assert photos.purge(server.db, folder, days=0) == 1
    assert list(folder.iterdir()) == [] and photos_db.latest(server.db, elder.id) is None

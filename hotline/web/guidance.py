"""Guidance scripts over HTTP: the library for the agent console, pictures, the report."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request, send_file

from hotline.db import guidance as guidance_db
from hotline.db import reports as reports_db
from hotline.errors import NotFound
from hotline.guidance.report import report
from hotline.web.security import login_required, services

bp = Blueprint("guidance", __name__)


@bp.get("/api/guidance/scripts")
@login_required()
def scripts() -> Any:
    """Every loaded script with its steps, in the asked language."""
    lang = request.args.get("lang", g.agent.lang)
    s = services()
    library = s.guidance.to_json(lang if lang in ("zh_CN", "en") else "zh_CN")
    off = reports_db.disabled_scripts(s.db)
    library["scripts"] = [x for x in library["scripts"] if x["id"] not in off]
    return library


@bp.get("/guidance/<path:name>")
def picture(name: str) -> Any:
    """A picture that a loaded script references (nothing else is ever served)."""
    path = services().guidance.picture_path(name)
    if path is None:
        raise NotFound("no such picture")
    return send_file(path, max_age=3600)


@bp.get("/api/guidance/report")
@login_required()
def step_report() -> Any:
    """Per script, the steps callers most often could not find (没找到)."""
    s = services()
    return report(guidance_db.answers(s.db), s.guidance)

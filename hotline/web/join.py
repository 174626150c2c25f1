"""The family member's page for joining a call from the link the agent sent."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, render_template

from hotline.i18n import subset
from hotline.web.security import services

bp = Blueprint("join", __name__)


@bp.get("/j/<token>")
def join_page(token: str) -> Any:
    """One big button; the link itself is checked (once) when the page connects."""
    s = services()
    g.lang = s.cfg.default_lang
    boot = {
        "token": token[:64],
        "lang": g.lang,
        "ws_url": s.cfg.public_ws_url,
        "ws_port": s.ws_port or s.cfg.ws_port,
        "strings": subset(g.lang, ("join.",)),
    }
    return render_template("join.html", boot=boot)

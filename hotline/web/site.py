"""Pages for everyone: the home page, health, spoken prompts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, send_file

from hotline.errors import HotlineError, NotFound
from hotline.web.security import services

bp = Blueprint("site", __name__)


@bp.get("/")
def home() -> Any:
    return render_template("home.html")


@bp.get("/healthz")
def healthz() -> Any:
    return {"ok": True}


@bp.get("/tts/<token>.wav")
def tts(token: str) -> Any:
    """A spoken prompt minted by the server (signed text + voice), rendered once, cached."""
    s = services()
    try:
        text, voice = s.prompts.decode(token)
    except HotlineError:
        raise NotFound("unknown prompt") from None
    path = s.speech.render_sync(text, voice)
    response = send_file(path, mimetype="audio/wav", max_age=86400)
    return response

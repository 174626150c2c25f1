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
    return _speak(text, voice)


@bp.get("/tts/place/<lang>/<dialect>/<int:ahead>-<int:minutes>.wav")
def tts_place(lang: str, dialect: str, ahead: int, minutes: int) -> Any:
    """The caller's place in line, spoken (see Prompts.place_url)."""
    try:
        text, voice = services().prompts.place_text(lang, dialect, ahead, minutes)
    except ValueError:
        raise NotFound("unknown prompt") from None
    return _speak(text, voice)


def _speak(text: str, voice: str) -> Any:
    path = services().speech.render_sync(text, voice)
    return send_file(path, mimetype="audio/wav", max_age=86400)

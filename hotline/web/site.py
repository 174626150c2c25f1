"""Pages for everyone: the home page, health, spoken prompts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request, send_file

from hotline.errors import HotlineError, NotFound, TooMany
from hotline.limits import WindowCounter
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


@bp.get("/tts/place/<lang>/<dialect>/<ahead>-<minutes>.wav")
def tts_place(lang: str, dialect: str, ahead: str, minutes: str) -> Any:
    """The caller's place in line, spoken (see Prompts.place_url); only the fixed set."""
    try:
        text, voice = services().prompts.place_text(lang, dialect, ahead, minutes)
    except ValueError:
        raise NotFound("unknown prompt") from None
    return _speak(text, voice)


def _speak(text: str, voice: str) -> Any:
    s = services()
    renders = current_app.extensions.get("tts_renders")
    if renders is None:
        renders = WindowCounter(s.cfg.tts_renders_per_address_minute, 60.0)
        current_app.extensions["tts_renders"] = renders
    if not s.speech.cached(text, voice) and not renders.allow(request.remote_addr or "?"):
        # Rendering costs CPU and one of the few HTTP threads: a client asking for many
        # prompts nobody has heard yet waits, everyone else is served from the cache.
        raise TooMany("too many new prompts; please wait a minute")
    path = s.speech.render_sync(text, voice)
    return send_file(path, mimetype="audio/wav", max_age=86400)

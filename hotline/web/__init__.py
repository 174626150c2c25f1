"""The HTTP side: Flask app factory, one blueprint per audience."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from hotline.config import ROOT
from hotline.errors import HotlineError
from hotline.i18n import LANGS, t
from hotline.services import Services
from hotline.web import security

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024


def create_app(services: Services) -> Flask:
    """Build the Flask app around the process's shared services."""
    app = Flask(
        __name__,
        static_folder=str(ROOT / "static"),
        static_url_path="/static",
        template_folder=str(ROOT / "static" / "pages"),
    )
    app.config.update(SERVICES=services, MAX_CONTENT_LENGTH=MAX_BODY, JSON_AS_ASCII=False)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    from hotline.web import agent, caller, calls, site

    app.register_blueprint(site.bp)
    app.register_blueprint(calls.bp)
    app.register_blueprint(caller.bp)
    app.register_blueprint(agent.bp)
    for name in (
        "hotline.web.family",
        "hotline.web.admin",
        "hotline.web.guidance",
        "hotline.web.join",
        "hotline.web.photos",
    ):
        _register_optional(app, name)

    @app.before_request
    def _before() -> None:
        g.lang = _pick_lang()
        security.load_session()
        security.check_csrf()

    app.after_request(security.add_headers)

    @app.context_processor
    def _inject() -> dict[str, Any]:
        lang = g.get("lang", services.cfg.default_lang)
        return {"t": lambda key, **kw: t(lang, key, **kw), "lang": lang, "agent": g.get("agent")}

    @app.errorhandler(HotlineError)
    def _hotline_error(exc: HotlineError) -> Any:
        return _error_response(exc.status, exc.code, exc.detail)

    @app.errorhandler(RecursionError)
    def _too_deep(exc: RecursionError) -> Any:
        # json parsing of absurdly nested input ends here (get_json(silent=True) lets it out).
        return _error_response(400, "bad_json", "the request body is nested too deeply")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        code = (exc.name or "error").lower().replace(" ", "_")
        return _error_response(exc.code or 500, code, exc.description or "")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s", request.path)
        return _error_response(500, "internal", "something went wrong; nothing was changed")

    return app


def _register_optional(app: Flask, name: str) -> None:
    import importlib

    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not name.startswith(exc.name):
            raise
        return
    app.register_blueprint(module.bp)


def _pick_lang() -> str:
    asked = request.args.get("lang") or request.cookies.get("hl_lang")
    if asked in LANGS:
        return asked
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"])
    return "en" if best == "en" else "zh_CN"


def _wants_json() -> bool:
    return request.path.startswith("/api/") or (
        request.accept_mimetypes.best_match(["application/json", "text/html"]) == "application/json"
    )


def _error_response(status: int, code: str, detail: str) -> Any:
    if _wants_json():
        return jsonify({"error": code, "detail": detail}), status
    lang = g.get("lang", "zh_CN")
    key = f"error.{code}"
    message = t(lang, key) if t(lang, key) != key else detail
    return render_template("error.html", status=status, code=code, message=message), status

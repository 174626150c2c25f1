"""The supervisor side: live wallboard, charts, call history, agents and content, metrics.

Every page and API here is for supervisors only (agents get 403); signed-out visitors of a
page are sent to the sign-in form. Every change is written to the audit log.
"""

from __future__ import annotations

import csv
import hmac
import io
import re
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, g, redirect, render_template, request

from hotline.asr.models import model_status
from hotline.db import agents as agents_db
from hotline.db import audit, now
from hotline.db import callbacks as callbacks_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from hotline.db import guidance as guidance_db
from hotline.db import reports as reports_db
from hotline.errors import BadMessage, Conflict, Forbidden, NotFound, Unauthorized
from hotline.guidance.model import pick
from hotline.guidance.report import report as guidance_report
from hotline.i18n import subset, t
from hotline.reports import charts
from hotline.reports import wallboard as wb
from hotline.web.security import services

bp = Blueprint("admin", __name__)

USERNAME = re.compile(r"^[a-z0-9_.-]{2,32}$")
DAYS = 30


# --- access --------------------------------------------------------------------------------


@bp.before_request
def _supervisors_only() -> Any:
    """Pages: signed-out -> sign-in form; APIs: 401. Agents: 403. Monitoring scrapes: open."""
    if request.endpoint in ("admin.metrics", "admin.readyz"):
        return None
    if g.agent is None:
        if request.path.startswith("/api/") or request.method != "GET":
            raise Unauthorized("please sign in")
        return redirect("/agent", code=303)
    if g.agent.role != "supervisor":
        raise Forbidden("supervisors only")
    g.lang = g.agent.lang
    return None


def _actor() -> str:
    return f"agent:{g.agent.id}"


def _tz() -> ZoneInfo:
    return ZoneInfo(services().cfg.timezone)


def _day_start(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=_tz()).timestamp()


def _today() -> date:
    return datetime.fromtimestamp(now(), _tz()).date()


def _local(ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.fromtimestamp(ts, _tz()).strftime(fmt) if ts else ""


@bp.app_template_filter("admin_time")
def _time_filter(ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return _local(ts, fmt)


def _page(template: str, name: str, **context: Any) -> Any:
    s = services()
    boot = {
        "lang": g.lang,
        "csrf": g.session["csrf"],
        "ws_url": s.cfg.public_ws_url,
        "ws_port": s.ws_port or s.cfg.ws_port,
        "dialects": s.dialect_names(g.lang),
        "timezone": s.cfg.timezone,
        "strings": subset(g.lang, ("admin.", "status.", "reason.")),
        **context.pop("boot", {}),
    }
    return render_template(template, boot=boot, nav=name, csrf=g.session["csrf"], **context)


# --- wallboard -----------------------------------------------------------------------------


@bp.get("/admin")
def wallboard_page() -> Any:
    """The live wallboard, readable from across the room."""
    s = services()
    thresholds = [s.cfg.service_level_seconds, s.cfg.service_level_fast_seconds]
    return _page(
        "admin.html",
        "wallboard",
        boot={
            "thresholds": thresholds,
            "target": s.cfg.service_level_target,
            "scripts": {sc.id: pick(sc.title, g.lang) for sc in s.guidance},
        },
    )


@bp.get("/api/admin/wallboard")
def wallboard() -> Any:
    """Everything the wallboard shows: live line and agents, today's service, callbacks."""
    return wallboard_data()


def wallboard_data() -> dict[str, Any]:
    s = services()
    at = now()
    today = _today()
    start, end = _day_start(today), _day_start(today + timedelta(days=1))
    try:
        snap = s.live_snapshot()
    except Exception:  # the loop is stopped or stuck: show the stored figures anyway
        snap = None
    live = {**wb.live_board(snap), "up": True} if snap else {"up": False}
    rows = reports_db.calls_between(s.db, start, end)
    month = reports_db.calls_between(s.db, _day_start(today - timedelta(days=DAYS - 1)), end)
    alerts = reports_db.alerts_between(s.db, start, end)
    thresholds = [s.cfg.service_level_seconds, s.cfg.service_level_fast_seconds]
    return {
        "at": at,
        "live": live,
        "today": wb.service_summary(rows, thresholds),
        "thresholds": [f"{x:g}" for x in thresholds],
        "target": s.cfg.service_level_target,
        "callbacks": wb.callbacks_due(callbacks_db.active_bookings(s.db), at, end),
        "fraud": {
            "calls": sum(1 for r in rows if r.get("fraud_flag")),
            "alerts": sum(1 for a in alerts if a.get("category") == "fraud"),
        },
        "satisfaction": {"today": wb.satisfaction(rows), "days30": wb.satisfaction(month)},
    }


# --- charts --------------------------------------------------------------------------------


@bp.get("/admin/reports")
def reports_page() -> Any:
    """Charts, and calls and satisfaction per agent over 30 days."""
    s = services()
    today = _today()
    start = _day_start(today - timedelta(days=DAYS - 1))
    rows = reports_db.calls_between(s.db, start, _day_start(today + timedelta(days=1)))
    names = {a.id: a.display_name for a in agents_db.all_agents(s.db)}
    transfers = sum(int(r.get("transfers") or 0) for r in rows)
    return _page(
        "admin_reports.html", "reports", agents=wb.per_agent(rows, names), transfers=transfers
    )


@bp.get("/admin/charts/<name>.svg")
def chart(name: str) -> Any:
    """One chart as SVG: hourly, waits, service, scripts or notfound."""
    makers = {
        "hourly": _chart_hourly,
        "waits": _chart_waits,
        "service": _chart_service,
        "scripts": _chart_scripts,
        "notfound": _chart_notfound,
    }
    if name not in makers:
        raise NotFound("no such chart")
    svg = makers[name]()
    return Response(
        svg,
        mimetype="image/svg+xml",
        headers={"Cache-Control": "no-store", "Content-Disposition": "inline"},
    )


def _l(key: str, **kw: Any) -> str:
    return t(g.lang, key, **kw)


def _chart_hourly() -> str:
    db, today = services().db, _today()
    start = _day_start(today)
    week_ago = _day_start(today - timedelta(days=7))
    now_counts = wb.per_hour(reports_db.arrivals_between(db, start, start + 86400), start)
    then = wb.per_hour(reports_db.arrivals_between(db, week_ago, week_ago + 86400), week_ago)
    hour_now = datetime.fromtimestamp(now(), _tz()).hour
    shown: list[float | None] = [v if h <= hour_now else None for h, v in enumerate(now_counts)]
    return charts.bar_chart(
        _l("admin.chart.hourly"),
        [f"{h}" for h in range(24)],
        [
            charts.Series(_l("admin.chart.today"), shown, solid=True),
            charts.Series(_l("admin.chart.last_week"), [float(v) for v in then], solid=False),
        ],
        label_every=2,
    )


def _chart_waits() -> str:
    db, today = services().db, _today()
    rows = reports_db.calls_between(db, _day_start(today), _day_start(today + timedelta(days=1)))
    buckets = wb.wait_histogram(rows)
    gave_up = sum(1 for r in rows if wb.gave_up(r))
    labels = [label for label, _ in buckets] + [_l("admin.chart.gave_up")]
    values = [float(n) for _, n in buckets] + [float(gave_up)]
    return charts.bar_chart(
        _l("admin.chart.waits"), labels, [charts.Series(_l("admin.chart.calls"), values)]
    )


def _chart_service() -> str:
    s, today = services(), _today()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    starts = [_day_start(d) for d in days]
    rows = reports_db.calls_between(s.db, starts[0], _day_start(today + timedelta(days=1)))
    levels = wb.daily_service_level(rows, starts, s.cfg.service_level_seconds)
    target = s.cfg.service_level_target
    return charts.line_chart(
        _l("admin.chart.service", seconds=f"{s.cfg.service_level_seconds:g}"),
        [d.strftime("%m-%d") for d in days],
        levels,
        target=target,
        target_label=_l("admin.chart.target", percent=f"{target * 100:.0f}"),
        label_every=5,
    )


def _answers_30_days() -> list[dict[str, Any]]:
    today = _today()
    return reports_db.guidance_answers_between(
        services().db,
        _day_start(today - timedelta(days=DAYS - 1)),
        _day_start(today + timedelta(days=1)),
    )


def _script_title(script_id: str) -> str:
    script = services().guidance.get(script_id)
    return pick(script.title, g.lang) if script else script_id


def _chart_scripts() -> str:
    usage = wb.script_usage(_answers_30_days())[:8]
    return charts.hbar_chart(
        _l("admin.chart.scripts"),
        [(_script_title(sid), float(n)) for sid, n in usage],
        empty=_l("admin.none"),
    )


def _chart_notfound() -> str:
    library = services().guidance
    steps = wb.not_found_steps(guidance_report(_answers_30_days()))
    items = []
    for e in steps:
        script = library.get(e["script_id"])
        number = script.number(e["step_id"]) if script else None
        title = _script_title(e["script_id"])
        label = (
            _l("admin.chart.step_label", script=title, step=number)
            if number is not None
            else f"{title} · {e['step_id']}"
        )
        items.append((label, float(e["help"])))
    return charts.hbar_chart(_l("admin.chart.notfound"), items, empty=_l("admin.none"))


# --- call history --------------------------------------------------------------------------


def _filters() -> dict[str, Any]:
    """The search filters from the query string (validated; bad values are refused)."""
    a = request.args
    out: dict[str, Any] = {
        "elder": a.get("elder", "").strip()[:40],
        "dialect": a.get("dialect", "").strip()[:16],
        "outcome": a.get("outcome", "").strip()[:32],
        "alert": a.get("alert", "").strip(),
        "rating": a.get("rating", "").strip(),
    }
    if out["alert"] and out["alert"] not in reports_db.ALERT_KINDS:
        raise BadMessage("alert must be any, fraud or distress", code="bad_field")
    if out["rating"] and out["rating"] not in wb.RATINGS:
        raise BadMessage("rating must be good, ok or bad", code="bad_field")
    agent = a.get("agent", "").strip()
    if agent:
        if not agent.isdigit():
            raise BadMessage("agent must be an agent id", code="bad_field")
        out["agent_id"] = int(agent)
    for key, shift in (("from", 0), ("to", 1)):
        raw = a.get(key, "").strip()
        if raw:
            try:
                day = date.fromisoformat(raw)
            except ValueError:
                raise BadMessage(f"{key} must be a date YYYY-MM-DD", code="bad_field") from None
            out["start" if key == "from" else "end"] = _day_start(day + timedelta(days=shift))
    return out


def _search(limit: int = 200) -> list[dict[str, Any]]:
    offset = request.args.get("offset", "0")
    return reports_db.search_calls(
        services().db, **_filters(), limit=limit, offset=int(offset) if offset.isdigit() else 0
    )


@bp.get("/admin/calls")
def calls_page() -> Any:
    """Call history with search by elder, agent, date, dialect, outcome, alert and rating."""
    s = services()
    return _page(
        "admin_calls.html",
        "calls",
        calls=_search(),
        args=request.args,
        agents=agents_db.all_agents(s.db),
        outcomes=reports_db.outcomes(s.db),
        dialect_names=s.dialect_names(g.lang),
        query=request.query_string.decode("ascii", "replace"),
    )


@bp.get("/api/admin/calls")
def calls_api() -> Any:
    raw = request.args.get("limit", "100") or "100"
    if not raw.isdigit() or len(raw) > 6:
        raise BadMessage(
            f"limit must be a number up to {reports_db.SEARCH_LIMIT}", code="bad_field"
        )
    return {"calls": _search(limit=max(1, min(int(raw), reports_db.SEARCH_LIMIT)))}


CSV_FIELDS = (
    "id",
    "arrived",
    "dialect",
    "elder_id",
    "elder_name",
    "agent_id",
    "agent_name",
    "wait_seconds",
    "talk_seconds",
    "outcome",
    "rating",
    "fraud_flag",
    "alerts",
)


@bp.get("/admin/calls.csv")
def calls_csv() -> Any:
    """The filtered call list as CSV (no transcripts); the export is audited."""
    rows = reports_db.search_calls(services().db, **_filters(), limit=reports_db.SEARCH_LIMIT)
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(CSV_FIELDS)
    for r in rows:
        r = {**r, "arrived": _local(r["arrived_at"])}
        out.writerow([_csv_cell(r.get(k)) for k in CSV_FIELDS])
    audit.record(services().db, _actor(), "calls_export", detail=f"{len(rows)} rows")
    return Response(
        "\ufeff" + buf.getvalue(),  # a BOM so spreadsheet programs read the Chinese names
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=calls.csv"},
    )


def _csv_cell(value: Any) -> Any:
    # A name starting with = + - @ would run as a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


def call_timeline(call: dict[str, Any], events: list[dict], answers: list[dict]) -> list[dict]:
    """Arrival, call events and guidance answers of one call, in time order."""
    items = [{"at": call["arrived_at"], "kind": "arrive", "detail": {}}]
    items += [{"at": e["at"], "kind": e["kind"], "detail": e["detail"]} for e in events]
    items += [
        {
            "at": a["at"],
            "kind": "guide",
            "detail": {"script_id": a["script_id"], "step_id": a["step_id"], "answer": a["answer"]},
        }
        for a in answers
    ]
    return sorted(items, key=lambda e: e["at"])


def _call(call_id: str) -> dict[str, Any]:
    s = services()
    call = calls_db.get(s.db, call_id) if len(call_id) <= 64 else None
    if call is None:
        raise NotFound("no such call")
    call.pop("rejoin_hash", None)
    answers = guidance_db.answers(s.db, call_id=call_id)
    return {
        "call": {**call, **reports_db.call_names(s.db, call_id)},
        "timeline": call_timeline(call, calls_db.events(s.db, call_id), answers),
        "wrapup": callbacks_db.get_wrapup(s.db, call_id),
    }


@bp.get("/admin/calls/<call_id>")
def call_page(call_id: str) -> Any:
    """One call: timeline, wrap-up, and its transcript on request (each read audited)."""
    data = _call(call_id)
    for item in data["timeline"]:
        if item["kind"] == "guide":
            script = services().guidance.get(item["detail"]["script_id"])
            item["script"] = pick(script.title, g.lang) if script else item["detail"]["script_id"]
            step = item["detail"]["step_id"]
            item["step"] = script.number(step) if script and step else step
    return _page("admin_call.html", "calls", boot={"call_id": call_id}, **data)


@bp.get("/api/admin/calls/<call_id>")
def call_api(call_id: str) -> Any:
    return _call(call_id)


# --- agents and content --------------------------------------------------------------------


def _scripts() -> list[dict[str, Any]]:
    s = services()
    off = reports_db.disabled_scripts(s.db)
    return [
        {
            "id": sc.id,
            "title": pick(sc.title, g.lang),
            "steps": len(sc.main_steps),
            "enabled": sc.id not in off,
        }
        for sc in s.guidance
    ]


def _models() -> list[dict[str, Any]]:
    s = services()
    out = []
    for d in s.registry.dialects.values():
        spec = s.registry.models.get(d.model) if d.model else None
        status = model_status(spec, s.cfg.models_dir) if spec else None
        out.append(
            {
                "dialect": d.id,
                "name": d.name(g.lang),
                "model": spec.name if spec else None,
                "installed": bool(status and status.installed),
                "size_mb": round(status.size_bytes / 1e6, 1) if status else 0,
                "source": status.source if status else None,
            }
        )
    return out


@bp.get("/admin/manage")
def manage_page() -> Any:
    """Agents, guidance scripts, elders' links, installed dialect models."""
    s = services()
    query = request.args.get("elder", "").strip()[:40]
    elders = []
    if query:
        for e in reports_db.find_elders(s.db, query):
            links = elders_db.links_of(s.db, e["id"])
            e["links"] = [
                {"token": lk.token, "short": lk.token[:6], "state": lk.state()} for lk in links
            ]
            elders.append(e)
    return _page(
        "admin_manage.html",
        "manage",
        agents=agents_db.all_agents(s.db),
        dialect_names=s.dialect_names(g.lang),
        scripts=_scripts(),
        models=_models(),
        elder_query=query,
        elders=elders,
        done=request.args.get("done", ""),
    )


@bp.get("/api/admin/scripts")
def scripts_api() -> Any:
    return {"scripts": _scripts()}


@bp.get("/api/admin/models")
def models_api() -> Any:
    return {"models": _models()}


@bp.get("/api/admin/agents")
def agents_api() -> Any:
    """Agents with their calls and ratings over 30 days."""
    s = services()
    today = _today()
    rows = reports_db.calls_between(
        s.db, _day_start(today - timedelta(days=DAYS - 1)), _day_start(today + timedelta(days=1))
    )
    stats = {e["agent_id"]: e for e in wb.per_agent(rows, {})}
    return {
        "agents": [
            {
                "id": a.id,
                "username": a.username,
                "display_name": a.display_name,
                "role": a.role,
                "dialects": list(a.dialects),
                "disabled": a.disabled,
                "answered_30d": stats.get(a.id, {}).get("answered", 0),
                "ratings_30d": stats.get(a.id, {}).get("ratings", dict.fromkeys(wb.RATINGS, 0)),
            }
            for a in agents_db.all_agents(s.db)
        ]
    }


def _form_dialects() -> list[str]:
    known = services().registry.dialects
    chosen = [d for d in request.form.getlist("dialects") if d]
    if not chosen or any(d not in known for d in chosen):
        raise BadMessage("choose at least one known dialect", code="bad_field")
    return chosen


def _form_name(key: str = "display_name") -> str:
    name = request.form.get(key, "").strip()
    if not 0 < len(name) <= 40:
        raise BadMessage("a name of 1-40 characters is required", code="bad_field")
    return name


def _form_role() -> str:
    role = request.form.get("role", "agent")
    if role not in ("agent", "supervisor"):
        raise BadMessage("role must be agent or supervisor", code="bad_field")
    return role


def _form_password(required: bool) -> str:
    password = request.form.get("password", "")
    if (required or password) and not 10 <= len(password) <= 256:
        raise BadMessage("passwords need at least 10 characters", code="bad_field")
    return password


def _done(what: str) -> Any:
    return redirect(f"/admin/manage?done={what}", code=303)


@bp.post("/admin/agents")
def add_agent() -> Any:
    """Create an agent or supervisor account."""
    s = services()
    username = request.form.get("username", "").strip().lower()
    if not USERNAME.match(username):
        raise BadMessage("user names: 2-32 of a-z 0-9 _ . -", code="bad_field")
    name, dialects, role = _form_name(), _form_dialects(), _form_role()
    password = _form_password(required=True)
    if agents_db.by_username(s.db, username):
        raise Conflict("that user name is taken", code="username_taken")
    agent = agents_db.add(s.db, username, password, dialects, display_name=name, role=role)
    audit.record(s.db, _actor(), "agent_add", f"agent:{agent.id}", f"{role} {','.join(dialects)}")
    return _done("agent_added")


@bp.post("/admin/agents/<int:agent_id>")
def edit_agent(agent_id: int) -> Any:
    """Change an agent's name, dialects, role, enabled state or password."""
    s = services()
    agent = agents_db.get(s.db, agent_id)
    if agent is None:
        raise NotFound("no such agent")
    name, dialects, role = _form_name(), _form_dialects(), _form_role()
    disabled = request.form.get("disabled") == "1"
    password = _form_password(required=False)
    if agent.id == g.agent.id and (disabled or role != "supervisor"):
        raise BadMessage("you cannot disable or demote yourself", code="self_lockout")
    agents_db.update(
        s.db, agent_id, display_name=name, dialects=dialects, role=role, disabled=disabled
    )
    if password:
        agents_db.set_password(s.db, agent_id, password)
    if (disabled and not agent.disabled) or role != agent.role or password:
        # Every session and socket of the account ends: a disabled account must not keep
        # taking calls, a demoted supervisor must not keep watching (wallboard, monitor),
        # and a changed password must lock out whoever had the old one.
        # (Changing your own password keeps this session: you stay signed in here only.)
        keep = g.session["id_hash"] if agent.id == g.agent.id else None
        s.sign_out_everywhere(
            agent_id, "account_disabled" if disabled else "account_changed", keep=keep
        )
    changes = [
        f"{k}={v}"
        for k, v, old in (
            ("name", name, agent.display_name),
            ("dialects", ",".join(dialects), ",".join(agent.dialects)),
            ("role", role, agent.role),
            ("disabled", disabled, agent.disabled),
        )
        if v != old
    ] + (["password"] if password else [])
    audit.record(s.db, _actor(), "agent_edit", f"agent:{agent_id}", " ".join(changes))
    return _done("agent_saved")


@bp.post("/admin/scripts/<script_id>")
def toggle_script(script_id: str) -> Any:
    """Switch a guidance script on (`enabled=1`) or off (`enabled=0`)."""
    s = services()
    if script_id not in s.guidance:
        raise NotFound("no such script")
    enabled = request.form.get("enabled")
    if enabled not in ("0", "1"):
        raise BadMessage("enabled must be 0 or 1", code="bad_field")
    reports_db.set_script_enabled(s.db, script_id, enabled == "1", _actor())
    action = "script_enable" if enabled == "1" else "script_disable"
    audit.record(s.db, _actor(), action, f"script:{script_id}")
    return _done(action)


@bp.post("/admin/links/revoke")
def revoke_link() -> Any:
    """Revoke an elder's one-tap link (the QR card stops working)."""
    s = services()
    token = request.form.get("token", "")[:64]
    link = elders_db.get_link(s.db, token) if token else None
    if link is None:
        raise NotFound("no such link")
    elders_db.revoke_link(s.db, token)
    # The card code is printed on the same card: it stops working too (a new card from
    # staff carries a new link and a new code).
    elders_db.rotate_card_code(s.db, link.elder_id)
    audit.record(s.db, _actor(), "link_revoke", f"elder:{link.elder_id}", token[:6])
    return _done("link_revoked")


@bp.post("/admin/elders/<int:elder_id>/card")
def issue_card(elder_id: int) -> Any:
    """A new one-tap link for an elder whose card was revoked: the printable card (new link,
    current card code). Cards come from staff only; a family booking never makes one."""
    s = services()
    if elders_db.get(s.db, elder_id) is None:
        raise NotFound("no such elder")
    link = elders_db.new_link(s.db, elder_id)
    audit.record(s.db, _actor(), "link_issue", f"elder:{elder_id}", link.token[:6])
    return redirect(f"/agent/elders/{elder_id}/card.svg", code=303)


# --- metrics and readiness -----------------------------------------------------------------


def _may_scrape() -> bool:
    """The metrics token when one is set; otherwise a supervisor, or a scraper on this host
    talking to the server directly (no proxy in between: no X-Forwarded-For)."""
    token = services().cfg.metrics_token
    if token:
        sent = request.headers.get("Authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    if g.agent is not None and g.agent.role == "supervisor":
        return True
    direct = "X-Forwarded-For" not in request.headers and "Forwarded" not in request.headers
    return direct and request.remote_addr in ("127.0.0.1", "::1")


@bp.get("/metrics")
def metrics() -> Any:
    """Prometheus text format, computed on scrape (counts only, no personal data)."""
    from hotline import metrics as metrics_mod

    if not _may_scrape():
        raise Unauthorized("metrics need the metrics token", code="metrics_token")

    registry = current_app.extensions.get("hotline_metrics")
    if registry is None:
        registry = metrics_mod.registry_for(services())
        current_app.extensions["hotline_metrics"] = registry
    return Response(
        metrics_mod.render(registry), headers={"Content-Type": metrics_mod.CONTENT_TYPE}
    )


@bp.get("/readyz")
def readyz() -> Any:
    """200 when the database reads and the live side answers; 503 otherwise."""
    s = services()
    try:
        db_ok = reports_db.ping(s.db)
    except Exception:
        db_ok = False
    try:
        live_ok = isinstance(s.live_snapshot(), dict) and s._snapshot is not None
    except Exception:
        live_ok = False
    body = {"ok": db_ok and live_ok, "db": db_ok, "live": live_ok}
    return body, 200 if body["ok"] else 503

"""The one configuration object, read once from the environment."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def setting(default: Any, help: str) -> Any:
    """Declare a setting with its default and the help line the docs list."""
    if isinstance(default, list):
        return field(
            default_factory=lambda: list(default), metadata={"help": help, "default": default}
        )
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Config:
    """Every setting of the hotline; `HOTLINE_<NAME>` in the environment overrides each."""

    host: str = setting("127.0.0.1", "Address both listeners bind to (0.0.0.0 behind a proxy).")
    http_port: int = setting(8080, "Port of the HTTP listener (pages and API).")
    ws_port: int = setting(8081, "Port of the websocket listener (signalling, queue, captions).")
    public_ws_url: str = setting(
        "", "Websocket URL browsers use; empty means ws://<page host>:<ws_port>/ws."
    )
    public_base_url: str = setting(
        "", "Base URL printed in one-tap links and QR cards; empty: http://localhost:<http_port>."
    )
    data_dir: Path = setting(ROOT / "var", "Directory for the database, caches and secrets.")
    db_path: Path | None = setting(None, "SQLite file; default <data_dir>/hotline.sqlite3.")
    database_url: str = setting(
        "", "postgresql://… puts the store on PostgreSQL (cluster mode); empty: the SQLite file."
    )
    redis_url: str = setting(
        "", "redis://… bus between the nodes of a cluster; empty: one node, in-process bus."
    )
    node_id: str = setting(
        "", "This node's name in a cluster (logs, the bus); default <hostname>-<pid>."
    )
    secret_key: str = setting("", "Signing key; default a random key kept in <data_dir>.")
    ice_servers: list[dict[str, Any]] = setting(
        [], 'JSON list of STUN/TURN servers for browsers, e.g. [{"urls":"stun:host:3478"}].'
    )
    turn_urls: list[str] = setting([], "JSON list of TURN URLs given time-limited credentials.")
    turn_secret: str = setting("", "coturn use-auth-secret shared secret (static-auth-secret).")
    turn_ttl_seconds: int = setting(600, "Lifetime of TURN credentials handed to browsers.")
    ice_loopback: bool = setting(
        False, "Let the gateway offer 127.0.0.1 candidates (tests, single-machine demos)."
    )
    overflow_seconds: float = setting(
        30.0, "Wait after which a caller may go to an agent of any dialect."
    )
    ring_timeout_seconds: float = setting(
        15.0, "Ring not accepted in this time moves on; the agent is set away."
    )
    keepalive_seconds: float = setting(
        20.0, "Websocket ping interval; a page that misses a ping for this long is dropped."
    )
    rejoin_seconds: float = setting(
        60.0, "A caller who reconnects within this time gets their place back."
    )
    hold_reminder_seconds: float = setting(
        45.0, "A caller on hold this long hears the hold message again; the agent is reminded."
    )
    transfer_wait_seconds: float = setting(
        120.0,
        "A cold transfer to a busy target waits this long at the head for it, then the call "
        "goes to the head of the normal line.",
    )
    identity_challenge_seconds: float = setting(
        90.0, "How long the four digits of a spoken identity check stay valid."
    )
    default_handle_seconds: float = setting(
        240.0, "Handle time assumed for the wait estimate before any call has ended."
    )
    default_lang: str = setting("zh_CN", "UI language when the elder has none (zh_CN or en).")
    default_dialect: str = setting(
        "cmn", "Dialect assumed for callers without a link who pick none (captions may detect it)."
    )
    timezone: str = setting("Asia/Shanghai", "The hotline's time zone for bookings and reports.")
    registry_path: Path = setting(
        ROOT / "dialect_models" / "registry.toml", "The dialect registry file."
    )
    models_dir: Path | None = setting(None, "Installed speech models; default <data_dir>/models.")
    scripts_dir: Path = setting(ROOT / "hotline" / "guidance" / "scripts", "Guidance scripts.")
    transcript_retention_days: int = setting(90, "Transcripts older than this are purged.")
    photo_retention_days: int = setting(
        365, "Registered photos (identity check) older than this are deleted."
    )
    callback_offer_seconds: float = setting(
        120.0, "Offer 'call me back' when the estimated wait is over this."
    )
    session_idle_minutes: int = setting(60, "Agent session ends after this much inactivity.")
    session_max_hours: int = setting(12, "Agent session ends this long after login, regardless.")
    ws_token_seconds: int = setting(
        120, "Lifetime of the signed token a console opens its socket with."
    )
    log_json: bool = setting(False, "Write logs as JSON lines.")
    log_level: str = setting("INFO", "Logging level.")
    caption_workers: int = setting(2, "Threads decoding speech for captions (the asr pool).")
    caption_warm: int = setting(
        2,
        "Warm recognizers kept idle per installed model (warmed with registry warm_up "
        "speech at start, replaced as calls take them).",
    )
    captions_vad: bool = setting(
        True, "Skip decoding long silences (energy gate): less CPU per captioned call."
    )
    captions_deterministic: bool = setting(
        False, "Decode without feature dither (identical results each run; tests use it)."
    )
    asr_workers: str = setting(
        "",
        'Speech workers as JSON, dialect -> list of vosk-server URLs ({"ko": ["ws://h:2700"]});'
        " empty decodes captions in this process.",
    )
    smtp_host: str = setting("", "SMTP server for family e-mails; empty turns e-mail off.")
    smtp_port: int = setting(25, "Port of the SMTP server.")
    smtp_from: str = setting("hotline@localhost", "Sender address of family e-mails.")
    callback_per_agent_hour: int = setting(3, "Callbacks bookable per agent-hour on shift.")
    callback_max_attempts: int = setting(
        3, "Unanswered callback attempts before the family is told."
    )
    callback_retry_minutes: float = setting(15.0, "Wait before retrying an unanswered callback.")
    callback_bookings_per_address_hour: int = setting(
        10, "Family bookings accepted per client address per hour."
    )
    callback_open_per_phone: int = setting(
        3, "Open callback bookings allowed per elder phone from one address."
    )
    service_level_seconds: float = setting(
        20.0, "Service level: share of calls answered within this many seconds (wallboard)."
    )
    service_level_fast_seconds: float = setting(
        15.0, "Second, stricter service-level threshold shown on the wallboard."
    )
    service_level_target: float = setting(
        0.8, "Service-level goal (0-1) drawn as the target line on the wallboard charts."
    )
    # --- holding against an outsider (docs/reliability.md, "Limits against abuse") ---
    trusted_proxy: str = setting(
        "", "Address of the reverse proxy whose X-Forwarded-For is trusted; empty: none."
    )
    allowed_origins: list[str] = setting(
        [],
        'Websocket origins allowed, e.g. ["https://hotline.example"]; empty: base URL + localhost.',
    )
    http_connection_limit: int = setting(400, "Open HTTP connections the server holds at most.")
    http_connections_per_address: int = setting(
        16,
        "HTTP connections one client address may hold; its oldest idle one is closed to make "
        "room, so only requests in progress count (the trusted proxy is exempt).",
    )
    http_channel_timeout: int = setting(
        30, "An HTTP connection that sends nothing for this many seconds is closed."
    )
    http_request_seconds: int = setting(
        15, "A request not fully received this long after its first byte is dropped (slow drip)."
    )
    http_cleanup_interval: int = setting(2, "Seconds between sweeps for stalled HTTP connections.")
    http_max_body_bytes: int = setting(
        1024 * 1024, "Largest request body the HTTP server reads (larger: 413, never spooled)."
    )
    ws_callers_per_address: int = setting(
        20, "Caller pages without a link one client address may have open at once."
    )
    ws_calls_per_address_minute: int = setting(
        10, "Calls one client address may start per minute (call/hangup churn included)."
    )
    tts_cache_mb: int = setting(
        1024, "Speech cache size in MB; past it, the oldest files are deleted first."
    )
    tts_renders_per_address_minute: int = setting(
        30, "New (not yet cached) spoken prompts one address may have rendered per minute."
    )
    card_failures_per_address_hour: int = setting(
        5, "Wrong card codes one address may try per hour before card booking is locked for it."
    )
    card_failures_hour: int = setting(
        50, "Wrong card codes tried per hour by everyone before card booking is locked for all."
    )
    login_failures_per_account_address: int = setting(
        5, "Wrong passwords for one account from one address within 15 minutes before a pause."
    )
    login_failures_per_address: int = setting(
        20, "Wrong passwords from one address within 15 minutes before it is paused."
    )
    callback_open_per_phone_total: int = setting(
        10, "Open bookings per elder phone from all addresses together."
    )
    ice_max_candidates: int = setting(
        16, "Remote ICE candidates the gateway considers per tap offer (the rest are dropped)."
    )
    metrics_token: str = setting(
        "", "Bearer token for /metrics; empty: supervisors or direct loopback scrapes only."
    )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Config:
        """Build the config from `HOTLINE_*` variables, then apply keyword overrides."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"HOTLINE_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _parse(f.type, raw, f.name)
        values.update(overrides)
        cfg = cls(**values)
        return cfg.resolved()

    def resolved(self) -> Config:
        """Fill derived paths and the secret key."""
        data = Path(self.data_dir)
        changes: dict[str, Any] = {"data_dir": data}
        if not self.public_base_url:
            changes["public_base_url"] = f"http://localhost:{self.http_port or 8080}"
        if self.db_path is None:
            changes["db_path"] = data / "hotline.sqlite3"
        if self.models_dir is None:
            changes["models_dir"] = data / "models"
        if not self.secret_key:
            changes["secret_key"] = _persistent_secret(data)
        return replace(self, **changes)

    @staticmethod
    def describe() -> list[tuple[str, str, str]]:
        """(environment variable, default, help) for every setting, for the docs."""
        out = []
        for f in fields(Config):
            default = f.metadata.get("default", f.default)
            if isinstance(default, Path):
                default = os.path.relpath(default, ROOT)
            out.append((f"HOTLINE_{f.name.upper()}", repr(default), f.metadata["help"]))
        return out


def _parse(kind: Any, raw: str, name: str) -> Any:
    kind = str(kind)
    if "bool" in kind:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if "Path" in kind:
        return Path(raw) if raw else None
    if "list" in kind:
        value = json.loads(raw) if raw.strip() else []
        if not isinstance(value, list):
            raise ValueError(f"HOTLINE_{name.upper()} must be a JSON list")
        return value
    return raw


def _persistent_secret(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key

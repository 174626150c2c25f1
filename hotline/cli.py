"""The `hotline` command: serve, demo, agents, elders, models, scripts.

Each domain adds its own subcommands through a `register(subparsers)` function, so this
module only assembles them.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from hotline.config import Config
from hotline.db import Database, open_configured
from hotline.db import agents as agents_db
from hotline.db import elders as elders_db

Handler = Callable[[argparse.Namespace, Config], int]


def open_db(cfg: Config) -> Database:
    """Open the configured database and bring its schema up to date."""
    db = open_configured(cfg)
    db.migrate()
    return db


def one_tap_url(cfg: Config, token: str) -> str:
    return f"{cfg.public_base_url.rstrip('/')}/c/{token}"


def _serve(args: argparse.Namespace, cfg: Config) -> int:
    from hotline.server import run

    guard = None
    if cfg.database_url and not cfg.redis_url:  # without a bus, one node per database
        from hotline.db.postgres import NodeAlreadyServing, single_node_lock

        try:
            guard = single_node_lock(cfg.database_url)
        except NodeAlreadyServing as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        return run(cfg)
    finally:
        if guard is not None:
            guard.close()


def _agents_add(args: argparse.Namespace, cfg: Config) -> int:
    db = open_db(cfg)
    if agents_db.by_username(db, args.name):
        print(f"error: agent {args.name!r} already exists", file=sys.stderr)
        return 1
    password = args.password
    generated = False
    if not password:
        if sys.stdin.isatty() and not args.generate:
            password = getpass.getpass("Password (empty to generate): ")
        if not password:
            password, generated = secrets.token_urlsafe(9), True
    dialects = [d.strip() for d in args.dialects.split(",") if d.strip()]
    agent = agents_db.add(
        db,
        args.name,
        password,
        dialects,
        display_name=args.display_name or args.name,
        role=args.role,
        lang=args.lang,
    )
    print(
        f"agent {agent.username} (id {agent.id}, {agent.role}) dialects {','.join(agent.dialects)}"
    )
    if generated:
        print(f"password (shown once): {password}")
    return 0


def _agents_list(args: argparse.Namespace, cfg: Config) -> int:
    for a in agents_db.all_agents(open_db(cfg)):
        state = "disabled" if a.disabled else "enabled"
        print(f"{a.id}\t{a.username}\t{a.role}\t{','.join(a.dialects)}\t{state}")
    return 0


def _ui_lang(cfg: Config, dialect: str) -> str:
    """The UI language the registry declares for a dialect (zh_CN for an unknown one)."""
    from hotline.asr.registry import load_registry

    found = load_registry(cfg.registry_path).dialects.get(dialect)
    return found.ui_lang if found else "zh_CN"


def _elders_add(args: argparse.Namespace, cfg: Config) -> int:
    from hotline.privacy import mask_phone
    from hotline.web.cards import write_card

    db = open_db(cfg)
    lang = args.lang or _ui_lang(cfg, args.dialect)
    elder = elders_db.add(
        db,
        args.name,
        phone=args.phone or "",
        dialect=args.dialect,
        lang=lang,
        hard_of_hearing=args.hard_of_hearing,
    )
    expires = None
    if args.expires_days:
        from hotline.db import now

        expires = now() + args.expires_days * 86400
    link = elders_db.new_link(db, elder.id, auto_start=args.auto_start, expires_at=expires)
    url = one_tap_url(cfg, link.token)
    print(
        f"elder {elder.name} (id {elder.id}) dialect {elder.dialect} phone {mask_phone(elder.phone)}"
    )
    print(f"card code: {elder.card_code}")
    print(f"one-tap link: {url}")
    if args.card:
        write_card(Path(args.card), elder.name, url, elder.lang, elder.card_code)
        print(f"QR card written to {args.card}")
    return 0


DEMO_HOURS = (8, 20)  # the demo agent's shift, every day: family bookings work at once


def _demo_shifts(db: Database, agent_id: int) -> None:
    """Give the demo agent a shift every day (once), so callbacks can be booked and a caller
    who finds nobody signed in is told when the line is staffed next."""
    from hotline.db import callbacks as callbacks_db
    from hotline.db import now

    if any(s.agent_id == agent_id for s in callbacks_db.shifts(db)):
        return
    for weekday in range(1, 8):
        callbacks_db.add_shift(db, agent_id, weekday, *DEMO_HOURS, now())


def _demo(args: argparse.Namespace, cfg: Config) -> int:
    """Create (once) and print a demo agent and a demo elder for trying the hotline."""
    db = open_db(cfg)
    print("=" * 64)
    agent = agents_db.by_username(db, "demo")
    password = "demo-" + secrets.token_hex(3)
    if agent is None:
        agent = agents_db.add(
            db, "demo", password, ["cmn", "yue", "ko", "en"], display_name="小王 (demo)"
        )
    else:
        agents_db.set_password(db, agent.id, password)
    _demo_shifts(db, agent.id)
    elder = next((e for e in elders_db.all_elders(db) if e.name == "张阿姨"), None)
    if elder is None:
        elder = elders_db.add(db, "张阿姨", phone="13812345678", dialect="cmn")
    link = next((lk for lk in elders_db.links_of(db, elder.id) if lk.state() == "ok"), None)
    if link is None:
        link = elders_db.new_link(db, elder.id)
    # A Korean-speaking elder too: the Korean speech model ships, so captions work at once.
    ko = next((e for e in elders_db.all_elders(db) if e.name == "김할머니"), None)
    if ko is None:
        ko = elders_db.add(
            db, "김할머니", phone="13987654321", dialect="ko", lang=_ui_lang(cfg, "ko")
        )
    ko_link = next((lk for lk in elders_db.links_of(db, ko.id) if lk.state() == "ok"), None)
    if ko_link is None:
        ko_link = elders_db.new_link(db, ko.id)
    print(f"Agent console:  {cfg.public_base_url.rstrip('/')}/agent")
    print(f"  login: demo   password: {password}")
    print(f"Caller (张阿姨, Mandarin) one-tap link:  {one_tap_url(cfg, link.token)}")
    print(
        f"Caller (김할머니, Korean: live captions work out of the box):  {one_tap_url(cfg, ko_link.token)}"
    )
    print("Mandarin captions need its model: python -m hotline models install cmn --from FILE")
    print(
        f"Family booking page: {cfg.public_base_url.rstrip('/')}/family   (card code {elder.card_code})"
    )
    print(
        f"Demo shifts: 小王 every day {DEMO_HOURS[0]}:00-{DEMO_HOURS[1]}:00 (hotline shifts list)"
    )
    print("Open the agent console and the caller link in two browser windows.")
    print("=" * 64)
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[tuple[str, ...], Handler]]:
    parser = argparse.ArgumentParser(prog="hotline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the hotline (HTTP + websocket + gateway)")
    p.set_defaults(handler=_serve)
    p = sub.add_parser("demo", help="create and print a demo agent and elder")
    p.set_defaults(handler=_demo)

    agents = sub.add_parser("agents", help="manage agents").add_subparsers(
        dest="sub", required=True
    )
    p = agents.add_parser("add", help="create an agent")
    p.add_argument("name")
    p.add_argument("--dialects", default="cmn", help="comma-separated dialect ids")
    p.add_argument("--display-name", default="")
    p.add_argument("--role", choices=["agent", "supervisor"], default="agent")
    p.add_argument("--lang", choices=["zh_CN", "en"], default="zh_CN")
    p.add_argument("--password", default="", help="(else prompted, or generated and printed)")
    p.add_argument("--generate", action="store_true", help="generate the password, never prompt")
    p.set_defaults(handler=_agents_add)
    p = agents.add_parser("list", help="list agents")
    p.set_defaults(handler=_agents_list)

    elders = sub.add_parser("elders", help="manage elders").add_subparsers(
        dest="sub", required=True
    )
    p = elders.add_parser("add", help="create an elder and print their one-tap link")
    p.add_argument("name")
    p.add_argument("--dialect", default="cmn")
    p.add_argument(
        "--lang", choices=["zh_CN", "en"], default=None, help="(default: the dialect's ui_lang)"
    )
    p.add_argument("--phone", default="")
    p.add_argument("--hard-of-hearing", action="store_true")
    p.add_argument("--auto-start", action="store_true", help="the link starts the call on open")
    p.add_argument("--expires-days", type=float, default=0)
    p.add_argument("--card", default="", help="write a printable QR card (.svg or .png)")
    p.set_defaults(handler=_elders_add)

    for module in _domain_modules():
        module.register(sub)
    return parser, {}


def _domain_modules() -> list:
    """Domains that contribute subcommands; a missing optional domain is skipped."""
    import importlib

    found = []
    for name in (
        "hotline.asr.cli",
        "hotline.asr.worker",
        "hotline.guidance.cli",
        "hotline.callbacks.cli",
        "hotline.db.cli",
    ):
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise
    return found


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hotline` command."""
    parser, _ = build_parser()
    args = parser.parse_args(argv)
    cfg = Config.from_env()
    logging.basicConfig(
        level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if cfg.log_json:
        from hotline.logjson import JsonFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    return int(args.handler(args, cfg) or 0)

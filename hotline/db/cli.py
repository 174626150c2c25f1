"""`hotline db migrate` and `hotline db copy --to postgresql://…` (moving a site up)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hotline.config import Config
from hotline.db import Database, is_url, open_configured, open_database
from hotline.db.copy import CopyRefused, copy_store


def _migrate(args: argparse.Namespace, cfg: Config) -> int:
    db = open_configured(cfg)
    applied = db.migrate()
    where = "PostgreSQL" if db.dialect == "postgresql" else str(db.path)
    print(f"{where}: {len(applied)} migration(s) applied" + "".join(f"\n  {n}" for n in applied))
    return 0


def _copy(args: argparse.Namespace, cfg: Config) -> int:
    if not is_url(args.to):
        print("error: --to must be a postgresql:// URL", file=sys.stderr)
        return 2
    # The SQLite file named by the settings even when HOTLINE_DATABASE_URL is already set.
    source: Database = open_database(args.source or cfg.db_path or cfg.data_dir / "hotline.sqlite3")
    if source.dialect != "sqlite":
        print("error: the source must be the SQLite file (--from PATH)", file=sys.stderr)
        return 2
    source.migrate()  # an older site is brought to this version's schema first
    target = open_database(args.to)
    target.migrate()
    try:
        report = copy_store(source, target)
    except CopyRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, count in report.counts.items():
        print(f"  {name}: {count} rows, {report.spot_checked[name]} spot-checked")
    print(json.dumps({"copied": sum(report.counts.values()), "tables": len(report.counts)}))
    return 0


def register(subparsers: Any) -> None:
    """Add the `db` command to the `hotline` CLI."""
    db = subparsers.add_parser("db", help="the store: migrate, copy SQLite to PostgreSQL")
    sub = db.add_subparsers(dest="sub", required=True)
    p = sub.add_parser("migrate", help="apply pending migrations to the configured store")
    p.set_defaults(handler=_migrate)
    p = sub.add_parser(
        "copy", help="copy the SQLite store into an empty PostgreSQL database, verified"
    )
    p.add_argument("--to", required=True, help="postgresql://user@host:port/dbname")
    p.add_argument(
        "--from", dest="source", default="", help="SQLite file (default: the configured one)"
    )
    p.set_defaults(handler=_copy)

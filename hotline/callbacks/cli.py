"""`hotline shifts add|list|remove`: agents' weekly shifts, which give callback capacity."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hotline.callbacks.slots import parse_hours, parse_weekdays
from hotline.config import Config
from hotline.db import agents as agents_db
from hotline.db import callbacks as store
from hotline.db import now


def _open(cfg: Config) -> Any:
    from hotline.cli import open_db

    return open_db(cfg)


def _add(args: argparse.Namespace, cfg: Config) -> int:
    try:
        days = parse_weekdays(args.weekday)
        start, end = parse_hours(args.hours)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    db = _open(cfg)
    agent = agents_db.by_username(db, args.agent)
    if agent is None:
        print(f"error: no agent {args.agent!r} (see `hotline agents list`)", file=sys.stderr)
        return 1
    with db.transaction():
        for day in days:
            store.add_shift(db, agent.id, day, start, end, now())
    print(f"{agent.username}: weekdays {','.join(map(str, days))}, {start:02d}:00-{end:02d}:00")
    return 0


def _list(args: argparse.Namespace, cfg: Config) -> int:
    rows = store.shifts(_open(cfg))
    if not rows:
        print("no shifts yet: hotline shifts add AGENT --weekday 1-5 --hours 9-17")
    for s in rows:
        print(
            f"{s.id}\t{s.username}\tweekday {s.weekday}\t{s.start_hour:02d}:00-{s.end_hour:02d}:00"
            f"\t{','.join(sorted(s.dialects))}"
        )
    return 0


def _remove(args: argparse.Namespace, cfg: Config) -> int:
    if not store.remove_shift(_open(cfg), args.id):
        print(f"error: no shift {args.id}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Any) -> None:
    """Add the `shifts` command to the `hotline` CLI."""
    shifts = subparsers.add_parser("shifts", help="agents' weekly shifts (callback capacity)")
    sub = shifts.add_subparsers(dest="sub", required=True)
    p = sub.add_parser("add", help="add a weekly shift for an agent")
    p.add_argument("agent", help="the agent's username")
    p.add_argument("--weekday", required=True, help="1 (Monday) to 7 (Sunday): 1-5 or 1,3,6")
    p.add_argument(
        "--hours", required=True, help="START-END hours in the hotline time zone, e.g. 9-17"
    )
    p.set_defaults(handler=_add)
    p = sub.add_parser("list", help="list shifts")
    p.set_defaults(handler=_list)
    p = sub.add_parser("remove", help="remove one shift by id")
    p.add_argument("id", type=int)
    p.set_defaults(handler=_remove)

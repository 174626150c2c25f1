"""`hotline scripts check [PATH]` and `hotline scripts list`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hotline.guidance.loader import check, load_library

if TYPE_CHECKING:  # only for hints: the command runs with the config cli.py built
    from hotline.config import Config


def _check(args: argparse.Namespace, cfg: Config) -> int:
    path = Path(args.path) if args.path else cfg.scripts_dir
    errors = check(path)
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} error(s); invalid scripts are not loaded", file=sys.stderr)
        return 1
    if path.is_dir():
        library, _ = load_library(path)
        steps = sum(len(s.steps) for s in library)
        print(f"{len(library)} scripts, {steps} steps, {len(library.pictures)} pictures: all valid")
    else:
        print(f"{path}: valid")
    return 0


def _list(args: argparse.Namespace, cfg: Config) -> int:
    library, errors = load_library(cfg.scripts_dir)
    if args.json:
        print(json.dumps(library.to_json(args.lang), ensure_ascii=False, indent=2))
    else:
        for s in library:
            title = s.title.get(args.lang) or s.title["zh_CN"]
            print(f"{s.id}\t{s.app}\t{len(s.main_steps)} steps\t{title}")
    if errors:
        print(f"{len(errors)} error(s); run `hotline scripts check`", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `scripts` command group."""
    scripts = subparsers.add_parser("scripts", help="screen-guidance scripts")
    sub = scripts.add_subparsers(dest="sub", required=True)
    p = sub.add_parser("check", help="validate scripts; print file:line: message per error")
    p.add_argument("path", nargs="?", default="", help="a script file or directory")
    p.set_defaults(handler=_check)
    p = sub.add_parser("list", help="list the valid scripts")
    p.add_argument("--lang", choices=["zh_CN", "en"], default="zh_CN")
    p.add_argument("--json", action="store_true", help="print the /api/guidance/scripts body")
    p.set_defaults(handler=_list)

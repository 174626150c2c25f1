"""docs/architecture.md stays true: every file, folder and symbol it names exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def _code_spans() -> list[str]:
    return re.findall(r"`([^`]+)`", DOC.read_text(encoding="utf-8"))


def test_every_path_named_exists() -> None:
    paths = [s for s in _code_spans() if re.fullmatch(r"(hotline|static|tests|docs)/[\w/.*-]+", s)]
    assert len(paths) > 30
    missing = [p for p in paths if not (list(ROOT.glob(p)) if "*" in p else (ROOT / p).exists())]
    assert missing == []


def test_every_class_member_named_exists() -> None:
    """`Class.member` spans name real members of a class of the package."""
    classes: dict[str, type] = {}
    for module in (
        "hotline.live.server",
        "hotline.live.switchboard",
        "hotline.live.events",
        "hotline.live.captions",
        "hotline.live.hub",
        "hotline.calls.gateway",
        "hotline.asr.transcriber",
        "hotline.tts",
    ):
        mod = importlib.import_module(module)
        classes.update({k: v for k, v in vars(mod).items() if isinstance(v, type)})
    named = [s for s in _code_spans() if re.fullmatch(r"[A-Z]\w+\.\w+", s)]
    assert named
    missing = [s for s in named if not hasattr(classes.get(s.split(".")[0]), s.split(".")[1])]
    assert missing == []

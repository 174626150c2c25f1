"""Write the fixture the standalone demo page renders: `python -m hotline.guidance.demo`.

The views come from a real session over the built-in library, so the demo shows exactly
what the server would send.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hotline.guidance.loader import load_library
from hotline.guidance.session import GuidanceSession

HERE = Path(__file__).resolve().parent
# The demo page is static/guidance/demo.html served from the repository root.
DEMO_PICTURE_BASE = "../../hotline/guidance/scripts/"


def fixture() -> dict[str, Any]:
    """Caller views (several modes and languages), a snapshot and the library JSON."""
    library, errors = load_library(HERE / "scripts", picture_base=DEMO_PICTURE_BASE)
    if errors:
        raise SystemExit("\n".join(map(str, errors)))
    clock = iter(range(0, 10_000, 7))
    s = GuidanceSession(library, clock=lambda: float(next(clock)))
    views: list[dict[str, Any]] = []
    s.start("find-hidden-order")
    s.answer(s.seq, "shown")
    s.answer(s.seq, "done")
    views.append(s.caller_view("zh_CN"))
    views.append(s.caller_view("zh_CN", "yue"))
    views.append(s.caller_view("en"))
    s.answer(s.seq, "help")
    views.append(s.caller_view("zh_CN"))
    s.answer(s.seq, "help")
    views.append(s.caller_view("zh_CN"))
    snapshot = s.snapshot()
    s.free_text("别着急，我们一步一步来。先找到屏幕最下面那一排。")
    views.append(s.caller_view("zh_CN"))
    s.answer(s.seq, "help")
    views.append(s.caller_view("zh_CN"))
    s.stop()
    s.start("answer-video-call")
    for _ in range(3):
        s.answer(s.seq, "done")
    views.append(s.caller_view("zh_CN"))
    from hotline.i18n import subset

    strings = {lang: subset(lang, ("guidance.",)) for lang in ("zh_CN", "en")}
    for view in views:
        view["audio_url"] = None
    return {
        "strings": strings,
        "views": views,
        "snapshot": snapshot,
        "library": {"zh_CN": library.to_json("zh_CN"), "en": library.to_json("en")},
    }


def main() -> None:
    json.dump(fixture(), sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""Which steps of a script callers most often could not find, from stored answer rows."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from hotline.guidance.model import Library


def report(
    rows: Iterable[Mapping[str, Any]], library: Library | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per script, its steps ordered by how often callers answered "help" (没找到).

    Each row needs `script_id`, `step_id` and `answer`; `seconds` (time on the step when
    answered) is used for the median time to "done". With a library, steps nobody reached
    are listed too (with zero counts), and rows of unknown scripts or steps are kept as is.
    """
    counts: dict[str, dict[str, dict[str, Any]]] = {}

    def entry(script_id: str, step_id: str) -> dict[str, Any]:
        steps = counts.setdefault(script_id, {})
        return steps.setdefault(
            step_id, {"step_id": step_id, "shown": 0, "done": 0, "help": 0, "_secs": []}
        )

    if library is not None:
        for script in library:
            for step in script.steps:
                entry(script.id, step.id)
    for row in rows:
        script_id, step_id, answer = row.get("script_id"), row.get("step_id"), row.get("answer")
        if not script_id or not step_id or answer not in ("shown", "done", "help"):
            continue
        e = entry(str(script_id), str(step_id))
        e[answer] += 1
        seconds = row.get("seconds")
        if answer == "done" and isinstance(seconds, int | float):
            e["_secs"].append(float(seconds))
    out: dict[str, list[dict[str, Any]]] = {}
    for script_id, steps in sorted(counts.items()):
        order = {sid: i for i, sid in enumerate(steps)}
        rows_out = []
        for e in steps.values():
            secs = e.pop("_secs")
            reached = max(e["shown"], e["done"] + e["help"])
            e["help_rate"] = round(e["help"] / reached, 3) if reached else None
            e["median_seconds_to_done"] = round(statistics.median(secs), 1) if secs else None
            rows_out.append(e)
        rows_out.sort(key=lambda e: (-e["help"], -(e["help_rate"] or 0), order[e["step_id"]]))
        out[script_id] = rows_out
    return out

"""200 concurrent bookings against a real `python -m hotline serve`, kill -9 midway, restart:
every acknowledged booking is there exactly once, and every due booking fires once."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent / "bench" / "callbacks.py"


def load_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_callbacks", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_kill_9_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    bench = load_bench()
    result = bench.restart_run(200, 16, random.Random(7), tmp_path)
    assert result.acked > 0
    assert (result.lost, result.duplicated, result.fired_wrong) == (0, 0, 0)

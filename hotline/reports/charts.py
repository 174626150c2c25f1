"""Small server-side SVG charts meant to be read from across a room: bars, lines, big labels.

Only presentation attributes are used (no style attributes), so the strict CSP holds and
the SVG renders the same in an <img> as when opened on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

FONT = "Noto Sans CJK SC, WenQuanYi Micro Hei, Microsoft YaHei, DejaVu Sans, sans-serif"
INK = "#000000"
BAR = "#0b3d91"  # dark blue on white: > 10:1
GRID = "#b0b0b0"
TARGET = "#a00000"
TITLE_PX = 40
LABEL_PX = 28
VALUE_PX = 30


@dataclass(frozen=True)
class Series:
    """One data series: a legend name, values (None = no data), and solid or outlined bars."""

    name: str
    values: Sequence[float | None]
    solid: bool = True


def _text(
    x: float, y: float, s: str, size: int = LABEL_PX, anchor: str = "middle", **kw: str
) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in kw.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"'
        f' fill="{INK}"{extra}>{escape(s)}</text>'
    )


def _frame(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" font-family="{escape(FONT)}">'
        f"<title>{escape(title)}</title>"
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>'
        + _text(24, TITLE_PX + 10, title, TITLE_PX, "start", font_weight="bold")
        + "".join(body)
        + "</svg>"
    )


def nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5, 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def count_axis(peak: float, ticks: int = 4) -> float:
    """An axis maximum for counts whose `ticks` steps are whole numbers (1, 2, 5 x 10^k)."""
    step = nice_max(max(peak, 1) / ticks)
    step = max(1.0, float(math.ceil(step)))
    return step * ticks


def _count(v: float) -> str:
    return f"{v:g}" if v < 10_000 else f"{v / 1000:.0f}k"


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = 1400,
    height: int = 620,
    label_every: int = 1,
    show_values: bool = True,
    fmt: Callable[[float], str] = _count,
) -> str:
    """Vertical bars, grouped by label; solid series are filled, others outlined."""
    left, right, top, bottom = 90, 30, 150, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v or 0 for s in series for v in s.values), default=0)
    y_max = count_axis(peak)
    body: list[str] = _legend(series, left, 110) if len(series) > 1 else []
    for i in range(5):
        v = y_max * i / 4
        y = top + plot_h - plot_h * i / 4
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"'
            f' stroke="{GRID}" stroke-width="1"/>'
        )
        body.append(_text(left - 12, y + 10, fmt(v), LABEL_PX, "end"))
    slot = plot_w / max(1, len(labels))
    bar_w = slot * 0.8 / max(1, len(series))
    for i, label in enumerate(labels):
        x0 = left + slot * i + slot * 0.1
        for j, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else None
            if value is None:
                continue
            v = float(value)
            h = plot_h * v / y_max
            x, y = x0 + j * bar_w, top + plot_h - h
            fill = BAR if s.solid else "#ffffff"
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 3, 2):.1f}" height="{h:.1f}"'
                f' fill="{fill}" stroke="{BAR if s.solid else INK}" stroke-width="3"/>'
            )
            if show_values and v and len(series) == 1:
                body.append(_text(x + bar_w / 2, y - 10, fmt(v), VALUE_PX, font_weight="bold"))
        if i % label_every == 0:
            body.append(_text(left + slot * (i + 0.5), height - bottom + 38, label))
    body.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}"'
        f' stroke="{INK}" stroke-width="3"/>'
    )
    return _frame(width, height, title, body)


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    out = []
    for s in series:
        fill = BAR if s.solid else "#ffffff"
        out.append(
            f'<rect x="{x:.1f}" y="{y - 24:.1f}" width="36" height="28" fill="{fill}"'
            f' stroke="{BAR if s.solid else INK}" stroke-width="3"/>'
        )
        out.append(_text(x + 48, y, s.name, LABEL_PX, "start"))
        x += 60 + 18 * len(s.name) + 40
    return out


def hbar_chart(
    title: str,
    items: Sequence[tuple[str, float]],
    *,
    width: int = 1400,
    row_px: int = 64,
    label_px: int = 560,
    empty: str = "—",
    fmt: Callable[[float], str] = _count,
) -> str:
    """Horizontal bars, one per (label, value) row, label on the left, value at the bar's end."""
    top = 90
    height = top + max(1, len(items)) * row_px + 30
    body: list[str] = []
    if not items:
        body.append(_text(24, top + 44, empty, LABEL_PX, "start"))
        return _frame(width, height, title, body)
    peak = max(v for _, v in items) or 1
    plot_w = width - label_px - 140
    for i, (label, v) in enumerate(items):
        y = top + i * row_px
        w = plot_w * v / peak
        body.append(_text(label_px - 16, y + row_px / 2 + 10, _clip(label, 22), LABEL_PX, "end"))
        body.append(
            f'<rect x="{label_px}" y="{y + 8}" width="{max(w, 2):.1f}" height="{row_px - 16}"'
            f' fill="{BAR}"/>'
        )
        body.append(
            _text(
                label_px + w + 14,
                y + row_px / 2 + 11,
                fmt(v),
                VALUE_PX,
                "start",
                font_weight="bold",
            )
        )
    return _frame(width, height, title, body)


def _clip(s: str, wide_units: int) -> str:
    """Cut a label to about `wide_units` CJK-width characters (latin counts half)."""
    out, used = "", 0.0
    for ch in s:
        used += 1 if ord(ch) > 0x2E80 else 0.55
        if used > wide_units:
            return out + "…"
        out += ch
    return out


def line_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    width: int = 1400,
    height: int = 620,
    y_max: float = 1.0,
    target: float | None = None,
    target_label: str = "",
    label_every: int = 1,
    fmt: Callable[[float], str] = lambda v: f"{v * 100:.0f}%",
) -> str:
    """A thick line with dots (gaps where a value is None), optional dashed target line."""
    left, right, top, bottom = 110, 70, 110, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    body: list[str] = []
    for i in range(5):
        v = y_max * i / 4
        y = top + plot_h - plot_h * i / 4
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"'
            f' stroke="{GRID}" stroke-width="1"/>'
        )
        body.append(_text(left - 12, y + 10, fmt(v), LABEL_PX, "end"))
    step = plot_w / max(1, len(labels) - 1) if len(labels) > 1 else 0

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + step * i, top + plot_h - plot_h * min(v, y_max) / y_max

    if target is not None:
        _, ty = xy(0, target)
        body.append(
            f'<line x1="{left}" y1="{ty:.1f}" x2="{width - right}" y2="{ty:.1f}"'
            f' stroke="{TARGET}" stroke-width="4" stroke-dasharray="16 10"/>'
        )
        if target_label:  # a legend at the top right, where it never covers data
            lx = width - right - 20 - LABEL_PX * len(target_label) * 0.6
            body.append(
                f'<line x1="{lx - 70:.1f}" y1="{TITLE_PX:.1f}" x2="{lx - 14:.1f}" y2="{TITLE_PX:.1f}"'
                f' stroke="{TARGET}" stroke-width="4" stroke-dasharray="16 10"/>'
            )
            body.append(_text(lx, TITLE_PX + 10, target_label, LABEL_PX, "start"))
    runs: list[list[tuple[float, float]]] = [[]]
    for i, point in enumerate(values):
        if point is None:
            runs.append([])
            continue
        runs[-1].append(xy(i, point))
    for run in runs:
        if len(run) > 1:
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            body.append(f'<polyline points="{pts}" fill="none" stroke="{BAR}" stroke-width="6"/>')
        for x, y in run:
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="{BAR}"/>')
    last = next(((i, v) for i, v in reversed(list(enumerate(values))) if v is not None), None)
    if last is not None:
        x, y = xy(*last)
        body.append(_text(x - 14, y - 18, fmt(last[1]), VALUE_PX, "end", font_weight="bold"))
    for i, label in enumerate(labels):
        if i % label_every == 0 or i == len(labels) - 1:
            body.append(_text(left + step * i, height - bottom + 38, label))
    body.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}"'
        f' stroke="{INK}" stroke-width="3"/>'
    )
    return _frame(width, height, title, body)

"""The validated, immutable shape of guidance scripts and the library that holds them."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UI_LANGS = ("zh_CN", "en")
# Dialect wordings a step may carry besides the UI languages (spoken Chinese varieties, same
# ids as the dialect registry). Add an id here to let scripts carry that dialect's wording.
DIALECTS = ("yue", "wuu", "nan")

# What fits one screen at the caller's font size (instruction text >= 32 px on a 360 px wide
# phone is about 10 CJK characters or 20 Latin characters per line). Chinese-family wordings
# are measured in "wide units" (a CJK/full-width character is 1, anything narrow 0.5); English
# in characters. (wide units for zh_CN/dialects, characters for en)
LIMITS: dict[str, tuple[float, int]] = {
    "text": (60, 140),
    "hint": (60, 140),
    "done": (30, 80),
    "alt": (80, 200),
    "title": (16, 48),
    "summary": (60, 160),
    "free_text": (60, 140),
}


def wide_units(text: str) -> float:
    """Screen width of text in CJK characters (narrow characters count half)."""
    return sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.5 for c in text)


def too_long(kind: str, lang: str, text: str) -> str | None:
    """Why `text` does not fit one caller screen as a `kind` in `lang`, or None."""
    cjk_limit, latin_limit = LIMITS[kind]
    if lang == "en":
        if len(text) > latin_limit:
            return f"{len(text)} characters, at most {latin_limit} fit one screen"
        return None
    units = wide_units(text)
    if units > cjk_limit:
        return f"{units:g} CJK characters wide, at most {cjk_limit:g} fit one screen"
    return None


def pick(texts: Mapping[str, str], lang: str, dialect: str | None = None) -> str:
    """The wording for a UI language, preferring a dialect's wording for Chinese UIs."""
    if dialect and lang != "en" and dialect in texts:
        return texts[dialect]
    return texts.get(lang) or texts.get("zh_CN") or texts.get("en") or ""


@dataclass(frozen=True)
class Highlight:
    """A box on a picture, in fractions of its width and height."""

    x: float
    y: float
    w: float
    h: float

    def to_json(self) -> dict[str, float]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


@dataclass(frozen=True)
class Step:
    """One big step: what to do, what it looks like, and what to do when it can't be found."""

    id: str
    text: Mapping[str, str]
    done: Mapping[str, str] = field(default_factory=dict)
    hint: Mapping[str, str] = field(default_factory=dict)
    alt: Mapping[str, str] = field(default_factory=dict)
    picture: str | None = None  # name relative to the library root, posix separators
    highlight: Highlight | None = None
    on_help: str | None = None
    detour: bool = False  # off the main path; reached only through on_help


@dataclass(frozen=True)
class Script:
    """An ordered set of steps for one task in one kind of app."""

    id: str
    title: Mapping[str, str]
    summary: Mapping[str, str]
    app: str
    tags: tuple[str, ...]
    steps: tuple[Step, ...]
    path: Path | None = None

    @property
    def main_steps(self) -> tuple[Step, ...]:
        """Steps on the main path, in order (detours excluded)."""
        return tuple(s for s in self.steps if not s.detour)

    def step(self, step_id: str) -> Step | None:
        """The step with this id, or None."""
        return next((s for s in self.steps if s.id == step_id), None)

    def number(self, step_id: str) -> int | None:
        """1-based position of a main-path step, or None for a detour."""
        for n, s in enumerate(self.main_steps, start=1):
            if s.id == step_id:
                return n
        return None

    def after(self, step_id: str) -> Step | None:
        """The main-path step following `step_id` (None at the end)."""
        main = self.main_steps
        for i, s in enumerate(main):
            if s.id == step_id:
                return main[i + 1] if i + 1 < len(main) else None
        return None

    def before(self, step_id: str) -> Step | None:
        """The main-path step preceding `step_id` (None at the start)."""
        main = self.main_steps
        for i, s in enumerate(main):
            if s.id == step_id:
                return main[i - 1] if i > 0 else None
        return None


@dataclass
class Library:
    """All valid scripts, and the pictures they reference (the only files ever served)."""

    scripts: dict[str, Script]
    root: Path
    pictures: dict[str, Path] = field(default_factory=dict)
    picture_base: str = "/guidance/"

    def __contains__(self, script_id: object) -> bool:
        return script_id in self.scripts

    def __iter__(self) -> Iterator[Script]:
        return iter(sorted(self.scripts.values(), key=lambda s: s.id))

    def __len__(self) -> int:
        return len(self.scripts)

    def get(self, script_id: str) -> Script | None:
        """The script with this id, or None."""
        return self.scripts.get(script_id)

    def picture_url(self, name: str | None) -> str | None:
        """The URL the pages load a picture from."""
        if not name:
            return None
        return self.picture_base.rstrip("/") + "/" + name

    def picture_path(self, name: str) -> Path | None:
        """The file behind a picture name, only if a valid script references it."""
        return self.pictures.get(name)

    def step_json(self, script: Script, step: Step, lang: str) -> dict[str, Any]:
        """One step as the agent panel shows it."""
        return {
            "id": step.id,
            "number": script.number(step.id),
            "detour": step.detour,
            "text": pick(step.text, lang),
            "dialects": {d: step.text[d] for d in DIALECTS if d in step.text},
            "done": pick(step.done, lang),
            "hint": pick(step.hint, lang) or None,
            "on_help": step.on_help,
            "picture_url": self.picture_url(step.picture),
            "highlight": step.highlight.to_json() if step.highlight else None,
            "alt": pick(step.alt, lang),
        }

    def to_json(self, lang: str = "zh_CN") -> dict[str, Any]:
        """The `/api/guidance/scripts` body: every script with its steps in one language."""
        return {
            "lang": lang,
            "scripts": [
                {
                    "id": s.id,
                    "app": s.app,
                    "tags": list(s.tags),
                    "title": pick(s.title, lang),
                    "summary": pick(s.summary, lang),
                    "total": len(s.main_steps),
                    "steps": [self.step_json(s, st, lang) for st in s.steps],
                }
                for s in self
            ],
        }

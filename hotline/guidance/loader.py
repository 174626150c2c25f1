"""Load and validate guidance scripts; a bad file is reported with its line and left out.

tomllib gives no line numbers for values, so an error's line is found by searching the raw
text: the `[[steps]]` block of the step in question, then the key's line inside it (falling
back to the block's first line). That is exact for the usual layout and close otherwise.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.guidance.model import (
    DIALECTS,
    UI_LANGS,
    Highlight,
    Library,
    Script,
    Step,
    too_long,
)

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TOP_KEYS = {"id", "title", "summary", "app", "tags", "steps"}
STEP_KEYS = {"id", "text", "done", "hint", "alt", "picture", "highlight", "on_help", "detour"}
PICTURE_SUFFIXES = {".svg", ".png", ".webp"}
MAX_STEPS = 12
# Pictures are served from our origin, so an SVG must not be able to run or fetch anything.
UNSAFE_SVG = re.compile(
    r"<\s*(script|foreignObject|iframe|object|embed)\b|\son[a-z]+\s*=|javascript:|"
    r"(xlink:)?href\s*=\s*[\"'](?!#)|url\(\s*[\"']?(?!#)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ScriptError:
    """One problem in one script file, printed as `file:line: message`."""

    path: Path
    line: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class _Lines:
    """Finds the line of a key path such as ("steps", 2, "text", "en") in the raw TOML."""

    def __init__(self, raw: str) -> None:
        self.lines = raw.splitlines()
        self.step_starts = [
            i for i, line in enumerate(self.lines) if re.match(r"\s*\[\[\s*steps\s*\]\]", line)
        ]

    def find(self, *keys: str | int) -> int:
        """1-based line of the deepest key found along `keys`."""
        start, end = 0, (self.step_starts[0] if self.step_starts else len(self.lines))
        line = 0
        for key in keys:
            if isinstance(key, int):
                if key >= len(self.step_starts):
                    break
                start = self.step_starts[key]
                end = (
                    self.step_starts[key + 1]
                    if key + 1 < len(self.step_starts)
                    else len(self.lines)
                )
                line = start
                continue
            if key == "steps":
                if self.step_starts:
                    line = self.step_starts[0]
                continue
            pattern = re.compile(rf"(^|[\s{{,.\[]){re.escape(key)}\s*(=|\]|\.)")
            hit = next((i for i in range(start, end) if pattern.search(self.lines[i])), None)
            if hit is None:
                break
            start, line = hit, hit
        return line + 1


class _Checker:
    """Validates one parsed file, collecting every error rather than stopping at the first."""

    def __init__(self, path: Path, raw: str, root: Path, dialects: Iterable[str]) -> None:
        self.path, self.root = path, root
        self.lines = _Lines(raw)
        self.dialects = tuple(dialects)
        self.errors: list[ScriptError] = []
        self.pictures: dict[str, Path] = {}

    def err(self, kind: str, message: str, *keys: str | int) -> None:
        self.errors.append(ScriptError(self.path, self.lines.find(*keys), kind, message))

    def unknown(
        self, table: Mapping[str, Any], allowed: set[str], where: str, *keys: str | int
    ) -> None:
        for key in sorted(set(table) - allowed):
            self.err("unknown_key", f"unknown key {key!r} in {where}", *keys, key)

    def texts(
        self, kind: str, value: Any, where: str, *keys: str | int, extra: tuple[str, ...] = ()
    ) -> dict[str, str]:
        """A per-language table: every UI language present, each fitting one screen."""
        if not isinstance(value, dict):
            self.err("bad_value", f"{where} must be a table of languages", *keys)
            return {}
        self.unknown(value, set(UI_LANGS) | set(extra), where, *keys)
        out: dict[str, str] = {}
        for lang in UI_LANGS:
            if lang not in value:
                self.err("missing_translation", f"{where} has no {lang} translation", *keys)
        for lang, text in value.items():
            if lang not in UI_LANGS and lang not in extra:
                continue
            if not isinstance(text, str) or not text.strip():
                self.err("bad_value", f"{where}.{lang} must be non-empty text", *keys, lang)
                continue
            problem = too_long(kind, "en" if lang == "en" else "zh", text.strip())
            if problem:
                self.err("too_long", f"{where}.{lang} is too long: {problem}", *keys, lang)
            out[lang] = text.strip()
        return out

    def script(self, data: dict[str, Any]) -> Script | None:
        self.unknown(data, TOP_KEYS, "script")
        script_id = data.get("id")
        if not isinstance(script_id, str) or not ID_RE.match(script_id):
            self.err(
                "missing_field" if script_id is None else "bad_value",
                "script id must be lowercase letters, digits, '-' or '_'",
                "id",
            )
        for key in ("title", "summary"):
            if key not in data:
                self.err("missing_field", f"script has no {key}", key)
        title = self.texts("title", data.get("title", {}), "title", "title")
        summary = self.texts("summary", data.get("summary", {}), "summary", "summary")
        app = data.get("app", "generic")
        if not isinstance(app, str) or not ID_RE.match(app):
            self.err("bad_value", "app must be an id such as generic, shopping, payment", "app")
        tags = data.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            self.err("bad_value", "tags must be a list of strings", "tags")
            tags = []
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            self.err("missing_field", "script has no [[steps]]", "steps")
            raw_steps = []
        elif len(raw_steps) > MAX_STEPS:
            self.err("bad_value", f"{len(raw_steps)} steps, at most {MAX_STEPS}", "steps")
        steps = [self.step(i, s) for i, s in enumerate(raw_steps)]
        valid = [s for s in steps if s is not None]
        self.links(valid)
        if self.errors:
            return None
        return Script(
            id=str(script_id),
            title=title,
            summary=summary,
            app=app,
            tags=tuple(tags),
            steps=tuple(valid),
            path=self.path,
        )

    def step(self, i: int, data: Any) -> Step | None:
        if not isinstance(data, dict):
            self.err("bad_value", f"step {i + 1} must be a table", "steps", i)
            return None
        self.unknown(data, STEP_KEYS, f"step {i + 1}", "steps", i)
        step_id = data.get("id")
        if not isinstance(step_id, str) or not ID_RE.match(step_id):
            self.err(
                "missing_field" if step_id is None else "bad_value",
                f"step {i + 1} needs an id of lowercase letters, digits, '-' or '_'",
                "steps",
                i,
                "id",
            )
            step_id = f"#{i + 1}"
        where = f"step {step_id!r}"
        if "text" not in data:
            self.err("missing_field", f"{where} has no text", "steps", i)
        if "done" not in data:
            self.err("missing_field", f"{where} has no done (what done means)", "steps", i)
        texts = {}
        for key in ("text", "done", "hint", "alt"):
            if key in data:
                extra = self.dialects if key in ("text", "done", "hint") else ()
                texts[key] = self.texts(
                    key, data[key], f"{where} {key}", "steps", i, key, extra=extra
                )
        picture = self.picture(data.get("picture"), where, i)
        if picture and "alt" not in data:
            self.err(
                "missing_field", f"{where} has a picture but no alt text", "steps", i, "picture"
            )
        highlight = self.highlight(data.get("highlight"), where, i, has_picture="picture" in data)
        on_help = data.get("on_help")
        if on_help is not None and not isinstance(on_help, str):
            self.err("bad_value", f"{where} on_help must be a step id", "steps", i, "on_help")
            on_help = None
        detour = data.get("detour", False)
        if not isinstance(detour, bool):
            self.err("bad_value", f"{where} detour must be true or false", "steps", i, "detour")
            detour = False
        return Step(
            id=step_id,
            text=texts.get("text", {}),
            done=texts.get("done", {}),
            hint=texts.get("hint", {}),
            alt=texts.get("alt", {}),
            picture=picture,
            highlight=highlight,
            on_help=on_help,
            detour=detour,
        )

    def picture(self, value: Any, where: str, i: int) -> str | None:
        if value is None:
            return None
        keys: tuple[str | int, ...] = ("steps", i, "picture")
        if not isinstance(value, str) or not value or Path(value).is_absolute():
            self.err("bad_value", f"{where} picture must be a relative file name", *keys)
            return None
        file = (self.path.parent / value).resolve()
        root = self.root.resolve()
        if not file.is_relative_to(root):
            self.err("picture_not_found", f"{where} picture {value!r} is outside {root}", *keys)
            return None
        if file.suffix.lower() not in PICTURE_SUFFIXES:
            self.err(
                "bad_value", f"{where} picture must be one of {sorted(PICTURE_SUFFIXES)}", *keys
            )
            return None
        if not file.is_file():
            self.err("picture_not_found", f"{where} picture not found: {file}", *keys)
            return None
        if file.suffix.lower() == ".svg":
            body = file.read_text(encoding="utf-8", errors="replace")
            if "<svg" not in body:
                self.err("unsafe_picture", f"{where} picture {value!r} is not an SVG", *keys)
                return None
            bad = UNSAFE_SVG.search(body)
            if bad:
                self.err(
                    "unsafe_picture",
                    f"{where} picture {value!r} has active or external content "
                    f"({bad.group(0).strip()!r})",
                    *keys,
                )
                return None
        name = file.relative_to(root).as_posix()
        self.pictures[name] = file
        return name

    def highlight(self, value: Any, where: str, i: int, has_picture: bool) -> Highlight | None:
        if value is None:
            return None
        keys: tuple[str | int, ...] = ("steps", i, "highlight")
        if not has_picture:
            self.err("bad_value", f"{where} has a highlight but no picture", *keys)
            return None
        if not isinstance(value, dict):
            self.err("bad_value", f"{where} highlight must be {{x, y, w, h}}", *keys)
            return None
        self.unknown(value, {"x", "y", "w", "h"}, f"{where} highlight", *keys)
        nums: dict[str, float] = {}
        for k in ("x", "y", "w", "h"):
            v = value.get(k)
            if isinstance(v, bool) or not isinstance(v, int | float):
                self.err("bad_value", f"{where} highlight needs a number {k}", *keys)
                return None
            nums[k] = float(v)
        eps = 1e-9
        inside = (
            all(0 <= nums[k] <= 1 for k in nums)
            and nums["w"] > 0
            and nums["h"] > 0
            and nums["x"] + nums["w"] <= 1 + eps
            and nums["y"] + nums["h"] <= 1 + eps
        )
        if not inside:
            self.err(
                "highlight_outside",
                f"{where} highlight {nums} is outside the picture (fractions 0..1, "
                "x+w and y+h at most 1)",
                *keys,
            )
            return None
        return Highlight(**nums)

    def links(self, steps: list[Step]) -> None:
        """Unique step ids, branches to existing steps, every detour reachable."""
        seen: dict[str, int] = {}
        for i, s in enumerate(steps):
            if s.id in seen:
                self.err("duplicate_id", f"duplicate step id {s.id!r}", "steps", i, "id")
            seen.setdefault(s.id, i)
        targets = set()
        for i, s in enumerate(steps):
            if s.on_help is None:
                continue
            if s.on_help not in seen:
                self.err(
                    "missing_step",
                    f"step {s.id!r} on_help goes to missing step {s.on_help!r}",
                    "steps",
                    i,
                    "on_help",
                )
            elif s.on_help == s.id:
                self.err(
                    "missing_step", f"step {s.id!r} on_help goes to itself", "steps", i, "on_help"
                )
            targets.add(s.on_help)
        for i, s in enumerate(steps):
            if s.detour and s.id not in targets:
                self.err(
                    "unreachable_step",
                    f"detour step {s.id!r} is no step's on_help",
                    "steps",
                    i,
                    "detour",
                )
        if steps and all(s.detour for s in steps):
            self.err("missing_field", "script has no main-path step (all are detours)", "steps")


def _syntax_line(exc: tomllib.TOMLDecodeError) -> int:
    m = re.search(r"at line (\d+)", str(exc))
    return int(m.group(1)) if m else 1


def _check_file(
    path: Path, root: Path, dialects: Iterable[str]
) -> tuple[Script | None, dict[str, Path], list[ScriptError]]:
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, {}, [ScriptError(path, 1, "unreadable", f"cannot read: {exc}")]
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        return None, {}, [ScriptError(path, _syntax_line(exc), "syntax", f"TOML: {msg}")]
    checker = _Checker(path, raw, root, dialects)
    script = checker.script(data)
    return script, checker.pictures, checker.errors


def load_library(
    directory: Path | str, *, picture_base: str = "/guidance/", dialects: Iterable[str] = DIALECTS
) -> tuple[Library, list[ScriptError]]:
    """Load every `*.toml` under `directory`; invalid scripts are left out and reported."""
    root = Path(directory)
    library = Library(scripts={}, root=root, picture_base=picture_base)
    if not root.is_dir():
        return library, [ScriptError(root, 0, "unreadable", "no such scripts directory")]
    errors: list[ScriptError] = []
    dialects = tuple(dialects)
    for path in sorted(root.rglob("*.toml")):
        script, pictures, errs = _check_file(path, root, dialects)
        if script is not None and script.id in library.scripts:
            first = library.scripts[script.id].path
            line = _Lines(path.read_text(encoding="utf-8")).find("id")
            errs = [
                ScriptError(
                    path,
                    line,
                    "duplicate_id",
                    f"duplicate script id {script.id!r} (also in {first})",
                )
            ]
            script = None
        errors.extend(errs)
        if script is not None:
            library.scripts[script.id] = script
            library.pictures.update(pictures)
    return library, errors


def check(path: Path | str, *, dialects: Iterable[str] = DIALECTS) -> list[ScriptError]:
    """Every error in one script file, or in every script of a directory."""
    path = Path(path)
    if path.is_dir():
        return load_library(path, dialects=dialects)[1]
    if not path.is_file():
        return [ScriptError(path, 0, "unreadable", "no such file")]
    return _check_file(path, path.parent, tuple(dialects))[2]

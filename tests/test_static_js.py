"""What ESLint's recommended rules do not see in static/: imports between our modules name
real exports (a missing one is a SyntaxError that blanks the page), one `fmt`, and every
`hotline:*` event dispatched has a listener (an event nobody hears is dead code)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "static"
SOURCES = sorted(STATIC.rglob("*.js"))

IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"([^"]+)";', re.M)
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function\*?|const|let|class)\s+(\w+)", re.M)


def _module(spec: str, importer: Path) -> Path | None:
    if spec.startswith("/static/"):
        return ROOT / spec.lstrip("/")
    if spec.startswith("."):
        return (importer.parent / spec).resolve()
    return None


def test_imported_names_are_exported() -> None:
    assert SOURCES
    wrong = []
    for path in SOURCES:
        for names, spec in IMPORT.findall(path.read_text(encoding="utf-8")):
            target = _module(spec, path)
            if target is None:
                continue
            exported = set(EXPORT.findall(target.read_text(encoding="utf-8")))
            for name in (n.split(" as ")[0].strip() for n in names.split(",")):
                if name and name not in exported:
                    wrong.append(f"{path.relative_to(ROOT)}: {name} from {spec}")
    assert wrong == []


def test_one_fmt() -> None:
    defined = [
        str(p.relative_to(ROOT))
        for p in SOURCES
        if re.search(r"\b(function\s+fmt\b|(const|let|var)\s+fmt\s*=)", p.read_text("utf-8"))
    ]
    assert defined == ["static/js/dom.js"]


def test_every_dispatched_event_is_heard() -> None:
    texts = [p.read_text(encoding="utf-8") for p in SOURCES]
    texts += [p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("*.py")]
    both = "\n".join(texts)
    sent = set(re.findall(r'new CustomEvent\("(hotline:[\w-]+)"', both))
    heard = set(re.findall(r'addEventListener\("(hotline:[\w-]+)"', both))
    assert sent - heard == set()

"""Script validation: every error kind, with its file and line; the built-in library."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from hotline.guidance import cli as guidance_cli
from hotline.guidance.loader import check, load_library
from hotline.guidance.model import too_long

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "hotline" / "guidance" / "scripts"

SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 16"><rect width="9" height="16"/></svg>'
)

GOOD = """\
id = "demo"
app = "shopping"
tags = ["a"]
title = { zh_CN = "标题", en = "Title" }
summary = { zh_CN = "简介", en = "Summary" }

[[steps]]
id = "one"
text = { zh_CN = "点「我的」。", en = "Tap Me.", yue = "撳「我的」。" }
done = { zh_CN = "好了", en = "Done" }
hint = { zh_CN = "在右下角。", en = "Bottom right." }
on_help = "aside"
picture = "pictures/p.svg"
highlight = { x = 0.5, y = 0.5, w = 0.5, h = 0.5 }
alt = { zh_CN = "图", en = "Picture" }

[[steps]]
id = "two"
text = { zh_CN = "点「设置」。", en = "Tap Settings." }
done = { zh_CN = "好了", en = "Done" }

[[steps]]
id = "aside"
detour = true
text = { zh_CN = "先关掉广告。", en = "Close the advert first." }
done = { zh_CN = "好了", en = "Done" }
"""


def write(tmp_path: Path, text: str, name: str = "demo.toml") -> Path:
    (tmp_path / "pictures").mkdir(exist_ok=True)
    (tmp_path / "pictures" / "p.svg").write_text(SVG)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, nth: int = 1) -> int:
    hits = [i + 1 for i, ln in enumerate(text.splitlines()) if needle in ln]
    return hits[nth - 1]


def test_good_script_is_valid(tmp_path: Path) -> None:
    assert check(write(tmp_path, GOOD)) == []
    library, errors = load_library(tmp_path)
    assert errors == []
    script = library.get("demo")
    assert [s.id for s in script.main_steps] == ["one", "two"]
    assert script.step("aside").detour
    assert library.picture_path("pictures/p.svg") == (tmp_path / "pictures" / "p.svg").resolve()
    assert library.picture_path("../secret") is None


BROKEN = [
    # (name, old, new, kind, line-needle, nth occurrence of the needle)
    (
        "missing translation",
        ', en = "Tap Me."',
        "",
        "missing_translation",
        'text = { zh_CN = "点「我的」',
        1,
    ),
    (
        "missing title lang",
        'title = { zh_CN = "标题", en = "Title" }',
        'title = { zh_CN = "标题" }',
        "missing_translation",
        "title =",
        1,
    ),
    (
        "picture not found",
        "pictures/p.svg",
        "pictures/nope.svg",
        "picture_not_found",
        "picture =",
        1,
    ),
    (
        "picture outside root",
        "pictures/p.svg",
        "../../etc/passwd.svg",
        "picture_not_found",
        "picture =",
        1,
    ),
    ("highlight x+w > 1", "x = 0.5, y", "x = 0.6, y", "highlight_outside", "highlight =", 1),
    ("highlight negative", "y = 0.5, w", "y = -0.1, w", "highlight_outside", "highlight =", 1),
    ("highlight over 1", "h = 0.5", "h = 1.5", "highlight_outside", "highlight =", 1),
    (
        "branch to missing step",
        'on_help = "aside"',
        'on_help = "nowhere"',
        "missing_step",
        "on_help",
        1,
    ),
    ("duplicate step id", 'id = "two"', 'id = "one"', "duplicate_id", 'id = "one"', 2),
    ("instruction too long", "点「设置」。", "点" * 61, "too_long", 'text = { zh_CN = "点点', 1),
    ("english too long", "Tap Settings.", "x" * 141, "too_long", "xxxx", 1),
    (
        "unknown top key",
        'app = "shopping"',
        'app = "shopping"\ncolour = "red"',
        "unknown_key",
        "colour",
        1,
    ),
    (
        "unknown step key",
        'id = "two"',
        'id = "two"\nnext = "one"',
        "unknown_key",
        'next = "one"',
        1,
    ),
    ("unknown language", 'yue = "撳「我的」。"', 'zh_cn = "撳"', "unknown_key", "zh_cn", 1),
    (
        "no done",
        'done = { zh_CN = "好了", en = "Done" }\n\n[[steps]]\nid = "aside"',
        '\n[[steps]]\nid = "aside"',
        "missing_field",
        "[[steps]]",
        2,
    ),
    (
        "picture without alt",
        'alt = { zh_CN = "图", en = "Picture" }',
        "",
        "missing_field",
        "picture =",
        1,
    ),
    ("unreachable detour", 'on_help = "aside"\n', "", "unreachable_step", "detour = true", 1),
    ("bad id", 'id = "demo"', 'id = "Demo Script"', "bad_value", 'id = "Demo Script"', 1),
    ("syntax", 'app = "shopping"', "app = shopping", "syntax", "app = shopping", 1),
]


@pytest.mark.parametrize(
    ("old", "new", "kind", "needle", "nth"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_script_reports_kind_and_line(
    tmp_path: Path, old: str, new: str, kind: str, needle: str, nth: int
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    path = write(tmp_path, text)
    errors = check(path)
    kinds = [e.kind for e in errors]
    assert kind in kinds, errors
    err = next(e for e in errors if e.kind == kind)
    assert err.path == path
    assert err.line == line_of(text, needle, nth), (str(err), text)
    assert str(err).startswith(f"{path}:{err.line}: ")


def test_unsafe_svg_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    (tmp_path / "pictures" / "p.svg").write_text(SVG.replace("<rect", '<rect onload="x()"'))
    assert [e.kind for e in check(path)] == ["unsafe_picture"]


def test_invalid_script_is_left_out_never_raises(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    write(
        tmp_path,
        GOOD.replace('id = "demo"', 'id = "other"').replace("Tap Me.", "x" * 200),
        "bad.toml",
    )
    write(tmp_path, "this is = = not toml", "garbage.toml")
    library, errors = load_library(tmp_path)
    assert list(library.scripts) == ["demo"]
    assert {e.path.name for e in errors} == {"bad.toml", "garbage.toml"}


def test_duplicate_script_id_across_files(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, GOOD, "b.toml")
    library, errors = load_library(tmp_path)
    assert list(library.scripts) == ["demo"]
    assert [(e.kind, e.path.name, e.line) for e in errors] == [("duplicate_id", "b.toml", 1)]


def test_length_limits() -> None:
    assert too_long("text", "zh", "字" * 60) is None
    assert too_long("text", "zh", "字" * 61)
    assert too_long("text", "zh", "a" * 120) is None  # narrow characters count half
    assert too_long("text", "en", "a" * 140) is None
    assert too_long("text", "en", "a" * 141)


def test_builtin_library_loads_clean() -> None:
    library, errors = load_library(SCRIPTS)
    assert errors == [], "\n".join(map(str, errors))
    assert len(library) >= 8
    for script in library:
        assert 3 <= len(script.main_steps) <= 6, script.id
        for step in script.steps:
            assert step.picture, (script.id, step.id)
            assert set(step.text) >= {"zh_CN", "en"}
    assert any("yue" in st.text for s in library for st in s.steps)
    fraud = library.get("stop-suspicious-transfer")
    assert any("96110" in st.text["zh_CN"] for st in fraud.steps)
    body = library.to_json("en")
    json.dumps(body)
    assert body["scripts"][0]["steps"][0]["picture_url"].startswith("/guidance/pictures/")


def cfg_for(path: Path) -> SimpleNamespace:
    return SimpleNamespace(scripts_dir=path)


def run_cli(argv: list[str], cfg: SimpleNamespace) -> int:
    parser = argparse.ArgumentParser()
    guidance_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.handler(args, cfg)


def test_cli_check_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["scripts", "check"], cfg_for(SCRIPTS)) == 0
    assert "all valid" in capsys.readouterr().out
    bad = write(tmp_path, GOOD.replace("pictures/p.svg", "pictures/nope.svg"))
    assert run_cli(["scripts", "check", str(bad)], cfg_for(SCRIPTS)) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{bad}:{line_of(GOOD, 'picture =')}: ")
    assert run_cli(["scripts", "list"], cfg_for(SCRIPTS)) == 0
    assert "find-hidden-order" in capsys.readouterr().out
    assert run_cli(["scripts", "list", "--json", "--lang", "en"], cfg_for(SCRIPTS)) == 0
    assert json.loads(capsys.readouterr().out)["lang"] == "en"


def test_strings_have_both_languages() -> None:
    from hotline.i18n import subset

    strings = {lang: subset(lang, ("guidance.",)) for lang in ("zh_CN", "en")}
    assert set(strings["zh_CN"]) == set(strings["en"])
    assert all(k.startswith("guidance.") for k in strings["en"])
    # every key the components use exists in the catalogue
    used: set[str] = set()
    import re

    for js in (ROOT / "static" / "guidance").glob("*.js"):
        used |= set(re.findall(r'"(guidance\.[a-z_.]+)"', js.read_text()))
    states = {
        f"guidance.state.{s}"
        for s in ("pending", "sent", "shown", "listening", "done", "needs_help", "skipped")
    }
    assert used | states <= set(strings["en"]), used - set(strings["en"])

"""One catalogue per language, both complete; every key the pages and scripts use exists."""

from __future__ import annotations

import re
from pathlib import Path

from hotline.i18n import catalogue

ROOT = Path(__file__).resolve().parent.parent


def test_catalogues_have_the_same_keys() -> None:
    zh, en = catalogue("zh_CN"), catalogue("en")
    assert set(zh) - set(en) == set()
    assert set(en) - set(zh) == set()
    assert all(v.strip() for v in zh.values()) and all(v.strip() for v in en.values())


def test_placeholders_match_between_languages() -> None:
    zh, en = catalogue("zh_CN"), catalogue("en")
    for key in zh:
        assert set(re.findall(r"\{(\w+)\}", zh[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key


def test_every_key_used_in_templates_exists() -> None:
    keys = set(catalogue("zh_CN"))
    used = set()
    for page in (ROOT / "static" / "pages").glob("*.html"):
        used |= set(
            re.findall(r"(?<![\w.])t\('([a-z_]+\.[a-z_.]+)'", page.read_text(encoding="utf-8"))
        )
    used = {k for k in used if not k.endswith(".")}
    assert used - keys == set()


def test_every_string_key_used_in_console_scripts_exists() -> None:
    keys = set(catalogue("zh_CN"))
    used = set()
    for script in ("caller.js", "agent.js"):
        text = (ROOT / "static" / "js" / script).read_text(encoding="utf-8")
        used |= set(re.findall(r'S\["([a-z_.]+)"\]', text))
    assert used - keys == set()

"""Every dialect of the registry, walked: its elders' page is in the dialect's UI language and
every spoken prompt is in its voice, with its own wording where the registry has it (Cantonese
for yue, Korean for ko) and the documented fallback otherwise (catalogue text, read by the
dialect's voice when it reads that language, else by the language's voice)."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from hotline.asr.registry import RegistryError, parse_registry
from hotline.db import elders as elders_db
from hotline.i18n import t
from hotline.prompts import voice_for
from tests.support import Client, ServerThread
from tests.test_call_ws import run

BOOT = re.compile(r'<script type="application/json" id="boot">(.*?)</script>', re.S)
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _get(server: ServerThread, path: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(server.http + path, timeout=30) as r:
        return r.headers["Content-Type"], r.read()


def test_every_dialect_speaks_in_its_voice_and_wording(server: ServerThread) -> None:
    registry = server.services.registry
    prompts = server.services.prompts
    assert {"yue", "ko"} <= set(registry.dialects)
    for d in registry.dialects.values():
        lang = d.ui_lang
        elder = elders_db.add(server.db, f"elder-{d.id}", dialect=d.id, lang=lang)
        link = elders_db.new_link(server.db, elder.id).token
        _, body = _get(server, f"/c/{link}")
        html = body.decode()
        assert f'<html lang="{"en" if lang == "en" else "zh-CN"}">' in html, d.id
        found = BOOT.search(html)
        assert found is not None, d.id
        boot = json.loads(found.group(1))
        assert boot["lang"] == lang and boot["dialect"] == d.id
        for name, url in boot["prompts"].items():
            key = f"caller.say_{name}"
            text, voice = prompts.decode(url.removeprefix("/tts/").removesuffix(".wav"))
            if key in d.wording:
                assert (text, voice) == (d.wording[key], d.voice), (d.id, key)
            else:  # the documented fallback
                assert text == t(lang, key), (d.id, key)
                assert voice == voice_for(lang, d.voice), (d.id, key)
        # The spoken place in line follows the same rule.
        text, voice = prompts.place_text(lang, d.id, 2, 5)
        if "caller.say_queue" in d.wording:
            assert voice == d.voice and text == d.wording["caller.say_queue"].format(
                ahead=2, minutes=5
            )
        else:
            assert text == t(lang, "caller.say_queue", ahead=2, minutes=5)
        text, voice = prompts.place_text(lang, d.id, "50plus", "120plus")
        key = "caller.say_queue_many_long"
        expected = d.wording.get(key, t(lang, key)).format(ahead=50, minutes=120)
        assert text == expected and voice == (d.voice if key in d.wording else voice), d.id
        # Each voice really renders.
        kind, wav = _get(server, boot["prompts"]["intro"])
        assert kind == "audio/wav" and wav[:4] == b"RIFF", d.id

    yue, ko = registry.dialects["yue"], registry.dialects["ko"]
    assert yue.voice == "sit/yue" and "撳" in yue.wording["caller.say_intro"]  # Cantonese words
    assert ko.voice == "ko" and HANGUL.search(ko.wording["caller.say_intro"])
    # A dialect without wording and without its own Chinese voice (none yet) would fall back
    # to the catalogue read by the language's voice: Korean text is never read as Mandarin.
    assert voice_for("zh_CN", "ko") == "sit/cmn-latn-pinyin"


def test_unstaffed_message_is_spoken_in_the_dialect(server: ServerThread) -> None:
    prompts = server.services.prompts
    ko = server.services.registry.dialects["ko"]
    elder = elders_db.add(server.db, "김할머니", dialect="ko", lang=ko.ui_lang)
    link = elders_db.new_link(server.db, elder.id).token

    async def scenario() -> dict:
        caller = await Client.open(f"{server.ws}?role=caller&link={link}")
        await caller.expect("hello")
        await caller.send({"type": "call"})
        msg = await caller.expect("queue", state="unstaffed")
        await caller.close()
        return msg

    msg = run(scenario())
    text, voice = prompts.decode(msg["say"].removeprefix("/tts/").removesuffix(".wav"))
    assert voice == "ko" and text == ko.wording["caller.say_unstaffed"]


@pytest.mark.parametrize(
    ("spec", "wording", "error"),
    [
        ({"ui_lang": "ko"}, None, "ui_lang must be one of"),
        ({"wording": "w.toml"}, '[prompts]\n"caller.title" = "x"\n', "not a spoken prompt"),
        ({"wording": "w.toml"}, '[prompts]\n"caller.say_queue" = "{ahead}"\n', "placeholders"),
        ({"wording": "w.toml"}, '[prompts]\n"caller.say_next" = " "\n', "non-empty"),
        ({"wording": "../w.toml"}, None, "relative path inside"),
    ],
)
def test_registry_refuses_bad_ui_lang_or_wording(
    tmp_path: Path, spec: dict, wording: str | None, error: str
) -> None:
    if wording is not None:
        (tmp_path / "w.toml").write_text(wording, encoding="utf-8")
    dialect = {"names": {"zh_CN": "测", "en": "Test"}, "model": "", "voice": "sit/yue", **spec}
    with pytest.raises(RegistryError, match=error):
        parse_registry({"dialects": {"xx": dialect}}, tmp_path / "registry.toml")


def test_registry_dialect_without_ui_lang_or_wording_falls_back(tmp_path: Path) -> None:
    dialect = {"names": {"zh_CN": "测", "en": "Test"}, "model": "", "voice": "ko"}
    reg = parse_registry({"dialects": {"xx": dialect}}, tmp_path / "registry.toml")
    assert reg.dialects["xx"].ui_lang == "zh_CN" and reg.dialects["xx"].wording == {}

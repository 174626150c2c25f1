"""The docs promise what the code does: two commands, every setting listed."""

from __future__ import annotations

import re
from pathlib import Path

from hotline.config import Config

ROOT = Path(__file__).resolve().parent.parent


def test_readme_opens_with_exactly_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(.*?)```", text, re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert lines == ["bash scripts/serve.sh", "bash scripts/test.sh"]
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_every_setting_is_documented() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, _default, help_text in Config.describe():
        assert f"`{name}`" in text, name
        assert help_text


def test_every_websocket_message_is_documented(server) -> None:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    for role, routes in server.running.live.routes.items():
        for kind in routes:
            assert f"`{kind}`" in text, (role, kind)

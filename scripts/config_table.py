"""Rewrite the configuration table in README.md from hotline.config (run after adding a setting)."""

from __future__ import annotations

import re
from pathlib import Path

from hotline.config import Config

README = Path(__file__).resolve().parent.parent / "README.md"
HEAD = "| variable | default | meaning |\n|---|---|---|\n"


def main() -> None:
    rows = "".join(f"| `{n}` | `{d}` | {h} |\n" for n, d, h in Config.describe())
    text = README.read_text(encoding="utf-8")
    text = re.sub(re.escape(HEAD) + r"(\|.*\n)*", lambda m: HEAD + rows, text)
    README.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

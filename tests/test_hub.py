"""The live side's connection helpers (hotline/live/hub.py)."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from hotline.live.hub import text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_text_frames_match_websockets_own_framing(size: int) -> None:
    data = ("长" * size).encode()[:size]
    assert text_frame(data) == Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])

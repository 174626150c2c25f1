"""Canaries: library internals the hot path relies on, checked so an upgrade fails here first.

pyproject.toml bounds websockets, aiortc, aioice and pyttsx3 to the minor versions these
were checked on; when raising a bound, run this file and review the code each test names.
(The others: LeanConnection in tests/test_call_ws.py, hand-built frames in tests/test_hub.py,
pyttsx3's espeak driver in tests/test_tts.py.)
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _self_uses(cls: type, attrs: str) -> set[str]:
    """Names of the methods defined on `cls` whose source reads or writes self.<attrs>."""
    pattern = re.compile(rf"self\.({attrs})\b")
    return {
        name
        for name, fn in vars(cls).items()
        if inspect.isfunction(fn) and pattern.search(inspect.getsource(fn))
    }


def test_websockets_reads_request_and_response_only_in_the_handshake() -> None:
    """LiveServer._handle replaces ws.request with a shared stub and ws.response with None
    after the handshake (2 KB per waiting caller): safe only while websockets touches them in
    the handshake alone."""
    from websockets.asyncio.connection import Connection
    from websockets.asyncio.server import ServerConnection

    assert _self_uses(ServerConnection, "request|response") == {"handshake", "process_event"}
    assert _self_uses(Connection, "request|response") == {"__init__"}
    handshake = inspect.getsource(ServerConnection.process_event)
    assert "if self.request is None" in handshake  # only the first request is kept


def test_aioice_gathers_host_addresses_through_the_module_function() -> None:
    """use_loopback_candidates() swaps aioice.ice.get_host_addresses: it must still be the
    module-level function gather_candidates() calls by name, with the same parameters."""
    import aioice.ice

    params = list(inspect.signature(aioice.ice.get_host_addresses).parameters)
    assert params == ["use_ipv4", "use_ipv6"]
    assert "get_host_addresses(" in inspect.getsource(aioice.ice.Connection.gather_candidates)


def test_loopback_patch_fails_loudly_without_the_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aioice.ice

    from hotline.calls.gateway import use_loopback_candidates

    monkeypatch.delattr(aioice.ice, "get_host_addresses")
    with pytest.raises(RuntimeError, match="get_host_addresses is gone"):
        use_loopback_candidates()


def test_bounded_libraries_are_the_checked_minor_versions() -> None:
    """The installed versions are inside pyproject.toml's bounds (bootstrap reinstalls when
    the bounds change, so a stale venv shows here rather than as a strange failure)."""
    import tomllib
    from importlib.metadata import version

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    bounded = {d.split(">=")[0]: d for d in deps if "<" in d}
    assert set(bounded) >= {"websockets", "aiortc", "aioice", "pyttsx3"}
    for name, spec in bounded.items():
        upper = spec.split("<")[1].strip()
        installed = tuple(int(x) for x in version(name).split(".")[:2])
        assert installed < tuple(int(x) for x in upper.split(".")[:2]), (name, version(name))

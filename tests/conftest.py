from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ServerThread, test_config


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    """A real hotline on free ports with a temp database."""
    srv = ServerThread(test_config(tmp_path))
    yield srv
    srv.stop()

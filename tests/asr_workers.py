"""Real `hotline asr-worker` processes for tests and the bench, on free loopback ports."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support import SLOW

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 90.0 * SLOW  # model load + fork on a loaded 2-core machine


class WorkerProcess:
    """One `python -m hotline asr-worker --port 0` process; `url` once it listens."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        env = {**os.environ, "HOTLINE_DATA_DIR": str(data_dir), "HOTLINE_LOG_LEVEL": "WARNING"}
        cmd = [sys.executable, "-m", "hotline", "asr-worker", "--port", "0", *args]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.url = ""
        self.output: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            found = re.search(r"listening on (ws://\S+)", line)
            if found:
                self.url = found.group(1)
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = START_SECONDS) -> str:
        """Block until the worker listens; returns its URL (raises if it exited)."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if time.monotonic() > deadline:
                raise TimeoutError("asr-worker did not start:\n" + "".join(self.output))
        if not self.url:
            raise RuntimeError("asr-worker exited:\n" + "".join(self.output))
        return self.url

    def kill(self) -> None:
        """SIGKILL the worker (its decoding children die with their pipes)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10 * SLOW)
            except subprocess.TimeoutExpired:
                self.kill()


def start_workers(
    data_dir: Path, n: int, *args: str, timeout: float = START_SECONDS
) -> list[WorkerProcess]:
    """Start `n` workers at once (they load in parallel) and wait for all of them."""
    workers = [WorkerProcess(data_dir, *args) for _ in range(n)]
    try:
        for w in workers:
            w.wait_ready(timeout)
    except Exception:
        for w in workers:
            w.kill()
        raise
    return workers

"""Spoken prompts: pyttsx3 over espeak-ng, owned by one thread, rendered to cached WAV files.

pyttsx3's engine is process-global and not thread-safe, so one thread ("tts") owns it and
renders one utterance at a time. Files are cached by (voice, text), so each prompt is
rendered once. `runAndWait()` may return before the file is complete: we wait until the WAV
header is readable and its size stops changing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
import wave
from concurrent.futures import Future
from pathlib import Path

log = logging.getLogger(__name__)

MAX_TEXT = 600


class Speech:
    """Renders text to WAV files in a cache directory, on its own thread."""

    def __init__(self, cache_dir: Path, max_bytes: int = 1024 * 1024 * 1024) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.evicted = 0
        self._cache_bytes = sum(_sizes(self.cache_dir).values())
        self._jobs: queue.Queue[tuple[str, str, Path, Future[Path]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="tts", daemon=True)
        self._started = False
        self._lock = threading.Lock()
        self.rendered = 0

    def cached(self, text: str, voice: str) -> bool:
        """Whether this prompt is already rendered (serving it costs no CPU)."""
        return self.path_for(" ".join(text.split())[:MAX_TEXT], voice).exists()

    def _keep_bounded(self, added: Path) -> None:
        """Account a new file; past `max_bytes`, delete the oldest files down to 90 % (never
        the one just made: it is about to be served)."""
        self._cache_bytes += added.stat().st_size
        if self._cache_bytes <= self.max_bytes:
            return
        sizes = _sizes(self.cache_dir)
        self._cache_bytes = sum(sizes.values())
        for path in sorted(sizes, key=_mtime):
            if self._cache_bytes <= self.max_bytes * 0.9:
                break
            if path == added:
                continue
            try:
                path.unlink()
            except OSError:
                continue
            self._cache_bytes -= sizes[path]
            self.evicted += 1

    def path_for(self, text: str, voice: str) -> Path:
        key = hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()[:32]
        return self.cache_dir / f"{key}.wav"

    def render(self, text: str, voice: str) -> Future[Path]:
        """A future of the WAV file speaking `text` in `voice` (cached)."""
        text = " ".join(text.split())[:MAX_TEXT]
        path = self.path_for(text, voice)
        future: Future[Path] = Future()
        if path.exists():
            future.set_result(path)
            return future
        with self._lock:
            if not self._started:
                self._thread.start()
                self._started = True
        self._jobs.put((text, voice, path, future))
        return future

    def render_sync(self, text: str, voice: str, timeout: float = 20.0) -> Path:
        return self.render(text, voice).result(timeout)

    def close(self) -> None:
        if self._started:
            self._jobs.put(None)

    def _run(self) -> None:
        import pyttsx3

        engine = pyttsx3.init("espeak")
        engine.setProperty("rate", 150)  # slower than default: easier for seniors
        while True:
            job = self._jobs.get()
            if job is None:
                return
            text, voice, path, future = job
            if future.cancelled():
                continue
            if path.exists():
                future.set_result(path)
                continue
            try:
                future.set_result(self._render_one(engine, text, voice, path))
            except Exception as exc:
                log.exception("tts: rendering failed for voice %s", voice)
                future.set_exception(exc)

    def _render_one(self, engine, text: str, voice: str, path: Path) -> Path:
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp.wav")
        engine.setProperty("voice", voice)
        engine.save_to_file(text, str(tmp))
        engine.runAndWait()
        _wait_complete(tmp)
        os.replace(tmp, path)
        self.rendered += 1
        self._keep_bounded(path)
        return path


def _wait_complete(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        if path.exists():
            size = path.stat().st_size
            if size == last and size > 44:
                try:
                    with wave.open(str(path)) as w:
                        if w.getnframes() > 0:
                            return
                except (wave.Error, EOFError):
                    pass
            last = size
        time.sleep(0.03)
    raise TimeoutError(f"speech file {path.name} was not completed")


def _sizes(folder: Path) -> dict[Path, int]:
    """Size of every finished WAV in the cache (temporary files are not the cache's)."""
    out: dict[Path, int] = {}
    for path in folder.glob("*.wav"):
        if ".tmp." in path.name:
            continue
        try:
            out[path] = path.stat().st_size
        except OSError:
            continue
    return out


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def duration_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / float(w.getframerate())

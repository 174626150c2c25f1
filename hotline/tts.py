"""Spoken prompts: pyttsx3 over espeak-ng, owned by one thread, rendered to cached WAV files.

pyttsx3's engine is process-global (`pyttsx3.init` hands every caller the same one) and not
thread-safe, so each `Speech` renders on its own "tts" thread and every render in the process
takes one lock. Files are cached by (voice, text), so each prompt is rendered once.

A render is treated as fallible, because pyttsx3's espeak driver runs libespeak-ng in its
asynchronous mode and writes the WAV from espeak's own thread when the utterance ends:
- `runAndWait()` can return before the file exists (the first render of a process always
  does), so a render waits for the `finished-utterance` callback, not for `runAndWait()`;
- the driver's state (`_speaking`, `_data_buffer`, `_looping`, its busy flag and command
  queue) is shared by our thread and espeak's callback thread without a lock, and
  `runAndWait()` begins with the driver's `stop()`, which cancels whatever libespeak still
  reports as playing. Starting a render while the previous utterance's callback is still
  running after its file write (a loaded machine deschedules espeak's thread) gets the new
  render cancelled (seen: `finished-utterance` with completed=False) or its state reset
  under it: a WAV without frames, after "Audio saved to" was printed. So a render first
  waits until libespeak is idle (that callback has returned), and afterwards checks the WAV.
A failed attempt is logged and retried; after `ATTEMPTS` the prompt raises SpeechUnavailable
and the pages show its text instead (a fresh engine is not an option: libespeak-ng can be
initialised once per process). The driver's "Audio saved to <file>" print is silenced by
giving its module a `print` of its own (tests/test_tts.py keeps this patch honest).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
import wave
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

from hotline.errors import SpeechUnavailable

log = logging.getLogger(__name__)

MAX_TEXT = 600
ATTEMPTS = 3
ATTEMPT_SECONDS = 5.0  # one sentence takes ~10 ms on an idle core; this is for a loaded one
RATE = 150  # words per minute, slower than espeak's default: easier for seniors

# The engine is one per process whoever asks for it (pyttsx3.init caches it, libespeak-ng
# initialises once), so this lock is process-wide too: one render at a time.
_ENGINE_LOCK = threading.Lock()


class RenderFailed(Exception):
    """One attempt at rendering did not leave a complete WAV file."""


class Renderer(Protocol):
    """Writes one utterance to a WAV file, complete when `render` returns, or raises."""

    def render(self, text: str, voice: str, path: Path, timeout: float) -> None: ...

    def close(self) -> None: ...


class Speech:
    """Renders text to WAV files in a cache directory, on its own thread."""

    def __init__(
        self,
        cache_dir: Path,
        max_bytes: int = 1024 * 1024 * 1024,
        renderer: Callable[[], Renderer] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.evicted = 0
        self._cache_bytes = sum(_sizes(self.cache_dir).values())
        self._make_renderer = renderer or EspeakRenderer
        self._jobs: queue.Queue[tuple[str, str, Path, Future[Path]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="tts", daemon=True)
        self._started = False
        self._lock = threading.Lock()
        self.rendered = 0
        self.retries = 0  # attempts that failed and were tried again (or given up)
        self.failed = 0  # prompts that could not be rendered at all

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
        """The WAV file for `text`; raises SpeechUnavailable if it cannot be rendered."""
        try:
            return self.render(text, voice).result(timeout)
        except TimeoutError:
            raise SpeechUnavailable("the spoken prompt took too long to render") from None

    def close(self) -> None:
        if self._started:
            self._jobs.put(None)

    def _run(self) -> None:
        renderer: Renderer | None = None
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                text, voice, path, future = job
                if not future.set_running_or_notify_cancel():
                    continue
                if path.exists():
                    future.set_result(path)
                    continue
                try:
                    if renderer is None:
                        with _ENGINE_LOCK:  # it sets properties and callbacks on the engine
                            renderer = self._make_renderer()
                    future.set_result(self._render_one(renderer, text, voice, path))
                except Exception as exc:
                    self.failed += 1
                    log.error("tts: voice %s: prompt not rendered: %s", voice, exc)
                    future.set_exception(
                        exc if isinstance(exc, SpeechUnavailable) else SpeechUnavailable(str(exc))
                    )
        finally:
            if renderer is not None:
                with _ENGINE_LOCK:
                    renderer.close()

    def _render_one(self, renderer: Renderer, text: str, voice: str, path: Path) -> Path:
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp.wav")
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with _ENGINE_LOCK:
                    renderer.render(text, voice, tmp, ATTEMPT_SECONDS)
                    check_wav(tmp)
            except RenderFailed as exc:
                self.retries += 1
                log.warning(
                    "tts: voice %s: attempt %d of %d failed: %s", voice, attempt, ATTEMPTS, exc
                )
                tmp.unlink(missing_ok=True)
                continue
            os.replace(tmp, path)
            self.rendered += 1
            self._keep_bounded(path)
            return path
        raise SpeechUnavailable(f"speech could not be rendered in {ATTEMPTS} attempts")


class EspeakRenderer:
    """pyttsx3's espeak engine, driven so that a render is complete when `render` returns."""

    def __init__(self) -> None:
        import pyttsx3
        from pyttsx3.drivers import _espeak
        from pyttsx3.drivers import espeak as driver

        # The driver reports each file with a bare print(): a module global shadows it there
        # (and only there), which a threaded server cannot do with a process-wide stdout swap.
        driver.print = _quiet  # type: ignore[attr-defined]
        self._is_playing: Callable[[], Any] = _espeak.IsPlaying
        self._engine = pyttsx3.init("espeak")
        self._engine.setProperty("rate", RATE)
        self._finished = threading.Event()
        self._cancelled = False
        self._token = self._engine.connect("finished-utterance", self._on_finished)

    def _on_finished(self, name: Any = None, completed: bool = True) -> None:
        if not completed:
            self._cancelled = True
        self._finished.set()

    def render(self, text: str, voice: str, path: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # Never start while libespeak still plays the last utterance: runAndWait() would
        # cancel this one (see the module docstring).
        while self._is_playing():
            if time.monotonic() > deadline:
                raise RenderFailed("libespeak stayed busy with the previous utterance")
            time.sleep(0.005)
        self._finished.clear()
        self._cancelled = False
        self._engine.setProperty("voice", voice)
        self._engine.save_to_file(text, str(path))
        self._engine.runAndWait()
        if not self._finished.wait(max(0.0, deadline - time.monotonic())):
            raise RenderFailed("espeak never finished the utterance")
        if self._cancelled:
            raise RenderFailed("the utterance was cancelled")

    def close(self) -> None:
        self._engine.disconnect(self._token)


def _quiet(*args: object, **kwargs: object) -> None:
    """Stands in for print() inside pyttsx3's espeak driver."""


def check_wav(path: Path) -> None:
    """Raise RenderFailed unless `path` is a WAV with frames and all of its data."""
    try:
        size = path.stat().st_size
        with wave.open(str(path)) as w:
            frames = w.getnframes()
            need = frames * w.getsampwidth() * w.getnchannels()
    except (OSError, wave.Error, EOFError) as exc:
        raise RenderFailed(f"no readable WAV: {exc}") from None
    if frames == 0:
        raise RenderFailed("the WAV has no frames")
    if size < 44 + need:
        raise RenderFailed(f"the WAV is cut short ({size} bytes for {frames} frames)")


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

"""Runtime model folders with tuned endpointing, and the process-wide cache of loaded models.

vosk 0.3.45 has no API for endpoint delays or decoding chunk size: they are read from the
model's `conf/model.conf`. So each (model, settings) pair gets a derived folder
`<models_dir>/.runtime/<name>-<hash>` made of symlinks to the installed model with its own
`conf/model.conf` (and, for deterministic decoding, `conf/mfcc.conf` with `--dither=0.0`).
Models are only ever located through registry ids, never from a client-given path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hotline.asr.models import model_dir, vosk_model_problem
from hotline.asr.registry import ModelSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeSettings:
    """Decoder settings written into a derived model folder (defaults from FIELD-NOTES)."""

    rule2_trailing_silence: float = 0.3
    rule3_trailing_silence: float = 0.6
    rule4_trailing_silence: float = 1.0
    frames_per_chunk: int = 10
    deterministic: bool = False
    beam: float = 0.0  # 0: the model's own

    def model_conf_options(self) -> dict[str, str]:
        """The `--key=value` options this setting overrides in conf/model.conf."""
        beam = {"--beam": f"{self.beam:g}"} if self.beam > 0 else {}
        return beam | {
            "--endpoint.rule2.min-trailing-silence": f"{self.rule2_trailing_silence:g}",
            "--endpoint.rule3.min-trailing-silence": f"{self.rule3_trailing_silence:g}",
            "--endpoint.rule4.min-trailing-silence": f"{self.rule4_trailing_silence:g}",
            "--frames-per-chunk": str(self.frames_per_chunk),
        }


def _override(conf: str, options: dict[str, str]) -> str:
    kept = [
        line
        for line in conf.splitlines()
        if line.strip() and line.split("=", 1)[0].strip() not in options
    ]
    return "\n".join(kept + [f"{k}={v}" for k, v in options.items()]) + "\n"


def runtime_key(source: Path, settings: RuntimeSettings) -> str:
    """A short hash of the source folder, its conf files and the settings."""
    h = hashlib.sha256()
    h.update(str(source.resolve()).encode())
    h.update(json.dumps(asdict(settings), sort_keys=True).encode())
    conf = source / "conf"
    for name in sorted(os.listdir(conf)) if conf.is_dir() else []:
        path = conf / name
        if path.is_file():
            h.update(name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def derive_runtime_dir(
    source: Path, name: str, settings: RuntimeSettings, runtime_root: Path
) -> Path:
    """Build (once) and return the derived folder of `source` tuned with `settings`."""
    source = Path(source).resolve()
    final = Path(runtime_root) / f"{name}-{runtime_key(source, settings)}"
    if final.is_dir():
        return final
    Path(runtime_root).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=runtime_root))
    try:
        tmp.chmod(0o755)
        for entry in sorted(source.iterdir()):
            if entry.name != "conf":
                os.symlink(entry, tmp / entry.name)
        conf = tmp / "conf"
        conf.mkdir()
        src_conf = source / "conf"
        for entry in sorted(src_conf.iterdir()) if src_conf.is_dir() else []:
            if entry.name not in ("model.conf", "mfcc.conf"):
                os.symlink(entry, conf / entry.name)
        model_conf = (src_conf / "model.conf").read_text(encoding="utf-8")
        (conf / "model.conf").write_text(_override(model_conf, settings.model_conf_options()))
        mfcc = src_conf / "mfcc.conf"
        if settings.deterministic:
            text = mfcc.read_text(encoding="utf-8") if mfcc.is_file() else ""
            (conf / "mfcc.conf").write_text(_override(text, {"--dither": "0.0"}))
        elif mfcc.is_file():
            os.symlink(mfcc, conf / "mfcc.conf")
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # another process won the race only if final exists
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


class ModelBroken(Exception):
    """The model folder exists but vosk failed to load it."""


class ModelCache:
    """One loaded `vosk.Model` per model name, loaded once on first use and shared by threads."""

    def __init__(self, models_dir: Path, settings_for: Any) -> None:
        self._models_dir = Path(models_dir)
        self._settings_for = settings_for  # callable(ModelSpec) -> RuntimeSettings
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._models: dict[str, Any] = {}
        self._broken: dict[str, str] = {}

    def is_broken(self, name: str) -> bool:
        """True when loading this model already failed in this process."""
        return name in self._broken

    def is_loaded(self, name: str) -> bool:
        """True when the model is in memory."""
        return name in self._models

    def get(self, spec: ModelSpec) -> Any:
        """The loaded model (blocking on first use: call from a worker thread, not the loop)."""
        model = self._models.get(spec.name)
        if model is not None:
            return model
        if spec.name in self._broken:
            raise ModelBroken(self._broken[spec.name])
        with self._lock:
            gate = self._loading.setdefault(spec.name, threading.Lock())
        with gate:
            if spec.name in self._models:
                return self._models[spec.name]
            if spec.name in self._broken:
                raise ModelBroken(self._broken[spec.name])
            model = self._load(spec)
            self._models[spec.name] = model
            return model

    def _load(self, spec: ModelSpec) -> Any:
        import vosk

        source = model_dir(spec, self._models_dir)
        if source is None:
            raise FileNotFoundError(spec.name)
        problem = vosk_model_problem(source)
        if problem:
            self._broken[spec.name] = problem
            raise ModelBroken(problem)
        try:
            path = derive_runtime_dir(
                source, spec.name, self._settings_for(spec), self._models_dir / ".runtime"
            )
            vosk.SetLogLevel(-1)
            model = vosk.Model(str(path))
        except Exception as exc:  # vosk raises a bare Exception when a model fails to load
            self._broken[spec.name] = str(exc) or type(exc).__name__
            log.warning("model %s failed to load: %s", spec.name, exc)
            raise ModelBroken(self._broken[spec.name]) from exc
        log.info("model %s loaded from %s", spec.name, path)
        return model

    def clear(self) -> None:
        """Forget every loaded model (their memory is freed when no recognizer uses them)."""
        with self._lock:
            self._models.clear()
            self._broken.clear()

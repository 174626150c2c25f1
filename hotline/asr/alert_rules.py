"""Alert rules as data: terms that must occur together, each with its variants.

Pure. A rule (dialect_models/alert_rules.toml) fires when one variant of EVERY term occurs
in a caption, in any order, all inside a span of `within` characters; a one-term rule is a
phrase with variants. Matching runs on normalised text: Unicode NFKC (full-width letters
and digits become ASCII), lower case, traditional Chinese characters folded to simplified
(a small table of the characters alert terms use), and whitespace and punctuation removed,
so a recognizer that splits a word ("安全 账户", "안전한 계좌") still matches. The window
counts characters of that compact text because Chinese captions have no reliable word
boundaries; about 2 characters make a Chinese word and 3 a Korean one.
"""

from __future__ import annotations

import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CATEGORIES = ("fraud", "distress")
MAX_WITHIN = 200

# Traditional -> simplified for the characters alert terms and their contexts use. OpenCC
# (opencc-py) does this fully; ~120 characters do not justify a dependency. The test of the
# phrase sets includes traditional spellings, so a missing character shows as a miss.
_PAIRS = (  # traditional, simplified, traditional, simplified, ...
    "賬账帳账帐账戶户轉转匯汇錢钱碼码驗验證证訴诉發发銀银險险凍冻結结檢检騙骗醫医護护頭头暈晕氣气傷伤號号幫帮給给們们說说讓让這这個个兒儿來来會会電电話话對对時时見见間间開开關关門门錯错"
    "額额貸贷費费還还買买賣卖獎奖繳缴罰罚詐诈戲戏網网絡络機机權权釋释資资財财擔担認认識识請请問问題题當当將将從从過过續续聯联絕绝屬属處处難难療疗臟脏暫暂務务員员單单據据義义標标準准"
    "陳陈際际讀读寫写紅红綫线線线監监國国內内產产聽听兩两滿满麼么無无壞坏動动態态覺觉邊边遠远製制協协嗎吗帶带謝谢舉举懷怀擬拟擊击孫孙綁绑領领導导獲获專专頁页陸陆親亲筆笔統统託托貨货"
    "風风撥拨寶宝鍵键記记癱瘫腦脑殼壳撐撑贏赢廣广鬆松緊紧張张盜盗賊贼緝缉銷销註注冊册儲储証证鎖锁錄录視视頻频軟软體体裝装載载遙遥"
)
_T2S = {ord(t): s for t, s in zip(_PAIRS[::2], _PAIRS[1::2], strict=True)}


def normalise(text: str) -> str:
    """Compact matching form: NFKC, lower case, traditional->simplified, no spaces/punctuation."""
    folded = unicodedata.normalize("NFKC", text).lower().translate(_T2S)
    return "".join(ch for ch in folded if ch.isalnum())


class RuleError(ValueError):
    """The alert rules file is invalid; the message says where and why."""


@dataclass(frozen=True)
class AlertRule:
    """Terms (each a tuple of normalised variants) that must all occur within `within` chars."""

    id: str
    category: str
    within: int
    terms: tuple[tuple[str, ...], ...]
    label: str = ""  # what the agent reads, e.g. "转账…安全账户"

    def match(self, haystack: str) -> tuple[int, int] | None:
        """(start, end) of the tightest span holding every term in normalised text, or None."""
        hits: list[list[tuple[int, int]]] = []
        for variants in self.terms:
            found = [
                (at, at + len(v))
                for v in variants
                for at in _find_all(haystack, v)
            ]  # fmt: skip
            if not found:
                return None
            hits.append(sorted(found))
        best: tuple[int, int] | None = None
        # Anchor on each occurrence of the first term; take each other term's nearest hit.
        for start, end in hits[0]:
            lo, hi = start, end
            for occurrences in hits[1:]:
                near = min(occurrences, key=lambda h: max(hi, h[1]) - min(lo, h[0]))
                lo, hi = min(lo, near[0]), max(hi, near[1])
            if hi - lo <= max(self.within, end - start) and (
                best is None or hi - lo < best[1] - best[0]
            ):
                best = (lo, hi)
        return best


def _find_all(haystack: str, needle: str) -> Iterable[int]:
    at = haystack.find(needle)
    while at >= 0:
        yield at
        at = haystack.find(needle, at + 1)


def spot_rules(text: str, rules: Sequence[AlertRule]) -> list[dict[str, str]]:
    """Alerts of every rule that fires on the text: `{"phrase", "category", "rule"}`."""
    if not text or not rules:
        return []
    haystack = normalise(text)
    hits = []
    for rule in rules:
        span = rule.match(haystack)
        if span is not None:
            hits.append((span[0], {"phrase": rule.label, "category": rule.category,
                                   "rule": rule.id}))  # fmt: skip
    return [alert for _, alert in sorted(hits, key=lambda h: h[0])]


def load_rules(path: Path, dialects: Iterable[str]) -> dict[str, tuple[AlertRule, ...]]:
    """Rules per dialect from the TOML file; raises RuleError naming the rule at fault."""
    known = set(dialects)
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RuleError(f"{path}: alert rules file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RuleError(f"{path}: cannot read alert rules: {exc}") from None
    return parse_rules(raw, known, str(path))


def parse_rules(
    raw: dict[str, Any], known: set[str], where: str
) -> dict[str, tuple[AlertRule, ...]]:
    """Validate parsed TOML: `schema = 1`, `[[set]]` tables with `dialects` and `[[set.rule]]`."""
    if raw.get("schema") != 1:
        raise RuleError(f"{where}: schema must be 1")
    sets = raw.get("set")
    if not isinstance(sets, list) or not sets:
        raise RuleError(f"{where}: needs at least one [[set]]")
    out: dict[str, list[AlertRule]] = {}
    seen: set[str] = set()
    for i, rule_set in enumerate(sets):
        at = f"{where}: set {i + 1}"
        dialects = rule_set.get("dialects") if isinstance(rule_set, dict) else None
        if not isinstance(dialects, list) or not dialects:
            raise RuleError(f"{at}: dialects must be a non-empty list")
        unknown = [d for d in dialects if d not in known]
        if unknown:
            raise RuleError(f"{at}: unknown dialect(s) {unknown}")
        rules = rule_set.get("rule")
        if not isinstance(rules, list) or not rules:
            raise RuleError(f"{at}: needs at least one [[set.rule]]")
        for spec in rules:
            rule = _rule(spec, at)
            if rule.id in seen:
                raise RuleError(f"{at}: duplicate rule id {rule.id!r}")
            seen.add(rule.id)
            for d in dialects:
                out.setdefault(d, []).append(rule)
    return {d: tuple(r) for d, r in out.items()}


def _rule(spec: Any, at: str) -> AlertRule:
    if not isinstance(spec, dict):
        raise RuleError(f"{at}: a rule must be a table")
    rid = spec.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise RuleError(f"{at}: a rule needs an id")
    at = f"{at}, rule {rid!r}"
    unknown = set(spec) - {"id", "category", "within", "terms"}
    if unknown:
        raise RuleError(f"{at}: unknown keys {sorted(unknown)}")
    if spec.get("category") not in CATEGORIES:
        raise RuleError(f"{at}: category must be one of {CATEGORIES}")
    within = spec.get("within", 0)
    if isinstance(within, bool) or not isinstance(within, int) or not 0 <= within <= MAX_WITHIN:
        raise RuleError(f"{at}: within must be an integer 0-{MAX_WITHIN} (characters)")
    terms = spec.get("terms")
    if not isinstance(terms, list) or not terms:
        raise RuleError(f"{at}: terms must be a non-empty list of variant lists")
    normal: list[tuple[str, ...]] = []
    for term in terms:
        if not isinstance(term, list) or not term or not all(isinstance(v, str) for v in term):
            raise RuleError(f"{at}: each term must be a non-empty list of strings")
        variants = tuple(dict.fromkeys(normalise(v) for v in term))
        if "" in variants:
            raise RuleError(f"{at}: a variant is empty once normalised")
        normal.append(variants)
    if len(normal) > 1 and within == 0:
        raise RuleError(f"{at}: a rule of several terms needs within > 0")
    label = "…".join(str(t[0]) for t in terms)
    return AlertRule(rid.strip(), spec["category"], within, tuple(normal), label)

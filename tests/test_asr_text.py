"""Pure caption text: glosses, alerts, junk, masking, final events, time mapping, gate, ranking."""

from __future__ import annotations

import pytest

from hotline.asr.alerts import spot_alerts
from hotline.asr.detect import detect_dialect
from hotline.asr.events import Timeline, clean_text, final_event, is_junk, mask_words
from hotline.asr.lexicon import gloss_text, glossed_words
from hotline.asr.vad import EnergyGate, GateSettings, rms

SW = {"啥子": "什么", "咋个": "怎么", "要得": "好的"}
YUE = {"唔该": "谢谢", "乜嘢": "什么", "冇": "没有", "唔": "不"}
ALERTS = {"fraud": ["安全账户", "验证码", "转账"], "distress": ["救命", "救命呀", "摔倒了"]}


@pytest.mark.parametrize(
    ("text", "lexicon", "expected"),
    [
        ("你 要 啥子", SW, "你 要 啥子〔什么〕"),
        ("咋个 办 要得", SW, "咋个〔怎么〕 办 要得〔好的〕"),
        ("啥 子", SW, "啥 子〔什么〕"),  # a recogniser split the word
        ("唔该 你", YUE, "唔该〔谢谢〕 你"),  # the longest entry wins over 唔
        ("冇 乜嘢", YUE, "冇〔没有〕 乜嘢〔什么〕"),
        ("啥子〔什么〕", SW, "啥子〔什么〕"),  # already glossed: unchanged
        ("", SW, ""),
        ("没有方言词", SW, "没有方言词"),
        ("啥子", {}, "啥子"),
    ],
)
def test_gloss_inserts_mandarin_inline(text: str, lexicon: dict, expected: str) -> None:
    assert gloss_text(text, lexicon) == expected


def test_glossed_words_lists_pairs_in_order() -> None:
    assert glossed_words("要得 啥子", SW) == [("要得", "好的"), ("啥子", "什么")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("请 把 钱 转到 安全 账户", [("安全账户", "fraud")]),
        ("告诉 我 验证码 然后 转账", [("验证码", "fraud"), ("转账", "fraud")]),
        ("救命呀 我 摔倒了", [("救命呀", "distress"), ("摔倒了", "distress")]),
        ("救命 救命", [("救命", "distress")]),
        ("今天 天气 很 好", []),
        ("", []),
    ],
)
def test_alerts_are_spotted_across_word_spaces(text: str, expected: list) -> None:
    assert [(a["phrase"], a["category"]) for a in spot_alerts(text, ALERTS)] == expected


def test_alerts_ignore_case_for_latin() -> None:
    found = spot_alerts("Please move it to a SAFE account", {"fraud": ["safe account"]})
    assert found == [{"phrase": "safe account", "category": "fraud"}]


@pytest.mark.parametrize("token", ["[0]", "[10]", "-", "<unk>", "[noise]", "  "])
def test_junk_tokens(token: str) -> None:
    assert is_junk(token)


def test_clean_text_drops_junk() -> None:
    assert clean_text("오후 [9] 하우스 - 가 [10]") == "오후 하우스 가"


def test_mask_words_hides_spoken_numbers() -> None:
    words = "我 的 电话 是 一 三 八 一 二 三 四 五 六 七 八".split()
    masked = mask_words(words)
    assert "一" not in "".join(masked[4:])
    assert masked[:4] == words[:4]
    assert mask_words(["三", "点", "见"]) == ["三", "点", "见"]  # short numbers stay


def _result(words: list[tuple[str, float, float, float]]) -> dict:
    return {
        "result": [{"word": w, "start": s, "end": e, "conf": c} for w, s, e, c in words],
        "text": " ".join(w for w, *_ in words),
    }


def test_final_event_masks_glosses_alerts_and_flags_low_confidence() -> None:
    words = [("啥子", 0.0, 0.3, 0.9), ("[0]", 0.3, 0.4, 1.0), ("转账", 0.4, 0.8, 0.5)]
    words += [(d, 1.0 + i * 0.1, 1.1 + i * 0.1, 1.0) for i, d in enumerate("13812345678")]
    ev = final_event("caller", _result(words), to_stream_time=lambda s: s + 10, lexicon=SW,
                     alerts=ALERTS)  # fmt: skip
    assert ev is not None
    assert ev["kind"] == "final" and ev["speaker"] == "caller"
    assert "1381234" not in ev["text"] and ev["text"].startswith("啥子 转账")
    assert "1381234" not in "".join(w["w"] for w in ev["words"])
    assert ev["gloss"].startswith("啥子〔什么〕 转账")
    assert ev["alerts"] == [{"phrase": "转账", "category": "fraud"}]
    assert [w["low"] for w in ev["words"][:2]] == [False, True]
    assert ev["utterance_start"] == 10.0 and ev["utterance_end"] == pytest.approx(12.1)
    assert all("[0]" != w["w"] for w in ev["words"])


def test_final_event_of_only_junk_is_none() -> None:
    ev = final_event("caller", _result([("[0]", 0, 1, 1.0), ("-", 1, 2, 1.0)]),
                     to_stream_time=float, lexicon={}, alerts={})  # fmt: skip
    assert ev is None
    assert final_event("x", {"text": ""}, to_stream_time=float, lexicon={}, alerts={}) is None


def test_timeline_maps_recognizer_time_across_gaps() -> None:
    tl = Timeline(16000)
    tl.fed(48000, 0, 16000)  # recognizer had 3 s of warm-up audio before this stream
    tl.fed(64000, 16000, 16000)  # contiguous
    tl.fed(80000, 64000, 16000)  # 3 s of stream silence skipped
    assert tl.to_stream(3.5) == pytest.approx(0.5)
    assert tl.to_stream(4.5) == pytest.approx(1.5)
    assert tl.to_stream(5.25) == pytest.approx(4.25)


def _pcm(level: int, n: int = 1600) -> bytes:
    return b"".join((level if i % 2 else -level).to_bytes(2, "little", signed=True)
                    for i in range(n))  # fmt: skip


def test_rms() -> None:
    assert rms(b"") == 0.0
    assert rms(_pcm(1000)) == pytest.approx(1000)


def test_gate_preroll_hangover_and_phase_quantum() -> None:
    gate: EnergyGate[int] = EnergyGate(GateSettings(preroll=2, hangover=3, quantum=3))
    levels = [0] * 7 + [5000] * 3 + [0] * 9 + [5000] + [0] * 2 + [5000]
    fed, ends = [], []
    for i, level in enumerate(levels):
        out, ended = gate.push(i, level)
        fed += out
        if ended:
            ends.append(i)
    skipped = [i for i in range(len(levels)) if i not in fed]
    assert ends == [12]
    assert 5 in fed and 6 in fed  # pre-roll before the speech at 7
    assert len(skipped) % 3 == 0  # whole 0.3 s steps only
    assert fed == sorted(fed)
    assert 19 in fed and 22 in fed


def test_gate_ignores_steady_noise() -> None:
    gate: EnergyGate[int] = EnergyGate(GateSettings(min_rms=100))
    for i in range(30):
        gate.push(i, 800.0)  # a steady hum sets the noise floor
    assert not gate.is_speech(900.0)
    assert gate.is_speech(5000.0)


def test_detect_ranks_by_confidence_then_words_then_order() -> None:
    scores = {"ko": (0.8, 5), "cmn": (0.6, 9), "en": (0.8, 7), "yue": None, "wuu": (0.9, 1)}
    seen = []

    def scorer(dialect: str, pcm: bytes) -> tuple[float, int] | None:
        seen.append(len(pcm))
        return scores[dialect]

    got = detect_dialect(b"\0" * 16000 * 2 * 10, list(scores), scorer, seconds=4.0)
    assert got.best == "en"  # ties with ko on confidence, more words
    assert "yue" not in got.scores and got.scores["wuu"] == (0.9, 1)  # too few words
    assert set(seen) == {4 * 16000 * 2}


def test_detect_returns_none_when_unconvincing_or_failing() -> None:
    def scorer(dialect: str, pcm: bytes) -> tuple[float, int]:
        if dialect == "bad":
            raise RuntimeError("boom")
        return (0.3, 10)

    got = detect_dialect(b"", ["bad", "ko"], scorer)
    assert got.best is None and list(got.scores) == ["ko"]
    tie = detect_dialect(b"", ["cmn", "cmn-sw"], lambda d, p: (0.7, 3))
    assert tie.best == "cmn"

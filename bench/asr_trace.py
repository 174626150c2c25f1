"""Stage stamps for `bench/asr.py --browser`: where a caption's end-to-end latency goes.

The bench runs the server in its own process, so it can wrap a few methods (never in the
product: the bench installs and removes the wrappers) and stamp each stage on the wall
clock that the pages share:

- page mic: the caller page's own microphone track, read by an AnalyserNode (MIC_LEVEL_JS):
  when the file's first speech really played, so the bench's t0 can be checked;
- gateway: every PCM block the caller leg hands to its caption sink (and the PCM, to find
  where the file's speech is in it);
- decoded: when each 0.1 s chunk left the recognizer (and whether the gate fed it);
- final: when the recognizer produced a final, how (endpoint or the gate's flush), and how
  much audio it had been fed by then;
- sent: when the loop handed the caption to the agent's websocket;
- shown: the agent page's MutationObserver stamp (asr_browser.CAPTION_STAMP_JS).
"""

from __future__ import annotations

import statistics
import threading
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

RATE = 16000
ENV_STEP = 160  # 10 ms envelope steps

# The caller page's microphone level, polled every 10 ms from an AnalyserNode on the
# stream getUserMedia returned (after Chrome's capture processing, before Opus).
MIC_LEVEL_JS = """
(() => {
  window.__level = [];
  const md = navigator.mediaDevices;
  const orig = md.getUserMedia.bind(md);
  md.getUserMedia = async (c) => {
    const s = await orig(c);
    if (!window.__levelCtx && s.getAudioTracks().length) {
      const ctx = new AudioContext();
      window.__levelCtx = ctx;
      const an = ctx.createAnalyser();
      an.fftSize = 512;
      ctx.createMediaStreamSource(s).connect(an);
      const buf = new Float32Array(512);
      setInterval(() => {
        an.getFloatTimeDomainData(buf);
        let peak = 0;
        for (let i = 512 - 160; i < 512; i++) peak = Math.max(peak, Math.abs(buf[i]));
        window.__level.push([Date.now(), Math.round(peak * 32768)]);
      }, 10);
    }
    return s;
  };
})();
"""


def envelope(pcm: bytes) -> list[int]:
    """Peak amplitude of each 10 ms step of mono s16le PCM."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    return [max(map(abs, samples[i : i + ENV_STEP]), default=0)
            for i in range(0, len(samples), ENV_STEP)]  # fmt: skip


def onsets(env: list[int], threshold: int, gap_steps: int = 100) -> list[int]:
    """Steps where the envelope rises above `threshold` after ≥ gap_steps below it; pure."""
    out: list[int] = []
    quiet = gap_steps
    for i, v in enumerate(env):
        if v > threshold:
            if quiet >= gap_steps:
                out.append(i)
            quiet = 0
        else:
            quiet += 1
    return out


class Trace:
    """Stamps gathered from the server's threads (lists appended under a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fed: list[tuple[float, int, int]] = []  # (wall, first sample, samples)
        self.pcm = bytearray()
        self.decoded: list[tuple[float, int, bool]] = []  # (wall, chunk offset, fed?)
        self.finals: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []

    def arrival(self, sample: int) -> float | None:
        """Wall time at which stream sample `sample` reached the caption sink."""
        for wall, first, n in self.fed:
            if first <= sample < first + n:
                return wall
        return None

    def decoded_at(self, sample: int) -> float | None:
        """Wall time at which the chunk holding stream sample `sample` left the decoder."""
        for wall, offset, _ in self.decoded:
            if offset <= sample < offset + RATE // 10:
                return wall
        return None


@contextmanager
def tracing() -> Iterator[Trace]:
    """Wrap the gateway sink, the caption stream and the agent send; restore on exit."""
    from hotline.asr import transcriber
    from hotline.calls.gateway import Gateway
    from hotline.live.captions import LiveCaptions

    tr = Trace()
    orig_set_sink = Gateway.set_sink
    orig_audio = transcriber.CaptionStream._audio
    orig_flush = transcriber.CaptionStream._flush
    orig_final = transcriber.CaptionStream._final
    orig_on_caption = LiveCaptions._on_caption

    def set_sink(self: Any, call_id: str, speaker: str, sink: Any) -> bool:
        if speaker != "caller" or sink is None:
            return orig_set_sink(self, call_id, speaker, sink)

        def stamped(pcm: bytes) -> None:
            with tr.lock:
                tr.fed.append((time.time(), len(tr.pcm) // 2, len(pcm) // 2))
                tr.pcm += pcm
            sink(pcm)

        return orig_set_sink(self, call_id, speaker, stamped)

    def audio(self: Any, offset: int, chunk: bytes) -> None:
        before = self._stats["chunks_fed"]
        orig_audio(self, offset, chunk)
        if self.speaker == "caller":
            with tr.lock:
                tr.decoded.append((time.time(), offset, self._stats["chunks_fed"] > before))

    def flush(self: Any, only_if_words: bool = False) -> None:
        self._trace_flush = True
        try:
            orig_flush(self, only_if_words)
        finally:
            self._trace_flush = False

    def final(self: Any, raw: str) -> None:
        orig_final(self, raw)
        if self.speaker == "caller" and self._rec is not None:
            with tr.lock:
                tr.finals.append(
                    {
                        "t": time.time(),
                        "flush": bool(getattr(self, "_trace_flush", False)),
                        "fed_samples": self._rec.fed_samples,
                        "stream_s": self._timeline.to_stream(self._rec.fed_samples / RATE),
                    }
                )

    def on_caption(self: Any, call_id: str, speaker: str, event: dict[str, Any]) -> None:
        if speaker == "caller" and event.get("type") == "caption":
            with tr.lock:
                tr.sent.append(
                    {
                        "t": time.time(),
                        "kind": event.get("kind"),
                        "text": event.get("text"),
                        "utterance_end": event.get("utterance_end"),
                    }
                )
        orig_on_caption(self, call_id, speaker, event)

    Gateway.set_sink = set_sink  # type: ignore[method-assign]
    transcriber.CaptionStream._audio = audio  # type: ignore[method-assign]
    transcriber.CaptionStream._flush = flush  # type: ignore[method-assign]
    transcriber.CaptionStream._final = final  # type: ignore[method-assign]
    LiveCaptions._on_caption = on_caption  # type: ignore[method-assign]
    try:
        yield tr
    finally:
        Gateway.set_sink = orig_set_sink  # type: ignore[method-assign]
        transcriber.CaptionStream._audio = orig_audio  # type: ignore[method-assign]
        transcriber.CaptionStream._flush = orig_flush  # type: ignore[method-assign]
        transcriber.CaptionStream._final = orig_final  # type: ignore[method-assign]
        LiveCaptions._on_caption = orig_on_caption  # type: ignore[method-assign]


def stages(
    file_pcm: bytes,
    spans: list[tuple[float, float]],
    mic_start_ms: float,
    level: list[list[int]],
    tr: Trace,
    caps: list[dict[str, Any]],
) -> dict[str, Any]:
    """Per utterance, the wall time of each stage of its last word's end, and medians."""
    file_on = [i * ENV_STEP / RATE for i in onsets(envelope(file_pcm), 1000)]
    stream_on = [i * ENV_STEP / RATE for i in onsets(envelope(bytes(tr.pcm)), 1000)]
    page_on = [t / 1000 for t, v in _page_onsets(level, 1000)]
    # file time -> stream time: the stream began mid-file (the sink attaches after connect);
    # pair the last onsets (the first sentences may precede the stream).
    n = min(len(file_on), len(stream_on))
    shift = (
        statistics.median(f - s for f, s in zip(file_on[-n:], stream_on[-n:], strict=True))
        if n
        else None
    )
    m = min(len(file_on), len(page_on))
    page_t0 = (
        statistics.median(p - f for f, p in zip(file_on[-m:], page_on[-m:], strict=True))
        if m
        else None
    )
    rows = []
    for _, last_end in spans:
        row: dict[str, Any] = {"last_word_end_in_file": round(last_end, 2)}
        said_bench = mic_start_ms / 1000 + last_end
        said = page_t0 + last_end if page_t0 is not None else said_bench
        row["bench_t0_error_ms"] = round((said - said_bench) * 1000)
        if shift is None:
            rows.append(row)
            continue
        sample = int((last_end - shift) * RATE)
        arr = tr.arrival(sample)
        dec = tr.decoded_at(sample)
        fin = _final_for(tr, sample)
        sent = _sent_for(tr, last_end - shift)
        shown = _shown_for(caps, sent)
        row.update(
            {
                "mic_to_gateway_ms": _ms(arr, said),
                "gateway_to_decoded_ms": _ms(dec, arr),
                "decoded_to_final_ms": _ms(fin["t"] if fin else None, dec),
                "final_by": (fin["flush"] and "gate flush" or "endpoint") if fin else None,
                "audio_after_word_when_final_s": round(fin["fed_stream_s"] - (last_end - shift), 2)
                if fin
                else None,
                "final_to_sent_ms": _ms(sent["t"] if sent else None, fin["t"] if fin else None),
                "sent_to_shown_ms": _ms(shown, sent["t"] if sent else None),
                "said_to_shown_ms": _ms(shown, said),
            }
        )
        rows.append(row)
    keys = [k for k in rows[0] if k.endswith("_ms")] if rows else []
    med = {
        k: statistics.median(r[k] for r in rows if r.get(k) is not None)
        for k in keys
        if any(r.get(k) is not None for r in rows)
    }
    return {"page_t0_vs_bench_t0_ms": _ms(page_t0, mic_start_ms / 1000), "rows": rows,
            "medians": med}  # fmt: skip


def _page_onsets(level: list[list[int]], threshold: int) -> list[tuple[float, int]]:
    out, quiet = [], 100
    for t, v in level:
        if v > threshold:
            if quiet >= 100:
                out.append((t, v))
            quiet = 0
        else:
            quiet += 1
    return out


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((a - b) * 1000)


def _final_for(tr: Trace, sample: int) -> dict[str, Any] | None:
    """The first final produced after the decoder had been fed past `sample`."""
    for f in tr.finals:
        if f["stream_s"] * RATE >= sample:
            return {**f, "fed_stream_s": f["stream_s"]}
    return None


def _sent_for(tr: Trace, stream_end: float) -> dict[str, Any] | None:
    finals = [s for s in tr.sent if s["kind"] == "final" and s["utterance_end"] is not None]
    if not finals:
        return None
    best = min(finals, key=lambda s: abs(s["utterance_end"] - stream_end))
    return best if abs(best["utterance_end"] - stream_end) < 1.5 else None


def _shown_for(caps: list[dict[str, Any]], sent: dict[str, Any] | None) -> float | None:
    if sent is None:
        return None
    for c in caps:
        if c["kind"] == "final" and c["t"] / 1000 >= sent["t"] - 0.05:
            return c["t"] / 1000
    return None

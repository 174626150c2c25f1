"""One call's guidance as a pure state machine: the agent pushes steps, the caller answers.

No I/O and no asyncio: the live layer calls these methods, stores the answer rows they
return and sends `snapshot()` to the agent and `caller_view()` to the caller after each one.

Every change of what the caller sees bumps `seq`; the caller answers with the `seq` of the
view it is showing, so a late tap on a step that has already been replaced is refused.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from hotline.guidance.errors import (
    BadAnswer,
    BadText,
    NoGuidance,
    NoPrevious,
    NoSuchScript,
    NoSuchStep,
    NotCurrent,
    StaleStep,
)
from hotline.guidance.model import Library, Script, Step, pick, too_long, wide_units
from hotline.guidance.report import report

__all__ = ["ANSWERS", "AnswerRow", "GuidanceSession", "StepState", "clean_free_text", "report"]

ANSWERS = ("shown", "listening", "done", "help")
MODES = ("idle", "step", "hint", "text", "finished")
MAX_FREE_TEXT_LINES = 6
_MARKUP = re.compile(r"<\s*[a-zA-Z/!?]|&[a-zA-Z#][a-zA-Z0-9]*;")


def clean_free_text(text: object) -> str:
    """Free text fit to show large: plain, non-empty, and short enough for one screen."""
    if not isinstance(text, str):
        raise BadText("free text must be a string")
    text = text.strip()
    if not text:
        raise BadText("free text is empty")
    if any(unicodedata.category(c) == "Cc" and c != "\n" for c in text):
        raise BadText("free text has control characters")
    if _MARKUP.search(text):
        raise BadText("free text must be plain text, not markup")
    if text.count("\n") >= MAX_FREE_TEXT_LINES:
        raise BadText(f"free text has more than {MAX_FREE_TEXT_LINES} lines")
    latin = wide_units(text) == len(text) / 2
    problem = too_long("free_text", "en" if latin else "zh", text)
    if problem:
        raise BadText(f"free text too long: {problem}")
    return text


@dataclass
class StepState:
    """What the caller has done with one step, for the agent panel and the report."""

    state: str = "pending"  # pending, sent, shown, listening, done, needs_help, skipped
    help_count: int = 0
    visits: int = 0
    active_seconds: float = 0.0
    entered_at: float | None = None  # clock time it became current; None when not current


@dataclass(frozen=True)
class AnswerRow:
    """One caller answer, as the live layer stores it for `report`."""

    script_id: str
    step_id: str | None
    answer: str
    seq: int
    at: float
    seconds: float

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


class GuidanceSession:
    """Guidance state of one call."""

    def __init__(self, library: Library, *, clock: Callable[[], float] = time.time) -> None:
        self.library = library
        self.clock = clock
        self.script: Script | None = None
        self.seq = 0
        self.mode = "idle"
        self.step_id: str | None = None
        self.origin: str | None = None  # main step a detour came from
        self.shown_text: str | None = None
        self.text_return: str = "idle"  # mode to go back to when free text is dismissed
        self.waiting_for_agent = False
        self.states: dict[str, StepState] = {}

    # ----- the agent's actions -------------------------------------------------------------

    def start(self, script_id: str) -> Step:
        """Start a script at its first step and return that step."""
        script = self.library.get(script_id) if isinstance(script_id, str) else None
        if script is None:
            raise NoSuchScript(f"no script {script_id!r}")
        self._leave()
        self.script = script
        self.states = {s.id: StepState() for s in script.steps}
        self.origin = None
        self.shown_text = None
        first = script.main_steps[0]
        self._enter(first.id)
        return first

    def push(self, step_id: str) -> Step:
        """Show a step of the current script (any step, including detours)."""
        script = self._require()
        step = script.step(step_id) if isinstance(step_id, str) else None
        if step is None:
            raise NoSuchStep(f"no step {step_id!r} in {script.id}")
        if step.detour:
            if self.current and not self.current.detour and self.mode in ("step", "hint"):
                self.origin = self.current.id
        else:
            self.origin = None
        self._enter(step.id)
        return step

    def back(self) -> Step | None:
        """Undo one level: free text, then hint, then detour, then the previous main step."""
        script = self._require()
        if self.mode == "text":
            self._dismiss_text()
            return self.current
        if self.mode == "hint":
            self.mode = "step"
            self.waiting_for_agent = False
            self._bump()
            return self.current
        if self.mode == "finished":
            last = script.main_steps[-1]
            self._enter(last.id)
            return last
        step = self.current
        if step is not None and step.detour:
            return self._return_from_detour()
        prev = script.before(step.id) if step else None
        if prev is None:
            raise NoPrevious("already at the first step")
        self._enter(prev.id)
        return prev

    def skip(self) -> Step | None:
        """Mark the current step skipped and move on."""
        self._require()
        if self.mode == "text":
            self._dismiss_text()
        if self.mode == "finished" or self.current is None:
            raise NotCurrent("no step to skip")
        st = self.states[self.current.id]
        if st.state != "done":
            st.state = "skipped"
        return self._advance()

    def free_text(self, text: str) -> str:
        """Show the agent's own words large on the caller's screen (works without a script)."""
        text = clean_free_text(text)
        if self.mode != "text":
            self.text_return = self.mode
        self.mode = "text"
        self.shown_text = text
        self.waiting_for_agent = False  # the agent has answered the call for help
        self._bump()
        return text

    def stop(self) -> None:
        """End guidance; the caller's screen goes back to the call."""
        self._leave()
        self.script = None
        self.step_id = None
        self.origin = None
        self.shown_text = None
        self.mode = "idle"
        self.waiting_for_agent = False
        self._bump()

    # ----- the caller's answers ------------------------------------------------------------

    def answer(self, seq: int, answer: str, step_id: str | None = None) -> AnswerRow:
        """Apply the caller's answer to the view numbered `seq`; return the row to store."""
        if answer not in ANSWERS:
            raise BadAnswer(f"answer must be one of {', '.join(ANSWERS)}")
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise BadAnswer("seq must be an integer")
        if seq < self.seq:
            raise StaleStep(f"view {seq} was replaced by view {self.seq}")
        if seq > self.seq:
            raise NotCurrent(f"no view {seq} has been shown yet")
        if self.mode in ("idle", "finished") or (self.script is None and self.mode != "text"):
            raise NotCurrent("no step is on the caller's screen")
        if step_id is not None and step_id != self.step_id:
            raise NotCurrent(f"step {step_id!r} is not the current step")
        row = AnswerRow(
            script_id=self.script.id if self.script else "",
            step_id=self.step_id if self.mode != "text" else None,
            answer=answer,
            seq=seq,
            at=self.clock(),
            seconds=round(self._seconds(self.step_id), 1) if self.step_id else 0.0,
        )
        if self.mode == "text":
            self._answer_text(answer)
        else:
            self._answer_step(answer)
        return row

    def _answer_text(self, answer: str) -> None:
        if answer == "done":
            self._dismiss_text()
        elif answer == "help" and not self.waiting_for_agent:
            self.waiting_for_agent = True
            self._bump()

    def _answer_step(self, answer: str) -> None:
        step = self.current
        assert step is not None  # mode is step or hint, so a step is current
        st = self.states[step.id]
        if answer == "shown":
            if st.state == "sent":
                st.state = "shown"
        elif answer == "listening":
            if st.state in ("sent", "shown"):
                st.state = "listening"
        elif answer == "done":
            st.state = "done"
            self._advance()
        else:  # help: a hint first, then the branch, then the agent
            st.state = "needs_help"
            st.help_count += 1
            if self.mode == "step" and step.hint:
                self.mode = "hint"
                self._bump()
            elif step.on_help:
                if not step.detour:
                    self.origin = step.id
                self._enter(step.on_help)
            elif not self.waiting_for_agent:
                self.waiting_for_agent = True
                self._bump()

    # ----- what the two screens show -------------------------------------------------------

    @property
    def current(self) -> Step | None:
        """The step on (or behind) the caller's screen."""
        if self.script is None or self.step_id is None:
            return None
        return self.script.step(self.step_id)

    def _number(self) -> int | None:
        if self.script is None or self.step_id is None:
            return None
        n = self.script.number(self.step_id)
        if n is None and self.origin:
            n = self.script.number(self.origin)
        return n

    def snapshot(self) -> dict[str, Any]:
        """Everything the agent panel shows, JSON-able; also enough to `restore` from."""
        script = self.script
        steps = []
        if script is not None:
            for s in script.steps:
                st = self.states[s.id]
                steps.append(
                    {
                        "id": s.id,
                        "number": script.number(s.id),
                        "detour": s.detour,
                        "state": st.state,
                        "help_count": st.help_count,
                        "visits": st.visits,
                        "seconds": round(self._seconds(s.id), 1),
                    }
                )
        return {
            "seq": self.seq,
            "mode": self.mode,
            "script_id": script.id if script else None,
            "step_id": self.step_id,
            "number": self._number(),
            "total": len(script.main_steps) if script else 0,
            "origin": self.origin,
            "free_text": self.shown_text if self.mode == "text" else None,
            "text_return": self.text_return if self.mode == "text" else None,
            "waiting_for_agent": self.waiting_for_agent,
            "steps": steps,
        }

    def caller_view(self, lang: str = "zh_CN", dialect: str | None = None) -> dict[str, Any]:
        """What the caller's screen shows, in their language and dialect wording."""
        script = self.script
        step = self.current if self.mode in ("step", "hint") else None
        view: dict[str, Any] = {
            "seq": self.seq,
            "mode": self.mode,
            "lang": lang,
            "script_id": script.id if script else None,
            "title": pick(script.title, lang) if script else None,
            "step_id": step.id if step else None,
            "number": self._number() if step else None,
            "total": len(script.main_steps) if script else 0,
            "text": None,
            "done_text": None,
            "picture_url": None,
            "highlight": None,
            "alt": None,
            "is_hint": self.mode == "hint",
            "is_free_text": self.mode == "text",
            "detour": bool(step and step.detour),
            "waiting_for_agent": self.waiting_for_agent,
            "dialect": None,
            "audio_url": None,  # set by the live layer (TTS of `text`)
        }
        if self.mode == "text":
            view["text"] = self.shown_text
        elif step is not None:
            texts = step.hint if self.mode == "hint" else step.text
            view["text"] = pick(texts, lang, dialect)
            if dialect and lang != "en" and dialect in texts:
                view["dialect"] = dialect
            view["done_text"] = pick(step.done, lang, dialect) or None
            view["picture_url"] = self.library.picture_url(step.picture)
            view["highlight"] = step.highlight.to_json() if step.highlight else None
            view["alt"] = pick(step.alt, lang) or None
        return view

    @classmethod
    def restore(
        cls, library: Library, snap: dict[str, Any], *, clock: Callable[[], float] = time.time
    ) -> GuidanceSession:
        """Rebuild a session from `snapshot()` (e.g. after the call moves to another process)."""
        session = cls(library, clock=clock)
        session.seq = int(snap.get("seq", 0))
        script_id = snap.get("script_id")
        if script_id is not None:
            script = library.get(script_id)
            if script is None:
                raise NoSuchScript(f"no script {script_id!r}")
            session.script = script
            session.states = {s.id: StepState() for s in script.steps}
            for row in snap.get("steps", []):
                if row.get("id") in session.states:
                    session.states[row["id"]] = StepState(
                        state=row["state"],
                        help_count=row["help_count"],
                        visits=row["visits"],
                        active_seconds=float(row["seconds"]),
                    )
        session.mode = snap.get("mode", "idle")
        session.step_id = snap.get("step_id")
        session.origin = snap.get("origin")
        session.shown_text = snap.get("free_text")
        session.text_return = snap.get("text_return") or "idle"
        session.waiting_for_agent = bool(snap.get("waiting_for_agent"))
        if session.step_id in session.states and session.mode in ("step", "hint", "text"):
            session.states[session.step_id].entered_at = clock()
        return session

    # ----- internals ---------------------------------------------------------------------

    def _require(self) -> Script:
        if self.script is None:
            raise NoGuidance("no script has been started")
        return self.script

    def _bump(self) -> None:
        self.seq += 1

    def _seconds(self, step_id: str | None) -> float:
        st = self.states.get(step_id or "")
        if st is None:
            return 0.0
        running = self.clock() - st.entered_at if st.entered_at is not None else 0.0
        return st.active_seconds + max(running, 0.0)

    def _leave(self) -> None:
        """Stop the clock of the current step."""
        st = self.states.get(self.step_id or "")
        if st is not None and st.entered_at is not None:
            st.active_seconds += max(self.clock() - st.entered_at, 0.0)
            st.entered_at = None

    def _enter(self, step_id: str) -> None:
        self._leave()
        self.step_id = step_id
        self.mode = "step"
        self.shown_text = None
        self.waiting_for_agent = False
        st = self.states[step_id]
        st.entered_at = self.clock()
        st.visits += 1
        if st.state != "done":
            st.state = "sent"
        self._bump()

    def _advance(self) -> Step | None:
        """After done or skip: leave a detour for its origin, else the next main step."""
        assert self.script is not None and self.current is not None
        if self.current.detour:
            return self._return_from_detour()
        nxt = self.script.after(self.current.id)
        if nxt is None:
            self._leave()
            self.mode = "finished"
            self.waiting_for_agent = False
            self._bump()
            return None
        self._enter(nxt.id)
        return nxt

    def _return_from_detour(self) -> Step:
        assert self.script is not None
        target = self.origin or self.script.main_steps[0].id
        self.origin = None
        self._enter(target)
        return self.script.step(target)  # type: ignore[return-value]

    def _dismiss_text(self) -> None:
        self.mode = self.text_return if self.text_return in MODES else "idle"
        if self.mode == "text":
            self.mode = "idle"
        self.shown_text = None
        self.waiting_for_agent = False
        self._bump()

"""The spoken identity check over real websockets: four digits on the elder's screen, the
elder's final captions checked (injected here at the caption engine's output, as a
recognised utterance would arrive), the outcome recorded on the timeline and in history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline import identity
from hotline.db import calls as calls_db
from tests.support import SLOW, ServerThread
from tests.test_call_ws import (
    add_agent,
    add_link,
    call_row,
    connect_call,
    in_call,
    make_server,
    open_agent,
    open_caller,
    quiet,
    run,
    tap,
)

KOREAN = dict(zip("0123456789", "영일이삼사오육칠팔구", strict=True))


def said(server: ServerThread, call_id: str, text: str) -> None:
    """A final caption of the elder, as the caption engine delivers it."""
    event: dict[str, Any] = {"type": "caption", "kind": "final", "text": text, "words": []}
    server.run(server.running.captions._on_caption, call_id, "caller", event)


@pytest.fixture
def quick_server(tmp_path: Path) -> Iterator[ServerThread]:
    yield from make_server(tmp_path, identity_challenge_seconds=0.4 * SLOW)


def test_spoken_digits_pass_and_outcome_goes_into_history(server: ServerThread) -> None:
    agent_id, other_id = add_agent(server), add_agent(server)
    link = add_link(server)

    async def scenario() -> str:
        agent = await open_agent(server, agent_id)
        other = await open_agent(server, other_id, available=False)
        caller = await open_caller(server, link)
        call_id, _ = await connect_call(caller, agent)
        await agent.send({"type": "identity_result", "call_id": call_id, "outcome": "verified"})
        await agent.expect("error", code="challenge_not_passed")
        await other.send({"type": "identity_challenge", "call_id": call_id})
        await other.expect("error", code="not_your_call")
        await caller.send({"type": "identity_challenge", "call_id": call_id})
        await caller.expect("error", code="unknown_type")
        await agent.send({"type": "identity_challenge", "call_id": call_id})
        shown = await caller.expect("identity_challenge", call_id=call_id)
        digits = shown["digits"]
        assert len(digits) == 4 and digits.isdigit() and shown["say"] and shown["text"]
        assert (await agent.expect("identity_challenge", call_id=call_id))["digits"] == digits
        wrong = "".join(str((int(d) + 1) % 10) for d in digits)
        said(server, call_id, " ".join(KOREAN[d] for d in wrong))
        heard = await agent.expect("identity_heard", call_id=call_id)
        assert heard["passed"] is False and heard["heard"] == wrong
        said(server, call_id, "네 " + " ".join(KOREAN[d] for d in digits) + " 요")
        ok = await agent.expect("identity_heard", call_id=call_id)
        assert ok["passed"] is True
        await caller.expect("identity_done", call_id=call_id)
        for bad, code in (
            ({"outcome": "maybe"}, "bad_field"),
            ({"outcome": "not_verified"}, "missing_field"),
        ):
            await agent.send({"type": "identity_result", "call_id": call_id, **bad})
            await agent.expect("error", code=code)
        await agent.send({"type": "identity_result", "call_id": call_id, "outcome": "verified"})
        done = await agent.expect("identity_recorded", call_id=call_id)
        assert done["outcome"] == "verified"
        await agent.send({"type": "hangup", "call_id": call_id})
        await caller.expect("ended", call_id=call_id)
        call_row(server, call_id)
        # The next call of this elder: the card shows the check on the last call.
        await agent.send({"type": "ready"})
        queued = await tap(caller)
        card = await agent.expect("context", call_id=queued["call_id"])
        assert card["card"]["last_calls"][0]["identity"] == "verified"
        return call_id

    call_id = run(scenario())
    kinds = [e["kind"] for e in calls_db.events(server.db, call_id)]
    assert (
        kinds.index("identity_challenge") < kinds.index("identity_spoken") < kinds.index("identity")
    )


def test_challenge_answered_after_it_expired(quick_server: ServerThread) -> None:
    server = quick_server
    agent_id = add_agent(server)
    link = add_link(server)

    async def scenario() -> None:
        agent, caller, call_id = await in_call(server, agent_id, link)
        await agent.send({"type": "identity_challenge", "call_id": call_id})
        digits = (await caller.expect("identity_challenge", call_id=call_id))["digits"]
        await agent.expect("identity_expired", call_id=call_id)
        await caller.expect("identity_done", call_id=call_id)
        said(server, call_id, digits)  # too late: ignored
        await quiet(agent, "identity_heard", 0.3)
        await agent.send({"type": "identity_result", "call_id": call_id, "outcome": "verified"})
        await agent.expect("error", code="challenge_expired")
        await agent.send(
            {
                "type": "identity_result",
                "call_id": call_id,
                "outcome": "not_verified",
                "reason": "没读出来",
            }
        )
        assert (await agent.expect("identity_recorded"))["reason"] == "没读出来"

    run(scenario())


def test_digit_reading() -> None:
    assert identity.digits_in("四八二一") == "4821"
    assert identity.digits_in("사 팔 이 일") == "4821"
    assert identity.digits_in("my code is 4 8 2 1.") == "4821"
    assert identity.matches("4821", "음 사팔이일 이에요")
    assert not identity.matches("4821", "사 팔 일 이")
    assert not identity.matches("", "1234")
    # Numeral syllables inside ordinary words are not digits (the recogniser's near-misses).
    assert identity.digits_in("이 에 이어 화") == "2"
    assert identity.digits_in("일 오후 이 요") == "12"
    assert not identity.matches("2525", "이에요 오후 이어 오이다")
    for _ in range(50):
        c = identity.new_challenge()
        assert len(c) == 4 and c.isdigit() and c[0] != "0"

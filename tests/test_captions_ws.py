"""Caption controls over the websocket, and calls that carry on when captions cannot run."""

from __future__ import annotations

from hotline.db import agents as agents_db
from hotline.db import calls as calls_db
from hotline.db import elders as elders_db
from tests.media import ToneTrack
from tests.support import ServerThread, connect_call


async def _call(server: ServerThread, dialect: str, hard_of_hearing: bool = False):
    agent_row = agents_db.add(server.db, f"a-{dialect}", "pw", [dialect, "ko"])
    elder = elders_db.add(server.db, "甲", dialect=dialect, hard_of_hearing=hard_of_hearing)
    link = elders_db.new_link(server.db, elder.id).token
    return await connect_call(server, agent_row.id, link)


def test_no_model_means_captions_off_and_the_call_goes_on(server: ServerThread) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    async def scenario() -> str:
        agent, caller, call_id = await _call(server, "cmn")  # no Mandarin model installed
        config = await agent.expect("captions_config")
        assert config["caller_dialect"] == "cmn"
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(ToneTrack())
        await pc.setLocalDescription(await pc.createOffer())
        await caller.send({"type": "tap_offer", "sdp": pc.localDescription.sdp})
        answer = await caller.expect("tap_answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        status = await agent.expect("captions_status")
        assert status["state"] == "off" and status["reason"] == "model_not_installed"
        # Switching to a dialect that has a model turns captions on, call still up.
        await agent.send({"type": "caption_dialect", "dialect": "ko"})
        assert (await agent.expect("captions_config"))["caller_dialect"] == "ko"
        await agent.expect("captions_status", state="on", timeout=30)
        await agent.send({"type": "caption_dialect", "dialect": "klingon"})
        assert (await agent.expect("error"))["code"] == "bad_field"
        await pc.close()
        await caller.send({"type": "hangup"})
        await agent.expect("ended")
        return call_id

    call_id = server.call(scenario(), timeout=60)
    assert calls_db.get(server.db, call_id)["outcome"] == "completed"
    events = [e["kind"] for e in calls_db.events(server.db, call_id)]
    assert "caption_dialect" in events


def test_captions_for_the_caller_follow_both_toggles(server: ServerThread) -> None:
    async def scenario() -> None:
        agent, caller, _ = await _call(server, "cmn", hard_of_hearing=True)
        assert (await caller.expect("captions_config"))["for_caller"] is True  # default on
        await caller.send({"type": "captions", "on": False})
        assert (await caller.expect("captions_config"))["for_caller"] is False
        await agent.send({"type": "caller_captions", "on": True})
        assert (await caller.expect("captions_config"))["for_caller"] is True
        await caller.send({"type": "captions", "on": "yes"})
        assert (await caller.expect("error"))["code"] == "bad_field"

    server.call(scenario())

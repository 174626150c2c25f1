// A family member joins a call: one connection to the elder and one to the agent (a mesh of
// three; this page offers on both), signalled through the hotline's websocket.
import { Live, wsBase } from "./live.js";
import { fmt } from "./dom.js";
import { getMedia, PeerCall } from "./rtc.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const S = boot.strings;
const $ = (id) => document.getElementById(id);
const state = { stream: null, peers: {}, live: null, callId: null };
window.hotline = state;

function show(text) { $("join-note").textContent = text; }

function connectTo(party, iceServers) {
  if (state.peers[party]) state.peers[party].close();
  const peer = new PeerCall({
    role: "offerer", iceServers, stream: state.stream,
    remoteVideo: $(`${party === "caller" ? "elder" : "agent"}-video`),
    remoteAudio: $(`${party === "caller" ? "elder" : "agent"}-audio`),
    send: (data) => state.live.send({ type: "family_signal", to: party, data }),
  });
  state.peers[party] = peer;
  peer.start();
}

function leave(text) {
  for (const p of Object.values(state.peers)) p.close();
  state.peers = {};
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  if (state.live) state.live.stop();
  $("join-videos").hidden = true; $("leave").hidden = true; $("join").hidden = true;
  show(text);
}

async function handle(msg) {
  switch (msg.type) {
    case "hello":
      state.callId = msg.call_id;
      state.ice = msg.ice_servers || [];
      $("join-title").textContent = fmt(S["join.in_call"], { elder: msg.elder || "" });
      $("elder-name").textContent = msg.elder || "";
      // A second hello: the line moved to another node (cluster failover), whose hello may
      // come before the agent's console is back there (no name yet): keep the one we had.
      state.agentName = msg.agent_name || state.agentName || "";
      $("agent-name").textContent = fmt(S["join.agent"], { name: state.agentName });
      $("join-videos").hidden = false; $("leave").hidden = false; $("join").hidden = true;
      show(S["join.joined"]);
      for (const party of msg.parties || []) connectTo(party, state.ice);
      break;
    case "family_signal": if (state.peers[msg.from]) await state.peers[msg.from].signal(msg.data); break;
    case "agent_changed": connectTo("agent", state.ice); break;
    case "ended": leave(S["join.ended"]); break;
    case "error": leave(S[`join.error.${msg.code}`] || msg.detail || msg.code); break;
    default: break;
  }
}

$("join").addEventListener("click", async () => {
  $("join").disabled = true;
  try { state.stream = await getMedia(); } catch (e) { show(S["join.no_camera"]); $("join").disabled = false; return; }
  $("self-video").srcObject = state.stream;
  state.live = new Live(() => `${wsBase(boot)}?role=family&join=${encodeURIComponent(boot.token)}`, {
    onMessage: handle,
    onDown: (ev) => { if (!state.callId) return; leave(S["join.ended"]); },
  });
  state.live.connect();
});
$("leave").addEventListener("click", () => { state.live.send({ type: "leave" }); leave(S["join.left"]); });

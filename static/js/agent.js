// The agent console: status, ringing, the call (video + tap), the line.
import { Live, wsBase } from "./live.js";
import { fmt } from "./dom.js";
import { getMedia, PeerCall, Tap, setTrackEnabled } from "./rtc.js";
import { mountGuidancePanel } from "/static/guidance/agent-panel.js";
import { mountCallbacksPanel } from "./callbacks-panel.js";
import { mountWrapup } from "./wrapup.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const S = boot.strings;
const $ = (id) => document.getElementById(id);
const state = { status: "offline", ring: null, call: null, stream: null, peer: null, tap: null, muted: false, cameraOff: false, iceServers: [], levels: null };
window.hotline = state;

const dialectName = (id) => boot.dialects[id] || id;

const live = new Live(async () => {
  const r = await fetch("/api/ws-token", { credentials: "same-origin" });
  if (r.status === 401) { location.reload(); throw new Error("signed out"); }
  const { token } = await r.json();
  return `${wsBase(boot)}?role=agent&token=${encodeURIComponent(token)}`;
}, {
  onMessage: handle,
  onOpen: () => { $("conn-note").textContent = ""; },
  onDown: (ev, retrying) => { setStatus("offline"); $("conn-note").textContent = retrying ? S["agent.connection_lost"] : S["agent.replaced"]; endMedia(); },
});
state.send = (m) => live.send(m);

function setStatus(s) {
  state.status = s;
  $("status").dataset.status = s;
  $("status").textContent = S[`status.${s}`] || s;
  $("ready").hidden = s !== "wrap_up";
  $("available").disabled = s !== "away";
  $("away").disabled = s !== "available";
}

let ringTone = null;
function startRingTone() {
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator(); const gain = ctx.createGain();
    osc.frequency.value = 660; gain.gain.value = 0.05;
    osc.connect(gain).connect(ctx.destination); osc.start();
    const timer = setInterval(() => { gain.gain.value = gain.gain.value ? 0 : 0.05; }, 500);
    ringTone = () => { clearInterval(timer); osc.stop(); ctx.close(); };
  } catch (e) { ringTone = null; }
}
function stopRingTone() { if (ringTone) ringTone(); ringTone = null; }

async function ensureMedia() {
  if (state.stream && state.stream.getTracks().some((t) => t.readyState === "live")) return state.stream;
  state.stream = await getMedia();
  $("local").srcObject = state.stream;
  return state.stream;
}

function endMedia() {
  if (state.peer) { state.peer.close(); state.peer = null; }
  if (state.tap) { state.tap.close(); state.tap = null; }
  for (const b of ["mute", "camera", "hangup"]) $(b).disabled = true;
}

async function handle(msg) {
  switch (msg.type) {
    case "hello": setStatus(msg.status); state.iceServers = msg.ice_servers || []; break;
    case "status": setStatus(msg.status); break;
    case "line": {
      const parts = Object.entries(msg.waiting || {}).map(([d, n]) => `${dialectName(d)} ${n}`);
      $("line").textContent = `${fmt(S["agent.waiting_total"], { n: msg.total_waiting })}${parts.length ? " · " + parts.join(" · ") : ""}`;
      break;
    }
    case "ring":
      state.ring = msg;
      $("ring").hidden = false;
      $("ring-text").textContent = fmt(S["agent.ringing"], { elder: msg.elder || S["agent.anonymous"], dialect: dialectName(msg.dialect), seconds: Math.round(msg.waited_seconds) });
      startRingTone();
      break;
    case "ring_cancelled":
      if (state.ring && state.ring.call_id === msg.call_id) { state.ring = null; $("ring").hidden = true; stopRingTone(); }
      break;
    case "connected": {
      $("ring").hidden = true; stopRingTone();
      if (!msg.rejoined) { $("captions").replaceChildren(); $("alert-banner").hidden = true; $("captions-status").textContent = ""; }
      state.call = msg;
      $("call-title").textContent = fmt(S["agent.in_call"], { elder: msg.elder || S["agent.anonymous"], dialect: dialectName(msg.dialect) });
      const stream = await ensureMedia();
      endMedia();
      state.peer = new PeerCall({
        role: "answerer", iceServers: msg.ice_servers, stream, remoteVideo: $("remote"), remoteAudio: $("remote-audio"),
        send: (data) => live.send({ type: "signal", call_id: msg.call_id, data }),
      });
      state.tap = new Tap({ stream, iceServers: msg.ice_servers, sendOffer: (sdp) => live.send({ type: "tap_offer", call_id: msg.call_id, sdp }) });
      state.tap.start();
      for (const b of ["mute", "camera", "hangup"]) $(b).disabled = false;
      break;
    }
    case "signal": if (state.peer) await state.peer.signal(msg.data); break;
    case "tap_answer": if (state.tap) await state.tap.answer(msg.sdp); break;
    case "tap_level": {
      state.levels = msg;
      const rms = msg.caller ? msg.caller.rms : 0;
      $("tap-level").value = rms;
      $("tap-label").textContent = msg.caller && msg.caller.frames > 0 && msg.caller.peak_rms > 50 ? S["agent.gateway_hears"] : S["agent.gateway_none"];
      break;
    }
    case "caller_away":
      $("call-title").textContent = fmt(S["agent.caller_away"], { seconds: Math.round(msg.rejoin_seconds) });
      if (state.peer) { state.peer.close(); state.peer = null; }
      break;
    case "calling_elder":
      $("callback-note").hidden = false;
      $("callback-note").textContent = fmt(S[msg.page_open ? "agent.calling_page" : "agent.call_by_phone"], { elder: msg.elder || S["agent.anonymous"] });
      $("hangup").disabled = false;
      state.call = { call_id: msg.call_id };
      callbacks.refresh();
      break;
    case "ended":
      stopRingTone(); $("ring").hidden = true;
      if (msg.reason !== "callback_by_phone") $("callback-note").hidden = true;
      showWrapup(msg);
      $("caption-dialect").disabled = true; $("caller-captions").disabled = true;
      endMedia();
      $("call-title").textContent = fmt(S["agent.ended"], { reason: S[`reason.${msg.reason}`] || msg.reason });
      state.call = null;
      break;
    case "guide_state": guidance.update(msg.snapshot); break;
    case "caption": showCaption(msg); break;
    case "captions_status":
      if (msg.speaker === "caller") {
        $("captions-status").textContent = msg.state === "on"
          ? fmt(S["agent.captions_on"], { dialect: dialectName(msg.dialect) })
          : msg.state === "reconnecting"
            ? S["agent.captions_reconnecting"]
            : fmt(S["agent.captions_off"], { reason: S[`captions.reason.${msg.reason}`] || msg.reason });
        $("captions-status").dataset.state = msg.state;
      }
      break;
    case "dialect_guess":
      if (msg.dialect) {
        $("captions-status").textContent = fmt(S["agent.dialect_guess"], { dialect: dialectName(msg.dialect), confidence: Math.round((msg.confidence || 0) * 100) });
        $("captions-status").dataset.guess = msg.dialect;
      }
      break;
    case "captions_config":
      $("caption-dialect").value = msg.caller_dialect;
      $("caption-dialect").disabled = false;
      $("caller-captions").checked = msg.for_caller;
      $("caller-captions").disabled = false;
      break;
    case "error":
      $("conn-note").textContent = msg.detail || msg.code;
      if (msg.code === "replaced") live.stop();
      break;
  }
}

$("available").addEventListener("click", () => live.send({ type: "status", status: "available" }));
$("away").addEventListener("click", () => live.send({ type: "status", status: "away" }));
$("ready").addEventListener("click", () => { live.send({ type: "ready" }); $("call-title").textContent = S["agent.no_caller"]; });
$("accept").addEventListener("click", async () => {
  if (!state.ring) return;
  try { await ensureMedia(); } catch (e) { $("conn-note").textContent = String(e); }
  live.send({ type: "accept", call_id: state.ring.call_id });
  state.ring = null;
});
$("decline").addEventListener("click", () => { if (state.ring) live.send({ type: "decline", call_id: state.ring.call_id }); });
$("hangup").addEventListener("click", () => { if (state.call) live.send({ type: "hangup", call_id: state.call.call_id }); });
$("mute").addEventListener("click", () => {
  state.muted = !state.muted; setTrackEnabled(state.stream, "audio", !state.muted);
  $("mute").textContent = state.muted ? S["agent.unmute"] : S["agent.mute"];
});
$("camera").addEventListener("click", () => {
  state.cameraOff = !state.cameraOff; setTrackEnabled(state.stream, "video", !state.cameraOff);
  $("camera").textContent = state.cameraOff ? S["agent.camera_on"] : S["agent.camera_off"];
});

const sel = $("elder-dialect");
for (const [id, name] of Object.entries(boot.dialects)) { const o = document.createElement("option"); o.value = id; o.textContent = name; sel.append(o); }
$("elder-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const r = await fetch("/api/elders", { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": boot.csrf }, body: JSON.stringify({ name: f.get("name"), phone: f.get("phone"), dialect: f.get("dialect") }) });
  const body = await r.json();
  const out = $("elder-result");
  out.textContent = "";
  if (!r.ok) { out.textContent = body.detail || body.error; return; }
  const a = document.createElement("a"); a.href = body.link; a.textContent = body.link; a.target = "_blank";
  const card = document.createElement("a"); card.href = body.card; card.textContent = " QR"; card.target = "_blank";
  out.append(a, card);
});

// Captions: partial text in grey is replaced by the final line; low-confidence words are
// underlined; dialect glosses shown under the line; alert words highlighted with a banner.
const partials = {};
function showCaption(msg) {
  const box = $("captions");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 30;
  let partial = partials[msg.speaker];
  if (msg.kind === "partial") {
    if (!msg.text) return;
    if (!partial) {
      partial = document.createElement("p");
      partial.className = `cap cap-partial cap-${msg.speaker}`;
      box.append(partial);
      partials[msg.speaker] = partial;
    }
    partial.textContent = (msg.speaker === "agent" ? S["agent.me"] + "：" : "") + msg.text;
  } else {
    const line = document.createElement("p");
    line.className = `cap cap-final cap-${msg.speaker}`;
    if (msg.speaker === "agent") line.append(S["agent.me"] + "：");
    const alertPhrases = (msg.alerts || []).map((a) => a.phrase);
    const words = msg.words && msg.words.length ? msg.words : [{ w: msg.text }];
    words.forEach((w, i) => {
      const span = document.createElement("span");
      span.textContent = w.w;
      if (w.low) { span.className = "low"; span.title = `${Math.round((w.conf || 0) * 100)}%`; }
      if (alertPhrases.some((p) => w.w.includes(p) || p.includes(w.w))) span.classList.add("alert");
      line.append(span);
      if (i < words.length - 1) line.append(" ");
    });
    if (msg.gloss && msg.gloss !== msg.text) {
      const g = document.createElement("span"); g.className = "gloss"; g.textContent = msg.gloss; line.append(g);
    }
    if (partial) { partial.replaceWith(line); delete partials[msg.speaker]; } else box.append(line);
    for (const a of msg.alerts || []) showAlert(a);
  }
  if (atBottom) box.scrollTop = box.scrollHeight;
}
function showAlert(alert) {
  if (alert.category === "fraud") state.fraud = true;
  const banner = $("alert-banner");
  banner.textContent = fmt(S[`agent.alert_${alert.category}`] || "⚠ {phrase}", { phrase: alert.phrase });
  banner.className = `alert-banner ${alert.category}`;
  banner.dataset.category = alert.category;
  banner.hidden = false;
}
const capSel = $("caption-dialect");
for (const [id, name] of Object.entries(boot.dialects)) { const o = document.createElement("option"); o.value = id; o.textContent = name; capSel.append(o); }
capSel.addEventListener("change", () => live.send({ type: "caption_dialect", dialect: capSel.value }));
$("caller-captions").addEventListener("change", (ev) => live.send({ type: "caller_captions", on: ev.target.checked }));

// Callbacks list (claim, show number, start, record the attempt) and the wrap-up form.
const callbacks = mountCallbacksPanel($("callbacks"), {
  csrf: boot.csrf, strings: S,
  onStart: (booking) => live.send({ type: "start_callback", booking_id: booking.id }),
});
let wrapup = null;
function showWrapup(msg) {
  if (wrapup) wrapup.close();
  wrapup = null;
  if (["callback_by_phone", "callback_no_answer", "abandoned"].includes(msg.reason)) return;
  wrapup = mountWrapup($("wrapup"), {
    csrf: boot.csrf, strings: { ...S, ...boot.topic_strings }, callId: msg.call_id, fraud: Boolean(state.fraud),
    onSaved: () => { if (wrapup) wrapup.close(); wrapup = null; state.fraud = false; },
  });
}

const guidance = mountGuidancePanel($("guidance"), { send: (m) => live.send(m), strings: S, lang: boot.lang });
state.guidance = guidance;

setStatus("offline");
live.connect();

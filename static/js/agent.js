// The agent console: status, ringing, the call (video + tap), the line.
import { Live, wsBase } from "./live.js";
import { fmt } from "./dom.js";
import { getMedia, PeerCall, Tap, setTrackEnabled } from "./rtc.js";
import { mountGuidancePanel } from "/static/guidance/agent-panel.js";
import { mountCallbacksPanel } from "./callbacks-panel.js";
import { mountWrapup } from "./wrapup.js";
import { mountContextCard } from "./context-card.js";
import { mountTransferPanel } from "./transfer-panel.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const S = boot.strings;
const $ = (id) => document.getElementById(id);
const state = { status: "offline", phase: "idle", ring: null, call: null, stream: null, peer: null, tap: null, muted: false, cameraOff: false, previewing: false, iceServers: [], levels: null };
window.hotline = state;

// The console's phases (idle, ringing, in_call, held, wrap_up) are one explicit state:
// CSS shows what each phase needs from body[data-phase], so nothing lingers by accident.
function setPhase(phase) {
  state.phase = phase;
  document.body.dataset.phase = phase;
  $("preview").hidden = !["idle", "wrap_up"].includes(phase);
}

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
  for (const b of CALL_BUTTONS) $(b).disabled = true;
}
const CALL_BUTTONS = ["mute", "camera", "hold", "transfer-open", "family-invite", "identity-open", "hangup"];

// Between calls the camera and microphone are released (the light goes off); the preview
// button shows the camera on demand.
function stopCamera() {
  if (state.stream) for (const t of state.stream.getTracks()) t.stop();
  state.stream = null;
  state.previewing = false;
  $("local").srcObject = null;
  $("remote").srcObject = null;
  $("preview").setAttribute("aria-pressed", "false");
  $("preview").textContent = S["agent.preview_on"];
}
async function togglePreview() {
  if (state.previewing) { stopCamera(); return; }
  try { await ensureMedia(); } catch (e) { $("conn-note").textContent = String(e); return; }
  state.previewing = true;
  $("preview").setAttribute("aria-pressed", "true");
  $("preview").textContent = S["agent.preview_off"];
}

// Everything of the last caller leaves the screen: captions, alerts, guidance, the meter.
function clearCallView() {
  $("captions").replaceChildren();
  for (const k of Object.keys(partials)) delete partials[k];
  $("alert-banner").hidden = true; $("alert-banner").textContent = "";
  $("captions-status").textContent = ""; delete $("captions-status").dataset.state; delete $("captions-status").dataset.guess;
  $("caption-dialect").disabled = true; $("caller-captions").disabled = true; $("caller-captions").checked = false;
  $("tap-level").value = 0; $("tap-label").textContent = S["agent.gateway_none"];
  $("held-note").hidden = true;
  $("conn-note").textContent = "";  // notes about the last call (resumed, transfer failed)
  $("transfer-note").hidden = true; $("transfer-note").textContent = "";
  endFamily(); $("family-box").hidden = true; $("family-url").value = "";
  $("identity-box").hidden = true; $("identity-box").reset(); $("identity-status").textContent = ""; delete $("identity-status").dataset.passed;
  $("identity-photo").hidden = true; $("identity-still").hidden = true; $("identity-register").disabled = true;
  state.levels = null; state.fraud = false;
  guidance.reset();
}
// Warm transfer: the two agents talk on their own connection before the hand-over. The
// first agent's tracks to the elder are paused, so the consultation gets enabled clones.
async function startConsult(msg) {
  const first = msg.role === "offerer";
  let stream;
  if (first) {
    stream = state.stream ? state.stream.clone() : await ensureMedia();
    for (const t of stream.getTracks()) t.enabled = true;
  } else {
    stream = await ensureMedia();
    $("ring").hidden = true; stopRingTone(); state.ring = null; timers.start("talk");
    setPhase("consulting");
    $("call-title").textContent = fmt(S["transfer.consulting_with"], { name: msg.with });
    if (msg.note) { $("transfer-note").textContent = fmt(S["transfer.note_banner"], { from: msg.with, note: msg.note }); $("transfer-note").hidden = false; }
  }
  endConsult();
  state.consultStream = first ? stream : null;
  state.consult = new PeerCall({
    role: msg.role, iceServers: msg.ice_servers, stream,
    remoteVideo: first ? $("consult-video") : $("remote"), remoteAudio: first ? $("consult-audio") : $("remote-audio"),
    send: (data) => live.send({ type: "consult_signal", call_id: msg.call_id, data }),
  });
  state.consultCallId = msg.call_id;
  state.consultFirst = first;
  $("consult-box").hidden = false;
  $("complete-transfer").hidden = !first;
  $("consult-video").hidden = !first;
  $("consult-title").textContent = fmt(S["transfer.consulting_with"], { name: msg.with });
  if (first) {
    $("consult-title").textContent = fmt(S["transfer.consulting_with"], { name: msg.with });
    $("held-note").textContent = fmt(S["transfer.consulting_with"], { name: msg.with });
    await state.consult.start();
  }
}
function endFamily() {
  if (state.family) { state.family.close(); state.family = null; }
  $("family-video").hidden = true; $("family-video").srcObject = null; $("family-url").hidden = false;
}
function endConsult() {
  if (state.consult) { state.consult.close(); state.consult = null; }
  if (state.consultStream) { for (const t of state.consultStream.getTracks()) t.stop(); state.consultStream = null; }
  $("consult-box").hidden = true;
  $("consult-video").srcObject = null;
}

function endHoldView() {
  setTrackEnabled(state.stream, "audio", !state.muted); setTrackEnabled(state.stream, "video", !state.cameraOff);
  $("hold").textContent = S["agent.hold"]; $("hold").setAttribute("aria-pressed", "false");
  $("held-note").hidden = true; delete $("held-note").dataset.reminded;
}
function resetControls() {
  state.muted = false; state.cameraOff = false;
  $("mute").textContent = S["agent.mute"]; $("camera").textContent = S["agent.camera_off"];
  $("mute").setAttribute("aria-pressed", "false"); $("camera").setAttribute("aria-pressed", "false");
}
// After the wrap-up (or when a new call rings): the screen is as at the start of a shift.
function clearAll() {
  clearCallView();
  if (wrapup) wrapup.close();
  wrapup = null;
  $("callback-note").hidden = true;
  $("call-title").textContent = S["agent.no_caller"];
  timers.stop();
  document.dispatchEvent(new CustomEvent("hotline:reset"));
}

// Timers: how long the caller waited (on the ring), talk time, wrap-up time.
const timers = (() => {
  let tick = null; let label = ""; let since = 0;
  const mmss = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
  const show = () => {
    const seconds = (performance.now() - since) / 1000;
    $("timers").textContent = fmt(S[label], { time: mmss(Math.max(0, seconds)) });
    $("timers").dataset.seconds = String(Math.round(seconds));
  };
  return {
    start(kind, alreadySeconds = 0) {
      label = `agent.timer_${kind}`; since = performance.now() - alreadySeconds * 1000;
      $("timers").dataset.kind = kind;
      clearInterval(tick); show(); tick = setInterval(show, 1000);
    },
    stop() { clearInterval(tick); tick = null; $("timers").textContent = ""; delete $("timers").dataset.kind; },
  };
})();
state.timers = timers;

async function handle(msg) {
  switch (msg.type) {
    case "hello":
      setStatus(msg.status); state.iceServers = msg.ice_servers || [];
      if (msg.status === "wrap_up") setPhase("wrap_up"); else if (!state.call) setPhase("idle");
      break;
    case "status": setStatus(msg.status); break;
    case "line": {
      const parts = Object.entries(msg.waiting || {}).map(([d, n]) => `${dialectName(d)} ${n}`);
      $("line").textContent = `${fmt(S["agent.waiting_total"], { n: msg.total_waiting })}${parts.length ? " · " + parts.join(" · ") : ""}`;
      break;
    }
    case "ring":
      if (state.phase === "wrap_up" || state.phase === "idle") clearAll();
      state.ring = msg;
      setPhase("ringing");
      $("ring").hidden = false;
      $("ring-text").textContent = fmt(S["agent.ringing"], { elder: msg.elder || S["agent.anonymous"], dialect: dialectName(msg.dialect), seconds: Math.round(msg.waited_seconds) });
      $("call-title").textContent = "";
      $("ring-transfer").hidden = msg.kind !== "transfer";
      if (msg.kind === "transfer") $("ring-transfer").textContent = msg.transfer.note ? fmt(S["transfer.ring_note"], { from: msg.transfer.from, note: msg.transfer.note }) : fmt(S["transfer.ring_from"], { from: msg.transfer.from });
      timers.start("wait", msg.waited_seconds || 0);
      startRingTone();
      break;
    case "ring_cancelled":
      if (state.ring && state.ring.call_id === msg.call_id) { state.ring = null; $("ring").hidden = true; stopRingTone(); clearAll(); setPhase("idle"); }
      break;
    case "connected": {
      $("ring").hidden = true; stopRingTone(); endConsult();
      if (!msg.rejoined) { clearCallView(); resetControls(); }
      if (!msg.rejoined || $("timers").dataset.kind !== "talk") { timers.start("talk", msg.talk_seconds || 0); state.talkSince = performance.now(); }
      endHoldView();
      state.call = msg;
      setPhase("in_call");
      $("call-title").textContent = fmt(S["agent.in_call"], { elder: msg.elder || S["agent.anonymous"], dialect: dialectName(msg.dialect) });
      const stream = await ensureMedia();
      endMedia();
      state.peer = new PeerCall({
        role: "answerer", iceServers: msg.ice_servers, stream, remoteVideo: $("remote"), remoteAudio: $("remote-audio"),
        send: (data) => live.send({ type: "signal", call_id: msg.call_id, data }),
      });
      state.tap = new Tap({ stream, iceServers: msg.ice_servers, sendOffer: (sdp) => live.send({ type: "tap_offer", call_id: msg.call_id, sdp }) });
      state.tap.start();
      for (const b of CALL_BUTTONS) $(b).disabled = false;
      break;
    }
    case "on_hold":
      // The caller hears the hold message; our camera and microphone stop going to them (the
      // tap keeps its cloned track, so captions carry on).
      setPhase("held");
      setTrackEnabled(state.stream, "audio", false); setTrackEnabled(state.stream, "video", false);
      $("hold").textContent = S["agent.resume"]; $("hold").setAttribute("aria-pressed", "true");
      $("held-note").textContent = S["agent.on_hold"]; $("held-note").hidden = false;
      timers.start("hold");
      break;
    case "hold_reminder":
      $("held-note").textContent = fmt(S["agent.hold_reminder"], { seconds: msg.seconds });
      $("held-note").dataset.reminded = "1";
      break;
    case "off_hold":
      setPhase("in_call");
      endHoldView();
      $("conn-note").textContent = fmt(S["agent.off_hold"], { seconds: Math.round(msg.held_seconds) });
      timers.start("talk", (performance.now() - state.talkSince) / 1000);
      break;
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
      endMedia();
      stopCamera();
      showWrapup(msg);  // before clearing: a fraud alert in this call shapes the form
      clearCallView();
      $("call-title").textContent = fmt(S["agent.ended"], { reason: S[`reason.${msg.reason}`] || msg.reason });
      timers.start("wrap");
      state.call = null;
      setPhase("wrap_up");
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
      $("conn-note").textContent = S[`transfer.error.${msg.code}`] || S[`identity.error.${msg.code}`] || msg.detail || msg.code;
      if (String(msg.for || "").startsWith("identity")) $("identity-status").textContent = S[`identity.error.${msg.code}`] || msg.detail || msg.code;
      if (msg.code === "replaced") live.stop();
      document.dispatchEvent(new CustomEvent("hotline:message", { detail: msg }));
      break;
    case "transfer_started":
      setPhase("transferring");
      setTrackEnabled(state.stream, "audio", false); setTrackEnabled(state.stream, "video", false);
      $("held-note").textContent = fmt(S["transfer.ringing"], { name: msg.to_name }); $("held-note").hidden = false;
      document.dispatchEvent(new CustomEvent("hotline:message", { detail: msg }));
      break;
    case "transfer_failed":
      endConsult();
      setPhase("in_call");
      endHoldView();
      $("conn-note").textContent = fmt(S["transfer.failed"], { reason: S[`transfer.reason.${msg.reason}`] || msg.reason });
      document.dispatchEvent(new CustomEvent("hotline:message", { detail: msg }));
      break;
    case "identity_challenge":
      $("identity-status").textContent = fmt(S["identity.asked"], { digits: msg.digits });
      break;
    case "identity_heard":
      $("identity-status").textContent = fmt(S[msg.passed ? "identity.passed" : "identity.heard"], { heard: msg.heard || "—" });
      $("identity-status").dataset.passed = String(msg.passed);
      break;
    case "identity_expired": $("identity-status").textContent = S["identity.expired"]; break;
    case "identity_recorded": $("identity-status").textContent = fmt(S["identity.recorded"], { outcome: S[`identity.outcome.${msg.outcome}`] }); break;
    case "family_link":
      $("family-box").hidden = false;
      $("family-status").textContent = S["agent.family_link"];
      $("family-url").value = msg.url;
      $("family-url").select();
      break;
    case "family_joined": {
      endFamily();
      const stream = await ensureMedia();
      state.family = new PeerCall({
        role: "answerer", iceServers: state.iceServers, stream, remoteVideo: $("family-video"), remoteAudio: $("family-audio"),
        send: (data) => live.send({ type: "family_signal", data }),
      });
      $("family-box").hidden = false; $("family-video").hidden = false;
      $("family-status").textContent = S["agent.family_joined"]; $("family-url").hidden = true;
      break;
    }
    case "family_signal": if (state.family) await state.family.signal(msg.data); break;
    case "family_left": endFamily(); $("family-box").hidden = false; $("family-status").textContent = S["agent.family_left"]; break;
    case "consult": if (msg.role === "offerer") transfer.close(); startConsult(msg); break;
    case "consult_signal": if (state.consult) await state.consult.signal(msg.data); break;
    case "consult_ended":
      endConsult();
      if (state.phase === "consulting") { stopCamera(); clearAll(); setPhase("idle"); }
      break;
    case "transferred":
    case "transfer_waiting":
      // The transfer was answered (or, warm, completed), or it waits at the head for a busy
      // colleague: either way the call has left this agent (who writes a wrap-up).
      endConsult(); endMedia(); stopCamera(); clearCallView(); transfer.close();
      $("call-title").textContent = msg.type === "transferred" ? fmt(S["transfer.done"], { name: msg.to_name })
        : fmt(S["transfer.waiting"], { name: msg.to_name || (msg.to_kind === "supervisor" ? S["transfer.to_supervisor"] : fmt(S["transfer.to_dialect"], { dialect: dialectName(msg.dialect) })), minutes: Math.ceil(msg.max_wait_seconds / 60) });
      timers.start("wrap");
      state.call = null;
      setPhase("wrap_up");
      break;
    case "transfer_note":
      $("transfer-note").textContent = fmt(S["transfer.note_banner"], { from: msg.from, note: msg.note || "—" });
      $("transfer-note").hidden = false;
      break;
    case "captions_so_far":
      if (msg.lines.length) {
        const box = $("captions");
        const head = document.createElement("p"); head.className = "cap cap-before"; head.textContent = S["transfer.captions_before"];
        const lines = msg.lines.map((l) => { const p = document.createElement("p"); p.className = `cap cap-final cap-${l.speaker}`; p.textContent = (l.speaker === "agent" ? S["agent.me"] + "：" : "") + l.text; return p; });
        box.prepend(head, ...lines);
      }
      break;
    default:
      document.dispatchEvent(new CustomEvent("hotline:message", { detail: msg }));
  }
}

$("available").addEventListener("click", () => live.send({ type: "status", status: "available" }));
$("away").addEventListener("click", () => live.send({ type: "status", status: "away" }));
$("ready").addEventListener("click", () => { live.send({ type: "ready" }); clearAll(); setPhase("idle"); });
$("preview").addEventListener("click", togglePreview);
$("accept").addEventListener("click", async () => {
  if (!state.ring) return;
  try { await ensureMedia(); } catch (e) { $("conn-note").textContent = String(e); }
  live.send({ type: state.ring.kind === "transfer" ? "accept_transfer" : "accept", call_id: state.ring.call_id });
  state.ring = null;
});
$("decline").addEventListener("click", () => { if (state.ring) live.send({ type: state.ring.kind === "transfer" ? "decline_transfer" : "decline", call_id: state.ring.call_id }); });
$("transfer-open").addEventListener("click", () => transfer.open());
// The registered photo beside a still taken now from the live video (the still stays in this
// page unless the agent registers it, with the elder's consent).
async function showRegisteredPhoto() {
  const img = $("identity-photo");
  img.hidden = true; $("identity-photo-note").textContent = S["identity.registered"];
  if (!state.elderId) { $("identity-photo-note").textContent = S["identity.no_photo"]; return; }
  const r = await fetch(`/api/elders/${state.elderId}/photo`, { credentials: "same-origin" });
  if (!r.ok) { $("identity-photo-note").textContent = S["identity.no_photo"]; return; }
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(await r.blob());
  img.hidden = false;
}
document.addEventListener("hotline:message", (ev) => {
  if (ev.detail.type === "context") state.elderId = ev.detail.card.known ? ev.detail.card.elder.id : null;
});
$("identity-open").addEventListener("click", () => { $("identity-box").hidden = false; showRegisteredPhoto(); });
$("identity-take").addEventListener("click", () => {
  const video = $("remote"); const canvas = $("identity-still");
  if (!video.videoWidth) return;
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  canvas.hidden = false; $("identity-register").disabled = !state.elderId;
});
$("identity-register").addEventListener("click", () => {
  $("identity-still").toBlob(async (blob) => {
    const r = await fetch(`/api/elders/${state.elderId}/photo?consent=1`, { method: "POST", credentials: "same-origin", headers: { "Content-Type": "image/jpeg", "X-CSRF-Token": boot.csrf }, body: blob });
    $("identity-status").textContent = r.ok ? S["identity.photo_saved"] : (await r.json().catch(() => ({}))).detail || String(r.status);
    if (r.ok) showRegisteredPhoto();
  }, "image/jpeg", 0.8);
});
$("identity-start").addEventListener("click", () => { if (state.call) live.send({ type: "identity_challenge", call_id: state.call.call_id }); });
$("identity-box").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const picked = $("identity-box").querySelector("input[name=identity]:checked");
  if (!picked) { $("identity-status").textContent = S["identity.pick"]; return; }
  if (state.call) live.send({ type: "identity_result", call_id: state.call.call_id, outcome: picked.value, reason: $("identity-reason").value });
});
$("family-invite").addEventListener("click", () => { if (state.call) live.send({ type: "family_link", call_id: state.call.call_id }); });
$("complete-transfer").addEventListener("click", () => { if (state.consultCallId) live.send({ type: "complete_transfer", call_id: state.consultCallId }); });
$("cancel-consult").addEventListener("click", () => { if (state.consultCallId) live.send({ type: state.consultFirst ? "cancel_transfer" : "decline_transfer", call_id: state.consultCallId }); });
$("hold").addEventListener("click", () => {
  if (state.call) live.send({ type: state.phase === "held" ? "resume" : "hold", call_id: state.call.call_id });
});
$("hangup").addEventListener("click", () => { if (state.call) live.send({ type: "hangup", call_id: state.call.call_id }); });
$("mute").addEventListener("click", () => {
  const paused = ["held", "transferring"].includes(state.phase);  // the caller waits: stays paused
  state.muted = !state.muted; if (!paused) setTrackEnabled(state.stream, "audio", !state.muted);
  $("mute").textContent = state.muted ? S["agent.unmute"] : S["agent.mute"];
  $("mute").setAttribute("aria-pressed", String(state.muted));
});
$("camera").addEventListener("click", () => {
  state.cameraOff = !state.cameraOff;
  if (!["held", "transferring"].includes(state.phase)) setTrackEnabled(state.stream, "video", !state.cameraOff);
  $("camera").textContent = state.cameraOff ? S["agent.camera_on"] : S["agent.camera_off"];
  $("camera").setAttribute("aria-pressed", String(state.cameraOff));
});

// Keyboard: Alt+A answer, Alt+M mute, Alt+H hold/resume, Alt+X hang up (never while typing
// an IME composition; the buttons' own disabled state decides whether the key does anything).
const SHORTCUTS = { KeyA: "accept", KeyM: "mute", KeyH: "hold", KeyX: "hangup" };
document.addEventListener("keydown", (ev) => {
  if (!ev.altKey || ev.ctrlKey || ev.metaKey || ev.isComposing) return;
  const id = SHORTCUTS[ev.code];
  if (!id) return;
  const b = $(id);
  if (id === "accept" ? $("ring").hidden : b.disabled) return;
  ev.preventDefault();
  b.click();
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
  csrf: boot.csrf, strings: S, dialects: boot.dialects,
  onStart: (booking) => live.send({ type: "start_callback", booking_id: booking.id }),
});
let wrapup = null;
function showWrapup(msg) {
  if (wrapup) wrapup.close();
  wrapup = null;
  if (["callback_by_phone", "callback_no_answer", "abandoned"].includes(msg.reason)) return;
  wrapup = mountWrapup($("wrapup"), {
    csrf: boot.csrf, strings: { ...S, ...boot.topic_strings }, callId: msg.call_id, fraud: Boolean(state.fraud),
    onSaved: () => { state.fraud = false; $("ready").focus(); },
  });
}

state.context = mountContextCard($("context"), { strings: { ...S, ...boot.topic_strings }, dialects: boot.dialects, send: (m) => live.send(m) });
const transfer = mountTransferPanel($("transfer"), { strings: S, dialects: boot.dialects, send: (m) => live.send(m), callId: () => state.call && state.call.call_id });
const guidance = mountGuidancePanel($("guidance"), { send: (m) => live.send(m), strings: S, lang: boot.lang });
state.guidance = guidance;

setStatus("offline");
setPhase("idle");
live.connect();

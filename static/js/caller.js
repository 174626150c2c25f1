// The senior's call page: one big button, then waiting, talking, and the end.
import { Live, wsBase } from "./live.js";
import { fmt } from "./dom.js";
import { getMedia, PeerCall, Tap, setTrackEnabled } from "./rtc.js";
import { renderStep } from "/static/guidance/caller-step.js";
import { keepWordsWhole } from "./phrasing.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const S = boot.strings;
const $ = (id) => document.getElementById(id);
const rejoinKey = `hotline.rejoin.${boot.link || "generic"}`;

const state = { screen: "idle", callId: null, stream: null, peer: null, tap: null, iceServers: [], lastSay: null, placeSay: null, placeSaidAt: 0, muted: false, cameraOff: false };
// The place in line is read aloud when the caller starts waiting, when they become next, and
// otherwise at most every 30 s (a moving line would talk over itself every second); the
// "hear it again" button reads the newest place at any time.
const PLACE_EVERY_MS = 30000;
window.hotline = state; // for tests and debugging
keepWordsWhole($("app"), boot.lang === "en" ? "en" : "zh-CN");

function show(screen) {
  state.screen = screen;
  $("app").dataset.state = screen;
  for (const id of ["idle", "waiting", "callback-ring", "incall", "ended", "replaced"]) $(id).hidden = id !== screen;
}

// Spoken messages go through one queue: a message is never cut off by the next one, and one
// the browser refused to play (no tap yet since the page loaded, a background tab) is kept
// and offered on a big "hear it again" button instead of being lost.
// Each item is {url, kind}; a newer item of the same kind ("place", "step") replaces an
// older one still waiting, so a moving line does not pile up stale announcements.
const speech = { queue: [], playing: null, missed: [], log: [] };
state.speech = speech;
const LOG_MAX = 200; // what was played, refused or heard (for tests and debugging), newest kept
function note(entry) { speech.log.push(entry); if (speech.log.length > LOG_MAX) speech.log.shift(); }

// The words of each spoken prompt of the page, shown when it cannot be played.
const promptText = Object.fromEntries(Object.entries(boot.prompts).map(([k, url]) => [url, S[`caller.say_${k}`]]));

function say(url, kind = "") {
  if (!url) return Promise.resolve();
  state.lastSay = url;
  return new Promise((done) => {
    const item = { url, kind, done };
    if (kind) {
      for (const old of speech.queue.filter((i) => i.kind === kind)) old.done("replaced");
      speech.queue = speech.queue.filter((i) => i.kind !== kind);
      speech.missed = speech.missed.filter((i) => i.kind !== kind);
    }
    if (document.hidden) { miss(item); return; } // nobody is looking: keep it for later
    speech.queue.push(item);
    pump();
  });
}

function pump() {
  if (speech.playing || !speech.queue.length) return;
  const item = speech.queue.shift();
  const a = $("prompt");
  speech.playing = item;
  a.src = item.url;
  note({ url: item.url, event: "play", at: performance.now() });
  a.play().then(() => {
    note({ url: item.url, event: "playing", at: performance.now() });
  }).catch((e) => {
    note({ url: item.url, event: "blocked", at: performance.now(), error: String(e && e.name) });
    finish(item, "blocked");
    miss(item);
  });
}

function finish(item, how) {
  if (!item || speech.playing !== item) return;
  speech.playing = null;
  note({ url: item.url, event: how, at: performance.now() });
  item.done(how);
  pump();
}

function miss(item) {
  if (!speech.missed.some((i) => i.url === item.url)) speech.missed.push({ url: item.url, kind: item.kind, done: () => {} });
  item.done("blocked");
  $("sound-blocked").hidden = false;
}

function hearAgain() {
  // A tap: the browser allows sound from here on. Play what was missed, in order.
  const missed = speech.missed.length ? speech.missed : [{ url: state.lastSay, kind: "", done: () => {} }];
  speech.missed = [];
  $("sound-blocked").hidden = true;
  for (const item of missed) if (item.url) speech.queue.push(item);
  pump();
}

function stopSpeech(kind) {
  for (const i of speech.queue.filter((x) => x.kind === kind)) i.done("dropped");
  speech.queue = speech.queue.filter((x) => x.kind !== kind);
  speech.missed = speech.missed.filter((x) => x.kind !== kind);
  if (!speech.missed.length) $("sound-blocked").hidden = true;
}

function saveRejoin(secret) {
  if (secret) localStorage.setItem(rejoinKey, JSON.stringify({ secret, at: Date.now() }));
  else localStorage.removeItem(rejoinKey);
}
function loadRejoin() {
  try {
    const v = JSON.parse(localStorage.getItem(rejoinKey) || "null");
    if (v && Date.now() - v.at < 10 * 60 * 1000) return v.secret;
  } catch (e) {}
  return "";
}

const live = new Live(() => {
  const q = new URLSearchParams({ role: "caller" });
  if (boot.link) q.set("link", boot.link);
  else q.set("lang", boot.lang);
  const r = loadRejoin();
  if (r) q.set("rejoin", r);
  return `${wsBase(boot)}?${q}`;
}, {
  onMessage: handle,
  onOpen: () => { $("wait-note").textContent = ""; $("call-note").textContent = ""; $("idle-note").textContent = ""; },
  onDown: (ev, retrying) => {
    const note = retrying ? S["caller.reconnecting"] : "";
    for (const id of ["wait-note", "call-note", "idle-note"]) $(id).textContent = note;
    closeMedia(false);
  },
});

async function ensureMedia() {
  if (state.stream && state.stream.getTracks().some((t) => t.readyState === "live")) return state.stream;
  state.stream = await getMedia();
  $("local").srcObject = state.stream;
  return state.stream;
}

// Resolves when the message was heard (or could not be played). A message that has not
// started within `startLimit` ms (a slow server rendering it) does not hold the senior back:
// it still plays when ready. `limit` caps the whole wait (a stalled download).
function sayAndWait(url, startLimit, limit) {
  const since = performance.now();
  const started = () => speech.log.some((e) => e.url === url && e.event === "playing" && e.at >= since);
  return new Promise((resolve) => {
    const slow = setTimeout(() => { if (!started()) resolve("slow"); }, startLimit);
    const cap = setTimeout(() => resolve("late"), limit);
    say(url).then((how) => { clearTimeout(slow); clearTimeout(cap); resolve(how); });
  });
}

async function startCall() {
  $("call").disabled = true;
  // The tap is the gesture that allows sound: explain what the phone will ask first, then ask.
  stopSpeech("intro");
  $("idle-note").textContent = S["caller.explain_allow"];
  await sayAndWait(boot.prompts.allow, 4000, 20000);
  $("idle-note").textContent = S["caller.getting_mic"];
  try {
    await ensureMedia();
  } catch (e) {
    $("idle-note").textContent = S["caller.mic_denied"];
    $("call").disabled = false;
    return;
  }
  $("idle-note").textContent = "";
  const call = boot.link || !state.dialect ? { type: "call" } : { type: "call", dialect: state.dialect };
  if (!live.send(call)) { $("idle-note").textContent = S["caller.reconnecting"]; $("call").disabled = false; }
}

// "今天 09:00" / "明天 09:00" / "星期三 09:00" in the hotline's time zone.
function staffedWhen(epoch) {
  const at = new Date(epoch * 1000);
  const tz = boot.timezone;
  const lang = boot.lang === "en" ? "en" : "zh-CN";
  const day = (d) => new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" }).format(d);
  const time = new Intl.DateTimeFormat(lang, { timeZone: tz, hour: "2-digit", minute: "2-digit", hour12: false }).format(at);
  const now = Date.now();
  let label;
  if (day(at) === day(new Date(now))) label = S["caller.today"];
  else if (day(at) === day(new Date(now + 86400000))) label = S["caller.tomorrow"];
  else label = new Intl.DateTimeFormat(lang, { timeZone: tz, weekday: "long", month: "long", day: "numeric" }).format(at);
  return fmt(S["caller.when"], { day: label, time });
}

function showQueue(msg) {
  show("waiting");
  const waitingBox = $("waiting");
  waitingBox.dataset.line = msg.state;
  $("callback-hint").textContent = msg.state === "unstaffed" || msg.state === "paused" ? S["caller.unstaffed_hint"] : S["caller.callback_hint"];
  $("waiting-title").textContent = msg.state === "unstaffed" ? S["caller.unstaffed_title"] : S["caller.waiting_title"];
  $("position").hidden = msg.state === "unstaffed";
  if (msg.state === "ringing") {
    $("position").textContent = S["caller.ringing"];
    $("eta").textContent = "";
    return;
  }
  if (msg.state === "unstaffed") {
    // Nobody who could take the caller is here: no place, no minutes, no promise.
    $("position").textContent = "";
    $("eta").textContent = msg.next_staffed_at ? fmt(S["caller.unstaffed_next"], { when: staffedWhen(msg.next_staffed_at) }) : S["caller.unstaffed_unknown"];
  } else {
    $("position").textContent = msg.ahead > 0 ? fmt(S["caller.ahead"], { ahead: msg.ahead }) : S["caller.next"];
    if (msg.eta_seconds == null) $("eta").textContent = S["caller.paused"];
    else {
      const minutes = Math.max(1, Math.round(msg.eta_seconds / 60));
      $("eta").textContent = msg.eta_seconds < 45 ? S["caller.eta_soon"] : fmt(S["caller.eta"], { minutes });
    }
  }
  if (msg.say) {
    const becameNext = msg.ahead === 0 && state.placeAhead !== 0;
    const changed = msg.state !== state.lineState;
    const due = Date.now() - state.placeSaidAt >= PLACE_EVERY_MS || becameNext || changed;
    state.placeSay = msg.say;
    state.placeAhead = msg.ahead;
    if (due && msg.say !== state.lastSay && !state.callbackBooked) {
      state.placeSaidAt = Date.now();
      say(msg.say, "place");
    }
  }
  state.lineState = msg.state;
  $("callback-offer").hidden = !msg.offer_callback || state.callbackBooked;
}

async function connectMedia(msg) {
  show("incall");
  state.agentName = msg.agent_name || "";
  $("agent-line").textContent = fmt(S["caller.connected"], { agent: state.agentName });
  state.iceServers = msg.ice_servers || [];
  const stream = await ensureMedia();
  closeMedia(false);
  state.peer = new PeerCall({
    role: "offerer", iceServers: state.iceServers, stream,
    remoteVideo: $("remote"), remoteAudio: $("remote-audio"),
    send: (data) => live.send({ type: "signal", data }),
  });
  await state.peer.start();
  state.tap = new Tap({ stream, iceServers: state.iceServers, sendOffer: (sdp) => live.send({ type: "tap_offer", sdp }) });
  await state.tap.start();
  if (!msg.rejoined) say(boot.prompts.connected, "status");
}

// On hold (or while being transferred): the message is shown big and spoken in the elder's
// voice; their camera and microphone stop going to the agent (their picture stays private):
// the agent connection's senders carry nothing, while a family member on the call (their own
// connection) still sees and hears the elder. The gateway tap has its own cloned track, so
// captions carry on.
function startHold(msg) {
  $("app").dataset.hold = "on";
  $("call-note").textContent = msg.text || "";
  // Being transferred: the first helper may leave before the next one answers.
  if (msg.reason === "transfer") $("agent-line").textContent = S["caller.transferring"];
  say(msg.say, "hold");
  holdAgentMedia(true);
}
function endHold() {
  if (!$("app").dataset.hold) return;
  delete $("app").dataset.hold;
  $("call-note").textContent = "";
  holdAgentMedia(false);
}
function holdAgentMedia(held) {
  const pc = state.peer && state.peer.pc;
  if (!pc) return;
  for (const sender of pc.getSenders()) {
    // (The connection may be closing: a transfer's first agent has left. Nothing to undo then.)
    if (held && sender.track) { sender.heldTrack = sender.track; sender.replaceTrack(null).catch(() => {}); }
    else if (!held && sender.heldTrack) { sender.replaceTrack(sender.heldTrack).catch(() => {}); sender.heldTrack = null; }
  }
}

// A family member joined: their own connection to this page (they offer), shown as big as
// the agent's face.
async function familyPeer() {
  endFamily();
  const stream = await ensureMedia();
  state.family = new PeerCall({
    role: "answerer", iceServers: state.iceServers, stream,
    remoteVideo: $("family-video"), remoteAudio: $("family-audio"),
    send: (data) => live.send({ type: "family_signal", data }),
  });
  $("app").dataset.family = "on";
  $("family-video").hidden = false; $("family-label").hidden = false;
}
function endFamily() {
  if (state.family) { state.family.close(); state.family = null; }
  delete $("app").dataset.family;
  $("family-video").hidden = true; $("family-label").hidden = true;
}

function closeMedia(stopLocal) {
  if (stopLocal) endFamily();
  if (state.peer) { state.peer.close(); state.peer = null; }
  if (state.tap) { state.tap.close(); state.tap = null; }
  if (stopLocal && state.stream) { state.stream.getTracks().forEach((t) => t.stop()); state.stream = null; }
}

async function handle(msg) {
  switch (msg.type) {
    case "hello":
      if (msg.rejoined) { state.callId = msg.call_id; state.callbackBooked = msg.callback_requested; $("callback-booked").hidden = !msg.callback_requested; if (msg.state !== "connected" && msg.state !== "held") show("waiting"); }
      else if (msg.state === "ended") saveRejoin(""); // the call ended while away: `ended` follows (no new call by itself)
      else { saveRejoin(""); if (state.screen !== "ended") show("idle"); if (boot.auto_start && state.screen === "idle" && !state.autoStarted) { state.autoStarted = true; startCall(); } }
      break;
    case "queued":
      state.callId = msg.call_id;
      state.placeSaidAt = 0;
      state.placeAhead = undefined;
      saveRejoin(msg.rejoin);
      show("waiting");
      break;
    case "queue": showQueue(msg); break;
    case "connected": stopRing(); stopSpeech("place"); endHold(); await connectMedia(msg); break;
    case "on_hold": startHold(msg); break;
    case "off_hold": endHold(); break;
    case "transfer_failed":
      endHold();
      $("call-note").textContent = msg.text || "";
      $("agent-line").textContent = fmt(S["caller.connected"], { agent: state.agentName || "" });
      say(msg.say);
      break;
    case "identity_challenge":
      // Four large digits to read aloud (the caption engine checks them).
      $("app").dataset.identity = "on";
      $("call-note").textContent = msg.text || "";
      $("identity-digits").textContent = msg.digits.split("").join(" ");
      $("identity-digits").hidden = false;
      say(msg.say);
      break;
    case "identity_done":
      delete $("app").dataset.identity;
      $("identity-digits").hidden = true; $("call-note").textContent = "";
      break;
    case "family_joined": await familyPeer(); break;
    case "family_signal": if (state.family) await state.family.signal(msg.data); break;
    case "family_left": endFamily(); break;
    case "signal": if (state.peer) await state.peer.signal(msg.data); break;
    case "tap_answer": if (state.tap) await state.tap.answer(msg.sdp); break;
    case "requeued":
      endHold();
      closeMedia(false);
      show("waiting");
      if (String(msg.reason).startsWith("transfer_")) {
        // A transfer gave up waiting for a busy colleague: the spoken words came with it.
        $("wait-note").textContent = S["caller.requeued_transfer"];
      } else {
        $("wait-note").textContent = S["caller.requeued"];
        say(boot.prompts.requeued, "status");
      }
      break;
    case "ended":
      endHold();
      if (guide) { showGuide({ mode: "idle", seq: -1 }); }
      $("agent-captions").textContent = ""; $("agent-captions").hidden = true; $("captions-toggle").hidden = true;
      closeMedia(true);
      saveRejoin("");
      state.callId = null;
      show("ended");
      $("rating").hidden = !["completed", "caller_dropped"].includes(msg.reason);
      $("rated").hidden = true;
      document.querySelectorAll(".face").forEach((b) => { b.disabled = false; b.setAttribute("aria-pressed", "false"); });
      stopSpeech("place");
      stopSpeech("step");
      say(boot.prompts.ended, "status");
      if (!$("rating").hidden) say(boot.prompts.rate, "rate"); // queued: after "ended", never over it
      break;
    case "server_restarting":
      for (const id of ["wait-note", "call-note"]) $(id).textContent = S["caller.restarting"];
      break;
    case "guide_state": showGuide(msg.view); break;
    case "callback_booked":
      state.callbackBooked = true;
      $("callback-offer").hidden = true;
      $("callback-booked").hidden = false;
      say(msg.say);
      break;
    case "incoming_callback":
      state.callId = msg.call_id;
      show("callback-ring");
      $("callback-agent").textContent = msg.agent_name ? fmt(S["caller.connected"], { agent: msg.agent_name }) : "";
      startRing();
      say(msg.say);
      break;
    case "callback_cancelled":
      stopRing();
      show("idle");
      $("idle-note").textContent = S["caller.callback_missed"];
      break;
    case "rated":
      $("rating").hidden = true;
      $("rated").hidden = false;
      break;
    case "captions_config":
      state.captions = msg.for_caller;
      $("captions-toggle").hidden = false;
      $("captions-toggle").setAttribute("aria-pressed", String(msg.for_caller));
      $("captions-toggle").textContent = msg.for_caller ? S["caller.captions_off"] : S["caller.captions_on"];
      $("agent-captions").hidden = !msg.for_caller || !$("agent-captions").textContent;
      break;
    case "caption":
      if (state.captions && msg.text) { $("agent-captions").textContent = msg.text; $("agent-captions").hidden = false; }
      break;
    case "error":
      if (msg.code === "replaced") {
        // Another tab or phone took this call over: say so, and let the senior take it back.
        live.stop();
        closeMedia(true);
        stopRing();
        show("replaced");
      }
      if (msg.code === "unknown_link" || (msg.code || "").startsWith("link_")) { location.reload(); }
      if (msg.for === "call") { $("call").disabled = false; $("idle-note").textContent = S["caller.error"]; }
      break;
  }
}
state.send = (m) => live.send(m);
state.handle = handle; // tests render any screen by feeding it a server message
state.say = say;
state.show = show;

// A ringtone for an incoming callback (WebAudio: no file to fetch, works offline).
let ring = null;
function startRing() {
  stopRing();
  try {
    const ctx = new AudioContext();
    const gain = ctx.createGain(); gain.gain.value = 0; gain.connect(ctx.destination);
    const osc = ctx.createOscillator(); osc.frequency.value = 740; osc.connect(gain); osc.start();
    let on = false;
    const timer = setInterval(() => { on = !on; gain.gain.value = on ? 0.15 : 0; }, 600);
    ring = () => { clearInterval(timer); osc.stop(); ctx.close(); };
  } catch (e) { ring = null; }
}
function stopRing() { if (ring) ring(); ring = null; }

// Guidance: a step takes over the screen above the video; the video shrinks while it shows.
let guide = null;
function answerGuide(answer) {
  return (view) => live.send({ type: "guide_answer", seq: view.seq, step_id: view.step_id || undefined, answer });
}
function showGuide(view) {
  const box = $("guide");
  const active = view && view.mode !== "idle";
  box.hidden = !active;
  $("incall").classList.toggle("guiding", Boolean(active));
  state.guide = view;
  if (!guide) {
    guide = renderStep(box, view, {
      strings: S, speak: (url) => say(url, "step"), onDone: answerGuide("done"), onHelp: answerGuide("help"),
      onShown: answerGuide("shown"), onReplay: answerGuide("listening"),
    });
  } else {
    guide.update(view);
  }
}

$("call").addEventListener("click", startCall);
// The one optional tap of the generic page: which dialect the caller speaks.
state.dialect = boot.dialect || "";
document.querySelectorAll(".chip[data-dialect]").forEach((chip) => {
  chip.setAttribute("aria-pressed", String(chip.dataset.dialect === state.dialect));
  chip.addEventListener("click", () => {
    state.dialect = chip.dataset.dialect === state.dialect ? "" : chip.dataset.dialect;
    document.querySelectorAll(".chip[data-dialect]").forEach((c) => c.setAttribute("aria-pressed", String(c.dataset.dialect === state.dialect)));
  });
});
$("callback").addEventListener("click", () => { $("callback").disabled = true; live.send({ type: "callback_request" }); });
$("answer").addEventListener("click", async () => {
  stopRing();
  try { await ensureMedia(); } catch (e) { $("idle-note").textContent = S["caller.mic_denied"]; }
  live.send({ type: "answer_callback", call_id: state.callId });
});
document.querySelectorAll(".face").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll(".face").forEach((x) => { x.disabled = true; });
  b.setAttribute("aria-pressed", "true");
  live.send({ type: "rate", rating: b.dataset.rating });
}));
$("captions-toggle").addEventListener("click", () => live.send({ type: "captions", on: !state.captions }));
$("again").addEventListener("click", () => { $("call").disabled = false; show("idle"); startCall(); });
$("cancel").addEventListener("click", () => live.send({ type: "hangup", reason: "cancel" }));
$("hangup").addEventListener("click", () => live.send({ type: "hangup" }));
$("replay-wait").addEventListener("click", () => { state.placeSaidAt = Date.now(); say(state.placeSay || state.lastSay, "place"); });
$("hear-again").addEventListener("click", hearAgain);
$("continue-here").addEventListener("click", () => { show("idle"); live.resume(); });
$("prompt").addEventListener("ended", () => finish(speech.playing, "ended"));
// A prompt the server could not render (a typed 503) or the browser cannot play: show its
// words (place announcements need none: the place and wait are on screen already). Read the
// element's own source before the listener below moves on to the next prompt.
$("prompt").addEventListener("error", (e) => {
  const words = promptText[new URL(e.target.src, location.href).pathname];
  if (words) $("said").textContent = words;
});
// A prompt that failed to load is not dropped either: the big button tries it again.
$("prompt").addEventListener("error", () => { const item = speech.playing; finish(item, "error"); if (item) miss(item); });
document.addEventListener("visibilitychange", () => {
  // Back from the background: anything said meanwhile waits on the big button.
  if (!document.hidden && speech.missed.length) $("sound-blocked").hidden = false;
});
$("mute").addEventListener("click", () => {
  state.muted = !state.muted;
  setTrackEnabled(state.stream, "audio", !state.muted);  // on hold the agent gets nothing anyway
  $("mute").setAttribute("aria-pressed", String(state.muted));
  $("mute").textContent = state.muted ? S["caller.unmute"] : S["caller.mute"];
});
$("camera").addEventListener("click", () => {
  state.cameraOff = !state.cameraOff;
  setTrackEnabled(state.stream, "video", !state.cameraOff);  // on hold the agent gets nothing anyway
  $("camera").setAttribute("aria-pressed", String(state.cameraOff));
  $("camera").textContent = state.cameraOff ? S["caller.camera_on"] : S["caller.camera_off"];
});

show("idle");
say(boot.prompts.intro, "intro"); // usually refused before the first tap: then the button offers it
live.connect();

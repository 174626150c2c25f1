// The supervisor wallboard: live line over the websocket, the rest re-fetched every few
// seconds; any live call can be watched read-only (captions and guidance state).
import { Live, wsBase } from "./live.js";
import { fmt } from "./dom.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const S = boot.strings;
const $ = (id) => document.getElementById(id);
const REFRESH_MS = 4000;
const state = { board: null, line: null, lineAt: 0, watching: null, socket: "connecting" };
window.hotline = state;

const dialectName = (id) => boot.dialects[id] || id;
const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`);
function mmss(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function warn(id, on) { $(id).classList.toggle("warn", Boolean(on)); }

const live = new Live(async () => {
  const r = await fetch("/api/ws-token", { credentials: "same-origin" });
  if (r.status === 401) { location.href = "/agent"; throw new Error("signed out"); }
  const { token } = await r.json();
  return `${wsBase(boot)}?role=supervisor&token=${encodeURIComponent(token)}`;
}, {
  onMessage: handle,
  onOpen: () => { state.socket = "open"; $("conn-note").textContent = ""; if (state.watching) watch(state.watching); },
  onDown: (ev, retrying) => { state.socket = "down"; $("conn-note").textContent = retrying ? S["admin.connection_lost"] : S["admin.replaced"]; },
});

function handle(msg) {
  switch (msg.type) {
    case "line": showLine(msg); scheduleRefresh(300); break;
    case "monitoring": startMonitor(msg); break;
    case "caption": if (state.watching) showCaption(msg); break;
    case "captions_status":
      $("monitor-status").textContent = msg.state === "on" ? "" : fmt(S["admin.captions_off"], { reason: msg.reason || "" });
      break;
    case "guide_state": if (state.watching && msg.snapshot) showGuide(msg.snapshot); break;
    case "ended":
      if (state.watching && msg.call_id === state.watching) $("monitor-title").textContent += ` · ${S["admin.call_ended"]}`;
      break;
    case "error":
      if (msg.code === "no_call" || msg.code === "forbidden") { stopMonitor(); $("conn-note").textContent = msg.detail; }
      break;
    default: break;
  }
}

// --- live line (websocket) ---
function showLine(line) {
  state.line = line; state.lineAt = Date.now();
  $("waiting").textContent = line.total_waiting;
  warn("tile-waiting", line.total_waiting > 0);
  tickLongest();
}
function tickLongest() {
  const line = state.line;
  if (!line) return;
  const values = Object.values(line.longest_wait || {});
  const longest = values.length ? Math.max(...values) + (Date.now() - state.lineAt) / 1000 : 0;
  $("longest").textContent = line.total_waiting ? mmss(longest) : "0:00";
  warn("tile-longest", line.total_waiting && longest > boot.thresholds[0]);
}
setInterval(tickLongest, 1000);

// --- everything else (JSON, every few seconds) ---
let timer = null;
function scheduleRefresh(ms) { clearTimeout(timer); timer = setTimeout(refresh, ms); }
async function refresh() {
  try {
    const r = await fetch("/api/admin/wallboard", { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/agent"; return; }
    if (r.ok) showBoard(await r.json());
  } catch (e) { /* network blip: try again on the next round */ }
  scheduleRefresh(REFRESH_MS);
}

function showBoard(b) {
  state.board = b;
  const today = b.today;
  const [t1, t2] = b.thresholds;
  $("sl").textContent = pct(today.service_level[t1]);
  $("sl-fast").textContent = pct(today.service_level[t2]);
  warn("tile-sl", today.service_level[t1] !== null && today.service_level[t1] < b.target);
  warn("tile-sl-fast", today.service_level[t2] !== null && today.service_level[t2] < b.target);
  $("asa").textContent = mmss(today.asa_seconds);
  $("abandon").textContent = pct(today.abandon_rate);
  warn("tile-abandon", today.abandon_rate !== null && today.abandon_rate > 0.1);
  $("handled").textContent = fmt(S["admin.handled_today"], { handled: today.handled, answered: today.answered, abandoned: today.abandoned });
  $("callbacks-due").textContent = b.callbacks.due;
  $("callbacks-detail").textContent = fmt(S["admin.callbacks_detail"], { overdue: b.callbacks.overdue, later: b.callbacks.later_today });
  warn("tile-callbacks", b.callbacks.overdue > 0);
  $("fraud").textContent = b.fraud.calls;
  $("fraud-detail").textContent = fmt(S["admin.fraud_detail"], { alerts: b.fraud.alerts });
  warn("tile-fraud", b.fraud.calls > 0);
  for (const [key, sat] of [["today", b.satisfaction.today], ["30", b.satisfaction.days30]]) {
    for (const r of ["good", "ok", "bad"]) $(`sat-${key}-${r}`).textContent = sat[r];
  }
  if (!b.live.up) { $("conn-note").textContent = S["admin.live_down"]; return; }
  const lv = b.live;
  if (!state.line || Date.now() - state.lineAt > REFRESH_MS) {
    showLine({ total_waiting: lv.total_waiting, longest_wait: Object.fromEntries(lv.dialects.map((d) => [d.dialect, d.longest_wait])) });
  }
  $("agents-available").textContent = lv.agents.available || 0;
  $("agents-detail").textContent = ["in_call", "ringing", "wrap_up", "away"]
    .filter((k) => lv.agents[k]).map((k) => `${S[`status.${k}`]} ${lv.agents[k]}`).join(" · ");
  showDialects(lv.dialects);
  showCalls(lv.calls);
}

function showDialects(rows) {
  $("dialects").replaceChildren(...rows.map((d) => {
    const tr = el("tr");
    const online = Object.values(d.agents).reduce((a, b) => a + b, 0);
    for (const v of [dialectName(d.dialect), d.waiting, d.waiting ? mmss(d.longest_wait) : "–", d.agents.available || 0, d.agents.in_call || 0, online]) tr.append(el("td", v));
    if (d.waiting && !(d.agents.available || 0)) tr.className = "warn";
    return tr;
  }));
}

function showCalls(calls) {
  $("no-calls").hidden = calls.length > 0;
  $("calls").replaceChildren(...calls.map((c) => {
    const tr = el("tr");
    tr.dataset.callId = c.call_id;
    for (const v of [dialectName(c.dialect), c.elder || S["admin.anonymous"], S[`admin.call_state.${c.state}`] || c.state, mmss(c.seconds)]) tr.append(el("td", v));
    const td = el("td");
    const b = el("button", c.call_id === state.watching ? S["admin.watching"] : S["admin.watch"], "watch");
    b.type = "button";
    b.disabled = c.call_id === state.watching;
    b.addEventListener("click", () => watch(c.call_id));
    td.append(b); tr.append(td);
    return tr;
  }));
}

// --- monitoring one call (read-only) ---
function watch(callId) {
  state.watching = callId;
  $("monitor-captions").replaceChildren(); $("monitor-steps").replaceChildren();
  $("monitor-guide").textContent = S["admin.no_guidance"]; $("monitor-status").textContent = "";
  live.send({ type: "monitor", call_id: callId });
}
function startMonitor(msg) {
  $("monitor").hidden = false;
  $("monitor-title").textContent = fmt(S["admin.monitor_title"], { elder: msg.elder || S["admin.anonymous"], dialect: dialectName(msg.dialect) });
  if (state.board) showCalls(state.board.live.calls);
  $("monitor").scrollIntoView({ block: "nearest" });
}
function stopMonitor() {
  live.send({ type: "unmonitor" });
  state.watching = null;
  $("monitor").hidden = true;
  if (state.board) showCalls(state.board.live.calls);
}
$("unmonitor").addEventListener("click", stopMonitor);

let partial = null;
function showCaption(msg) {
  const list = $("monitor-captions");
  const who = msg.speaker === "agent" ? S["admin.speaker.agent"] : S["admin.speaker.caller"];
  if (msg.kind === "partial") {
    if (!partial) { partial = el("li", "", "partial"); list.append(partial); }
    partial.textContent = `${who}: ${msg.text}`;
  } else {
    if (partial) { partial.remove(); partial = null; }
    const li = el("li", `${who}: ${msg.text}`);
    if (msg.gloss) li.append(el("span", ` (${msg.gloss})`, "gloss"));
    for (const a of msg.alerts || []) li.append(el("strong", ` ⚠ ${a.phrase}`, "flag"));
    list.append(li);
  }
  while (list.children.length > 60) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function showGuide(snap) {
  if (!snap.script_id) { $("monitor-guide").textContent = S["admin.no_guidance"]; $("monitor-steps").replaceChildren(); return; }
  $("monitor-guide").textContent = fmt(S["admin.guide_now"], { script: (boot.scripts || {})[snap.script_id] || snap.script_id, n: snap.number || "–", total: snap.total });
  $("monitor-steps").replaceChildren(...snap.steps.filter((s) => !s.detour || s.visits).map((s) => {
    const label = s.number ? fmt(S["admin.step"], { n: s.number }) : "·";
    const li = el("li", `${label} ${S[`admin.step_state.${s.state}`] || s.state}${s.help_count ? ` · ${S["admin.answer.help"]} ×${s.help_count}` : ""}`);
    if (s.id === snap.step_id) li.className = "current";
    return li;
  }));
}

live.connect();
refresh();

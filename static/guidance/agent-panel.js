// The agent's guidance panel: pick a script, see every step with a thumbnail and the caller's
// state, push / back / skip / show free text. It only sends messages (`send`) and redraws from
// the server's snapshots (`update`); the server is the one source of truth.

import { t } from "./caller-step.js";

const FREE_TEXT_MAX_CJK = 60; // mirrors hotline/guidance/model.py LIMITS["free_text"]
const FREE_TEXT_MAX_LATIN = 140;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function button(label, onClick, className = "") {
  const b = el("button", className, label);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

/** Width of text in CJK characters, as the server measures it (narrow counts half). */
export function wideUnits(text) {
  let units = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0);
    const wide =
      (code >= 0x1100 && code <= 0x115f) ||
      (code >= 0x2e80 && code <= 0xa4cf) ||
      (code >= 0xac00 && code <= 0xd7a3) ||
      (code >= 0xf900 && code <= 0xfaff) ||
      (code >= 0xfe30 && code <= 0xfe4f) ||
      (code >= 0xff00 && code <= 0xff60) ||
      (code >= 0xffe0 && code <= 0xffe6) ||
      code >= 0x1f300;
    units += wide ? 1 : 0.5;
  }
  return units;
}

function freeTextFits(text) {
  const units = wideUnits(text);
  const latin = units === text.length / 2;
  return latin
    ? { used: text.length, max: FREE_TEXT_MAX_LATIN }
    : { used: units, max: FREE_TEXT_MAX_CJK };
}

function matches(script, query) {
  if (!query) return true;
  const hay = [script.id, script.title, script.summary, script.app, ...script.tags]
    .join(" ")
    .toLowerCase();
  return query
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .every((word) => hay.includes(word));
}

function thumbnail(step) {
  const wrap = el("div", "gp-thumb-wrap");
  if (!step.picture_url) return wrap;
  const img = el("img", "gp-thumb");
  img.src = step.picture_url;
  img.alt = step.alt || "";
  img.loading = "lazy";
  wrap.append(img);
  if (step.highlight) {
    // The thumbnail is 54x96, the same 9:16 shape as the pictures, so fractions map directly.
    const ring = el("div", "gp-thumb-ring");
    ring.style.left = `${step.highlight.x * 100}%`;
    ring.style.top = `${step.highlight.y * 100}%`;
    ring.style.width = `${step.highlight.w * 100}%`;
    ring.style.height = `${step.highlight.h * 100}%`;
    wrap.append(ring);
  }
  return wrap;
}

/**
 * Mount the panel. Options: send(msg), strings, lang, scriptsUrl, fetchJson(url) -> Promise.
 * Returns {update(snapshot), setLibrary(json), destroy()}.
 */
export function mountGuidancePanel(container, options) {
  const strings = options.strings || {};
  const send = options.send;
  const lang = options.lang || "zh_CN";
  const scriptsUrl = options.scriptsUrl || `/api/guidance/scripts?lang=${encodeURIComponent(lang)}`;
  const fetchJson =
    options.fetchJson ||
    ((url) =>
      fetch(url, { credentials: "same-origin" }).then((r) => {
        if (!r.ok) throw new Error(String(r.status));
        return r.json();
      }));
  const _ = (key, vars) => t(strings, key, vars);

  let library = [];
  let snapshot = null;
  let previewId = null;
  let query = "";
  let loadFailed = false;

  const root = el("div", "gp");
  root.setAttribute("aria-label", _("guidance.agent.title"));
  container.replaceChildren(root);

  const search = el("input");
  search.type = "search";
  search.placeholder = _("guidance.agent.search");
  search.setAttribute("aria-label", _("guidance.agent.search"));
  search.addEventListener("input", () => {
    query = search.value.trim();
    render();
  });

  const freeBox = el("textarea");
  freeBox.rows = 3;
  freeBox.placeholder = _("guidance.agent.free_text_placeholder");
  freeBox.setAttribute("aria-label", _("guidance.agent.free_text_placeholder"));
  const freeCount = el("span", "gp-count");
  const freeSend = button(_("guidance.agent.free_text"), () => {
    const text = freeBox.value.trim();
    if (!text) return;
    send({ type: "guide_text", text });
    freeBox.value = "";
    refreshCount();
  }, "gp-primary");
  function refreshCount() {
    const { used, max } = freeTextFits(freeBox.value.trim());
    freeCount.textContent = _("guidance.agent.free_text_count", { used, max });
    freeCount.classList.toggle("gp-over", used > max);
    freeSend.disabled = !freeBox.value.trim() || used > max;
  }
  freeBox.addEventListener("input", refreshCount);
  const free = el("form", "gp-free");
  const freeRow = el("div", "gp-free-row");
  freeRow.append(freeCount, freeSend);
  free.append(freeBox, freeRow);
  free.addEventListener("submit", (e) => e.preventDefault());
  refreshCount();

  function scriptById(id) {
    return library.find((s) => s.id === id) || null;
  }

  function renderPicker() {
    const section = el("div", "gp-pick");
    section.append(search);
    if (loadFailed) {
      section.append(el("p", "gp-alert", _("guidance.agent.load_failed")));
      return section;
    }
    const list = el("ul", "gp-list");
    const found = library.filter((s) => matches(s, query));
    for (const s of found) {
      const li = el("li");
      const pick = button("", () => {
        previewId = s.id;
        render();
      });
      pick.append(el("strong", null, s.title));
      pick.append(
        el("span", "gp-meta", `${s.summary} · ${_("guidance.agent.steps_count", { n: s.total })}`),
      );
      li.append(pick);
      list.append(li);
    }
    if (!found.length) list.append(el("li", "gp-meta", _("guidance.agent.no_match")));
    section.append(list);
    return section;
  }

  function renderScript(script) {
    const live = snapshot && snapshot.script_id === script.id ? snapshot : null;
    const section = el("div", "gp-script");
    const head = el("div", "gp-head");
    head.append(el("h2", null, script.title));
    if (live) {
      head.append(button(_("guidance.agent.stop"), () => send({ type: "guide_stop" })));
    } else {
      head.append(
        button(_("guidance.agent.start"), () => send({ type: "guide_start", script_id: script.id }), "gp-primary"),
        button(_("guidance.agent.change_script"), () => {
          previewId = null;
          render();
        }),
      );
    }
    section.append(head);
    if (live && live.waiting_for_agent) {
      section.append(el("p", "gp-alert", _("guidance.agent.caller_waiting")));
    }
    if (live && live.mode === "text") {
      section.append(el("p", "gp-alert", `${_("guidance.agent.caller_sees_text")}: ${live.free_text}`));
    }
    if (live && live.mode === "finished") {
      section.append(el("p", "gp-alert", _("guidance.agent.finished")));
    }
    const states = new Map((live ? live.steps : []).map((s) => [s.id, s]));
    const list = el("ol", "gp-steps");
    list.setAttribute("aria-label", _("guidance.agent.steps"));
    for (const step of script.steps) {
      const st = states.get(step.id);
      const li = el("li", "gp-step");
      if (step.detour) li.classList.add("gp-is-detour");
      const current = live && live.step_id === step.id && live.mode !== "finished";
      if (current) {
        li.classList.add("gp-current");
        li.setAttribute("aria-current", "step");
      }
      const body = el("div");
      const label = step.detour ? `↳ ${_("guidance.agent.detour")}` : `${step.number}.`;
      body.append(el("p", "gp-step-text", `${label} ${step.text}`));
      const meta = el("div", "gp-step-meta");
      const state = st ? st.state : "pending";
      meta.append(el("span", `gp-state gp-state-${state}`, _(`guidance.state.${state}`)));
      if (current) meta.append(el("strong", null, _("guidance.agent.current")));
      if (st && st.seconds > 0) meta.append(el("span", null, _("guidance.agent.seconds", { s: Math.round(st.seconds) })));
      if (st && st.help_count) meta.append(el("span", null, _("guidance.agent.help_count", { n: st.help_count })));
      if (step.hint) meta.append(el("span", null, _("guidance.agent.hint", { hint: step.hint })));
      if (step.on_help) meta.append(el("span", null, _("guidance.agent.on_help", { step: step.on_help })));
      body.append(meta);
      const push = button(_("guidance.agent.push"), () => send({ type: "guide_push", step_id: step.id }));
      push.disabled = !live || current;
      li.append(thumbnail(step), body, push);
      list.append(li);
    }
    section.append(list);
    if (live) {
      const controls = el("div", "gp-controls");
      const back = button(_("guidance.agent.back"), () => send({ type: "guide_back" }));
      const skip = button(_("guidance.agent.skip"), () => send({ type: "guide_skip" }));
      skip.disabled = live.mode === "finished";
      controls.append(back, skip);
      section.append(controls);
    }
    return section;
  }

  function render() {
    const activeId = snapshot && snapshot.script_id ? snapshot.script_id : previewId;
    const script = activeId ? scriptById(activeId) : null;
    const focused = document.activeElement;
    root.replaceChildren(el("h2", null, _("guidance.agent.title")));
    root.append(script ? renderScript(script) : renderPicker());
    root.append(free);
    if (focused === search && !script) search.focus();
  }

  fetchJson(scriptsUrl)
    .then((json) => setLibrary(json))
    .catch(() => {
      loadFailed = true;
      render();
    });

  function setLibrary(json) {
    library = (json && json.scripts) || [];
    loadFailed = false;
    render();
  }

  function update(next) {
    snapshot = next;
    if (next && next.script_id) previewId = next.script_id;
    render();
  }

  render();
  // A new caller: no script, no preview, no half-typed text of the last call.
  function reset() {
    snapshot = null;
    previewId = null;
    query = "";
    search.value = "";
    freeBox.value = "";
    refreshCount();
    render();
  }

  return {
    update,
    reset,
    setLibrary,
    destroy() {
      container.replaceChildren();
    },
  };
}

// The agents' callback list: due now / overdue / today / later; claim, show number, record.
// Usage: mountCallbacksPanel(container, { csrf, strings, onStart(booking) }) -> { refresh, close }
// `strings` is the catalogue subset with the prefix "callbacks." (e.g. subset(lang, ("callbacks.",))).
import { el, fmt } from "./dom.js";

const GROUPS = ["due_now", "overdue", "today", "later"];
const RESULTS = ["reached", "no_answer", "wrong_number", "rescheduled"];

export function mountCallbacksPanel(container, { csrf, strings = {}, dialects = {}, onStart = () => {}, refreshSeconds = 30 } = {}) {
  const S = (key, values = {}) => fmt(strings[`callbacks.${key}`] || key, values);
  const root = el("section", { class: "callbacks-panel", "aria-label": S("title") });
  const note = el("p", { class: "callbacks-note", role: "status", "aria-live": "polite" });
  const lists = el("div", { class: "callbacks-lists" });
  root.append(
    el("header", { class: "callbacks-head" },
      el("h2", {}, S("title")),
      el("button", { type: "button", onclick: () => refresh() }, S("refresh"))),
    note, lists);
  container.append(root);

  async function api(method, path, body) {
    const r = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.detail || data.error || String(r.status));
    return data;
  }

  function fail(err) { note.textContent = S("error", { detail: err.message }); }

  function item(b) {
    const phone = el("span", { class: "cb-phone" }, b.elder.phone);
    const row = el("li", { class: `cb-item cb-${b.status}`, "data-id": b.id },
      el("div", { class: "cb-main" },
        el("strong", {}, b.elder.name || "—"), " ", phone, " · ", (dialects[b.dialect] || b.dialect), " · ",
        el("span", { class: "cb-when" }, b.due_local)),
      el("div", { class: "cb-meta" },
        S(`kind.${b.kind}`), b.topic_label ? ` · ${b.topic_label}` : "",
        ` · ${S("previous_calls", { n: b.previous_calls })}`,
        b.attempts ? ` · ${S("attempts", { n: b.attempts })}` : "",
        b.alternates.length ? ` · ${S("alternates", { times: b.alternates.join(", ") })}` : ""),
      b.note ? el("p", { class: "cb-note" }, b.note) : null);
    if (b.claimed_by && !b.mine) {
      row.append(el("p", { class: "cb-claimed" }, S("claimed_by", { name: b.claimed_by })));
      return row;
    }
    const actions = el("div", { class: "cb-actions" });
    if (!b.mine) {
      actions.append(el("button", { type: "button", class: "cb-claim", onclick: async () => {
        try { await api("POST", `/api/callbacks/${b.id}/claim`); note.textContent = ""; await refresh(); } catch (e) { fail(e); }
      } }, S("claim")));
    } else {
      actions.append(
        el("span", { class: "cb-mine" }, S("mine")),
        el("button", { type: "button", class: "cb-show-phone", onclick: async () => {
          try { phone.textContent = (await api("GET", `/api/callbacks/${b.id}/phone`)).phone; } catch (e) { fail(e); }
        } }, S("show_phone")),
        el("button", { type: "button", class: "cb-start", onclick: () => onStart(b) }, S("start")),
        attemptForm(b));
    }
    row.append(actions);
    return row;
  }

  function attemptForm(b) {
    const select = el("select", { name: "result", "aria-label": S("result") },
      ...RESULTS.map((r) => el("option", { value: r }, S(`result.${r}`))));
    const when = el("input", { type: "datetime-local", name: "reschedule_to", "aria-label": S("reschedule_to"), hidden: true });
    select.addEventListener("change", () => { when.hidden = select.value !== "rescheduled"; });
    return el("form", { class: "cb-attempt", onsubmit: async (ev) => {
      ev.preventDefault();
      const body = { result: select.value };
      if (select.value === "rescheduled") body.reschedule_to = when.value;
      try { await api("POST", `/api/callbacks/${b.id}/attempt`, body); note.textContent = ""; await refresh(); } catch (e) { fail(e); }
    } }, select, when, el("button", { type: "submit" }, S("save_attempt")));
  }

  async function refresh() {
    let data;
    try { data = await api("GET", "/api/callbacks"); } catch (e) { fail(e); return; }
    lists.replaceChildren(...GROUPS.map((g) => {
      const items = data.groups[g] || [];
      return el("section", { class: `cb-group cb-group-${g}` },
        el("h3", {}, `${S(g)} (${items.length})`),
        items.length ? el("ul", {}, ...items.map(item)) : el("p", { class: "cb-empty" }, S("empty")));
    }));
  }

  const timer = setInterval(refresh, refreshSeconds * 1000);
  refresh();
  return { refresh, close: () => { clearInterval(timer); root.remove(); } };
}

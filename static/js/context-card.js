// Who is calling: the context card on the ring and during the call, and the full history
// on one click. Usage: mountContextCard(container, { strings, dialects, send }) -> { clear }.
// It listens for the console's "hotline:message" events (context, history) and
// "hotline:reset" (the next caller), so agent.js only mounts it.
import { el, fmt } from "./dom.js";

const when = (at) => {
  const d = new Date(at * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getMonth() + 1}/${d.getDate()} ${p(d.getHours())}:${p(d.getMinutes())}`;
};

export function mountContextCard(container, { strings = {}, dialects = {}, send = () => {} } = {}) {
  const S = (key, values = {}) => fmt(strings[key] || key, values);
  const C = (key, values) => S(`context.${key}`, values);
  let callId = null;

  function pastCall(c) {
    const outcome = c.outcome_code ? S(`wrapup.outcome.${c.outcome_code}`) : C("no_wrapup");
    const owner = c.next_owner ? ` · ${S(`wrapup.owner.${c.next_owner}`)}` : "";
    return el("li", { class: "ctx-call", "data-call": c.call_id },
      el("p", { class: "ctx-call-head" },
        el("strong", {}, when(c.at)), " · ", c.agent || "—", " · ", outcome,
        c.rating ? ` · ${C(`rating.${c.rating}`)}` : "",
        c.identity ? ` · ${C(`identity.${c.identity}`)}` : "",
        c.fraud ? el("span", { class: "ctx-flag" }, C("fraud_call")) : null),
      c.problem ? el("p", {}, C("problem"), c.problem) : null,
      c.action ? el("p", {}, C("action"), c.action) : null,
      c.next_step ? el("p", {}, C("next"), c.next_step, owner) : null);
  }

  function show(msg) {
    callId = msg.call_id;
    const card = msg.card || {};
    const root = el("section", { class: "ctx", "aria-label": C("title"), "data-call": msg.call_id });
    if (!card.known) {
      root.append(el("h2", {}, C("title")), el("p", {}, C("unknown")));
      container.replaceChildren(root);
      return;
    }
    const e = card.elder;
    const badges = el("p", { class: "ctx-badges" },
      el("span", { class: "ctx-badge" }, dialects[e.dialect] || e.dialect),
      e.hard_of_hearing ? el("span", { class: "ctx-badge ctx-hoh" }, C("hard_of_hearing")) : null,
      el("span", { class: `ctx-badge${card.calls_7d >= 3 ? " ctx-many" : ""}`, "data-calls7": card.calls_7d }, C("calls_7d", { n: card.calls_7d })),
      card.fraud.count ? el("span", { class: "ctx-badge ctx-flag" }, C("fraud_flags", { n: card.fraud.count, when: when(card.fraud.last_at) })) : null);
    const open = card.open_callbacks.length
      ? el("ul", { class: "ctx-open" }, ...card.open_callbacks.map((b) => el("li", {},
        S(`callbacks.kind.${b.kind}`), " · ", when(b.due_at), b.topic ? ` · ${S(`family.topic.${b.topic}`)}` : "")))
      : el("p", { class: "ctx-none" }, C("no_open"));
    const calls = card.last_calls.length
      ? el("ol", { class: "ctx-calls" }, ...card.last_calls.map(pastCall))
      : el("p", { class: "ctx-none" }, C("first_call"));
    const more = el("button", { type: "button", class: "ctx-more", onclick: () => send({ type: "history", call_id: callId }) }, C("full_history"));
    root.append(...[
      el("h2", {}, e.name),
      badges,
      el("h3", {}, C("open")), open,
      el("h3", {}, C("last_calls")), calls,
      card.last_calls.length ? more : null,
      el("div", { class: "ctx-history", id: "ctx-history" })].filter(Boolean));
    container.replaceChildren(root);
  }

  function showHistory(msg) {
    if (msg.call_id !== callId) return;
    const box = container.querySelector(".ctx-history");
    if (!box) return;
    box.replaceChildren(el("h3", {}, C("history_title", { n: msg.calls.length })),
      el("ol", { class: "ctx-calls ctx-all" }, ...msg.calls.map(pastCall)));
    const button = container.querySelector(".ctx-more");
    if (button) button.remove();
  }

  function clear() { callId = null; container.replaceChildren(); }

  document.addEventListener("hotline:message", (ev) => {
    if (ev.detail.type === "context") show(ev.detail);
    else if (ev.detail.type === "history") showHistory(ev.detail);
  });
  document.addEventListener("hotline:reset", clear);
  return { clear, show };
}

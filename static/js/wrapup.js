// The wrap-up form for one call, with the follow-up booking right there.
// Usage: mountWrapup(container, { csrf, strings, callId, fraud, onSaved(result) }) -> { close }
// `strings` is the catalogue subset with the prefixes "wrapup." and "family.topic."
// (e.g. subset(lang, ("wrapup.", "family.topic."))).
import { el, fmt } from "./dom.js";

const OUTCOMES = ["solved", "partly_solved", "not_solved", "referred", "fraud_stopped", "no_contact"];
const OWNERS = ["agent", "elder", "family", "none"];
const TOPICS = ["refund_order", "payment_password", "phone_settings", "anti_fraud", "other"];

export function mountWrapup(container, { csrf, strings = {}, callId, fraud = false, onSaved = () => {} } = {}) {
  const S = (key, values = {}) => fmt(strings[key] || key, values);
  const W = (key, values) => S(`wrapup.${key}`, values);
  const text = (name, rows = 2) => el("label", { class: "wu-field" }, W(name),
    el("textarea", { name, rows, maxlength: 500 }));
  // Nothing is pre-selected: a default answer would be saved unread and bias every report.
  const select = (name, options, label) => el("label", { class: "wu-field" }, label,
    el("select", { name, required: true },
      el("option", { value: "", selected: true }, W("choose")),
      ...options.map(([v, l]) => el("option", { value: v }, l))));
  const followWhen = el("input", { type: "datetime-local", name: "follow_when" });
  const followTopic = el("select", { name: "follow_topic" }, ...TOPICS.map((tp) => el("option", { value: tp }, S(`family.topic.${tp}`))));
  const followBox = el("fieldset", { class: "wu-follow", disabled: true },
    el("label", { class: "wu-field" }, W("follow_up_when"), followWhen),
    el("label", { class: "wu-field" }, W("follow_up_topic"), followTopic));
  const followOn = el("input", { type: "checkbox", name: "follow_up", checked: fraud });
  followBox.disabled = !fraud;
  followOn.addEventListener("change", () => { followBox.disabled = !followOn.checked; });
  const note = el("p", { class: "wu-note", role: "status", "aria-live": "polite" });
  // Two columns so the whole form fits on the screen without scrolling.
  const form = el("form", { class: "wrapup", onsubmit: submit, novalidate: true },
    el("h2", {}, W("title")),
    fraud ? el("p", { class: "wu-fraud", role: "alert" }, W("fraud_notice")) : null,
    el("div", { class: "wu-cols" },
      el("div", { class: "wu-col" }, text("problem"), text("action"), text("next_step")),
      el("div", { class: "wu-col" },
        select("outcome_code", OUTCOMES.map((o) => [o, W(`outcome.${o}`)]), W("outcome")),
        select("next_owner", OWNERS.map((o) => [o, W(`owner.${o}`)]), W("next_owner")),
        el("label", { class: "wu-check" }, el("input", { type: "checkbox", name: "share_with_family" }), W("share")),
        el("label", { class: "wu-check" }, followOn, W("follow_up")),
        followBox,
        el("label", { class: "wu-field" }, W("no_follow_up_reason"), el("input", { name: "no_follow_up_reason", maxlength: 500 })))),
    el("div", { class: "wu-actions" }, el("button", { type: "submit" }, W("save")), note));
  // Any edit after saving makes the confirmation say so, until saved again.
  form.addEventListener("input", () => { if (form.dataset.saved) { delete form.dataset.saved; note.textContent = W("unsaved"); note.className = "wu-note"; } });
  container.append(form);

  async function submit(ev) {
    ev.preventDefault();
    const f = form.elements;
    const body = {
      problem: f.problem.value, action: f.action.value, next_step: f.next_step.value,
      next_owner: f.next_owner.value, outcome_code: f.outcome_code.value,
      share_with_family: f.share_with_family.checked,
      no_follow_up_reason: f.no_follow_up_reason.value,
    };
    if (followOn.checked) body.follow_up = { when: followWhen.value, topic: followTopic.value };
    const r = await fetch(`/api/calls/${encodeURIComponent(callId)}/wrapup`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) {
      note.className = "wu-note";
      note.textContent = W("error", { detail: data.detail || r.status });
      const bad = data.field && form.querySelector(`[name="${String(data.field).split(".")[0]}"]`);
      if (bad) bad.focus();
      return;
    }
    const now = new Date();
    const at = `${String(now.getHours()).padStart(2, "0")}:${String(now.getMinutes()).padStart(2, "0")}`;
    note.textContent = W("saved_at", { time: at });
    note.className = "wu-note wu-saved";
    form.dataset.saved = "1";
    onSaved(data);
  }

  return { close: () => form.remove() };
}

// Transfer and escalation from the console: pick a colleague, any agent of a dialect, or the
// supervisors; write a note that travels with the call.
// Usage: mountTransferPanel(container, { strings, dialects, send, callId: () => id }) -> { open, close }
import { el, fmt } from "./dom.js";

export function mountTransferPanel(container, { strings = {}, dialects = {}, send, callId }) {
  const S = (key, values = {}) => fmt(strings[key] || key, values);
  const T = (key, values) => S(`transfer.${key}`, values);
  let targets = [];

  function render() {
    const choice = el("select", { name: "target", id: "transfer-target", "aria-label": T("to") });
    for (const a of targets) {
      const label = T("to_agent", { name: a.name, dialects: a.dialects.map((d) => dialects[d] || d).join("、"), status: S(`status.${a.status}`) });
      // A busy or away colleague can be chosen too: a cold transfer waits for them at the head.
      choice.append(el("option", { value: `agent:${a.id}`, "data-free": String(a.status === "available") }, label));
    }
    for (const [id, name] of Object.entries(dialects)) choice.append(el("option", { value: `dialect:${id}` }, T("to_dialect", { dialect: name })));
    choice.append(el("option", { value: "supervisor:" }, T("to_supervisor")));
    const firstFree = [...choice.options].find((o) => o.dataset.free !== "false");
    if (firstFree) firstFree.selected = true;
    const note = el("textarea", { name: "note", rows: 2, maxlength: 500, id: "transfer-note-input" });
    const mode = el("select", { name: "mode", id: "transfer-mode", "aria-label": T("mode") },
      el("option", { value: "cold" }, T("mode_cold")), el("option", { value: "warm" }, T("mode_warm")));
    const form = el("form", { class: "transfer-form", onsubmit: (ev) => {
      ev.preventDefault();
      const [kind, value] = choice.value.split(":");
      const msg = { type: "transfer", call_id: callId(), to: kind, note: note.value, mode: mode.value };
      if (kind === "agent") msg.agent_id = Number(value);
      if (kind === "dialect") msg.dialect = value;
      send(msg);
    } },
      el("h2", {}, T("title")),
      el("label", { class: "wu-field" }, T("to"), choice),
      el("label", { class: "wu-field" }, T("mode"), mode),
      el("label", { class: "wu-field" }, T("note"), note),
      el("div", { class: "wu-actions" },
        el("button", { type: "submit", class: "go", id: "transfer-send" }, T("send")),
        el("button", { type: "button", onclick: close }, T("close"))),
      el("p", { class: "transfer-status", id: "transfer-status", role: "status", "aria-live": "polite" }));
    container.replaceChildren(form);
  }

  function status(text, pending = false) {
    const p = container.querySelector(".transfer-status");
    if (!p) return;
    p.textContent = text;
    const old = container.querySelector(".transfer-cancel");
    if (old) old.remove();
    if (pending) p.after(el("button", { type: "button", class: "transfer-cancel", onclick: () => send({ type: "cancel_transfer", call_id: callId() }) }, T("cancel")));
    const submit = container.querySelector("#transfer-send");
    if (submit) submit.disabled = pending;
  }

  function open() { send({ type: "transfer_targets" }); render(); }
  function close() { container.replaceChildren(); }

  document.addEventListener("hotline:message", (ev) => {
    const msg = ev.detail;
    if (msg.type === "transfer_targets") {
      targets = msg.agents || [];
      const note = container.querySelector("textarea");
      const kept = note ? note.value : "";
      if (container.firstChild) { render(); container.querySelector("textarea").value = kept; }
    } else if (msg.type === "transfer_started") {
      status(T("ringing", { name: msg.to_name }), true);
    } else if (msg.type === "transfer_failed") {
      status(T("failed", { reason: T(`reason.${msg.reason}`) }));
    } else if (msg.type === "error" && container.firstChild && String(msg.for || "").includes("transfer")) {
      status(strings[`transfer.error.${msg.code}`] || msg.detail || msg.code);
    }
  });
  document.addEventListener("hotline:reset", close);
  return { open, close };
}

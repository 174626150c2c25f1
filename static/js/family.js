// The family booking pages: refresh free hours when the language changes, count the note,
// show how many times are chosen, stop double submits, copy the manage link, print the card.
import { fmt } from "./dom.js";
import { keepWordsWhole } from "./phrasing.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const S = boot.strings;
const $ = (id) => document.getElementById(id);

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// The form's time choice (as family_when.html renders it): the next free hour preselected,
// or which of "nobody scheduled" / "fully booked" keeps it empty.
function renderWhen(data, keep) {
  if (data.availability === "no_helpers") return `<p class="no-slots" role="status" data-availability="no_helpers">${escapeHtml(S["family.no_helpers"])}</p>`;
  if (!data.days.length) return `<p class="no-slots" role="status" data-availability="full">${escapeHtml(S["family.no_slots"])}</p>`;
  const starts = data.days.flatMap((d) => d.hours.map((h) => String(h.start)));
  const chosen = starts.includes(keep) ? keep : starts[0];
  const groups = data.days.map((day) => `<optgroup label="${escapeHtml(day.label)}">${day.hours.map((h) =>
    `<option value="${h.start}"${String(h.start) === chosen ? " selected" : ""}>${escapeHtml(day.short)} ${escapeHtml(h.label)}</option>`).join("")}</optgroup>`).join("");
  return `<label class="field">${escapeHtml(S["family.when_label"])}<select name="slot" id="slot" data-availability="ok">${groups}</select></label>
    <p class="hint">${escapeHtml(fmt(S["family.when_next_hint"], { tz: boot.tz }))}</p>`;
}

function updateChosen() {
  const out = $("chosen");
  if (!out) return;
  const n = document.querySelectorAll('#slots input[name="slot"]:checked').length;
  out.textContent = n ? fmt(S["family.chosen"], { n }) : "";
}

async function refreshSlots(dialect) {
  const box = $("slots");
  const current = box.querySelector("select[name=slot]");
  const keep = current ? current.value : "";
  box.setAttribute("aria-busy", "true");
  try {
    const r = await fetch(`/family/slots?dialect=${encodeURIComponent(dialect)}&lang=${boot.lang}`, { credentials: "same-origin" });
    if (!r.ok) return;
    box.innerHTML = renderWhen(await r.json(), keep);
  } catch (e) { /* keep the server-rendered hours */ } finally { box.removeAttribute("aria-busy"); }
}

function setupForm(form) {
  const note = $("note");
  const count = $("note-count");
  const max = boot.note_max || 200;
  const showCount = () => { count.textContent = fmt(S["family.note_count"], { n: Math.max(0, max - note.value.length) }); };
  note.addEventListener("input", showCount);
  showCount();
  const dialect = $("dialect");
  if (dialect) dialect.addEventListener("change", () => refreshSlots(dialect.value));
  form.addEventListener("change", (ev) => { if (ev.target.name === "slot") updateChosen(); });
  updateChosen();
  form.addEventListener("submit", (ev) => {
    const button = $("submit");
    if (button.dataset.busy) { ev.preventDefault(); return; }
    button.dataset.busy = "1";
    button.textContent = S["family.submitting"];
    // The idempotency key makes a second submit harmless; this only spares a wait.
    setTimeout(() => { delete button.dataset.busy; button.textContent = S["family.submit"]; }, 15000);
  });
}

function setupManage() {
  const copy = $("copy-link");
  if (copy && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", async () => {
      const url = new URL(location.href);
      url.searchParams.delete("new");
      url.searchParams.delete("done");
      await navigator.clipboard.writeText(url.toString());
      copy.textContent = S["family.copied"];
    });
  }
  const print = $("print-card");
  if (print) print.addEventListener("click", () => window.print());
  const change = document.querySelector(".change");
  if (change) change.addEventListener("change", updateChosen);
}

const form = $("book-form");
if (form) setupForm(form);
else setupManage();
const err = $("form-error");
if (err) err.focus();

keepWordsWhole(document.body, boot.lang === "en" ? "en" : "zh-CN");

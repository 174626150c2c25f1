// The family booking pages: refresh free hours when the language changes, count the note,
// show how many times are chosen, stop double submits, copy the manage link, print the card.
import { fmt } from "./dom.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const S = boot.strings;
const $ = (id) => document.getElementById(id);

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function renderDays(days) {
  if (!days.length) return `<p class="no-slots" role="status">${escapeHtml(S["family.no_slots"])}</p>`;
  return days.map((day, i) => `
    <details class="day"${i === 0 ? " open" : ""}>
      <summary>${escapeHtml(day.label)}</summary>
      <div class="hours">${day.hours.map((h) => `
        <label class="hour"><input type="checkbox" name="slot" value="${h.start}"><span>${escapeHtml(h.label)}<small>${escapeHtml(h.free)}</small></span></label>`).join("")}
      </div>
    </details>`).join("");
}

function updateChosen() {
  const out = $("chosen");
  if (!out) return;
  const n = document.querySelectorAll('#slots input[name="slot"]:checked').length;
  out.textContent = n ? fmt(S["family.chosen"], { n }) : "";
}

async function refreshSlots(dialect) {
  const box = $("slots");
  const kept = new Set([...box.querySelectorAll('input[name="slot"]:checked')].map((i) => i.value));
  try {
    const r = await fetch(`/family/slots?dialect=${encodeURIComponent(dialect)}&lang=${boot.lang}`, { credentials: "same-origin" });
    if (!r.ok) return;
    const data = await r.json();
    box.innerHTML = renderDays(data.days);
    for (const input of box.querySelectorAll('input[name="slot"]')) input.checked = kept.has(input.value);
    updateChosen();
  } catch (e) { /* keep the server-rendered hours */ }
}

function setupForm(form) {
  const note = $("note");
  const count = $("note-count");
  const max = boot.note_max || 200;
  const showCount = () => { count.textContent = fmt(S["family.note_count"], { n: Math.max(0, max - note.value.length) }); };
  note.addEventListener("input", showCount);
  showCount();
  for (const radio of form.querySelectorAll('input[name="dialect"]')) {
    radio.addEventListener("change", () => refreshSlots(radio.value));
  }
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

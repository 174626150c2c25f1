// A call's page: its transcript is fetched only when asked for (each read is audited).
const boot = JSON.parse(document.getElementById("boot").textContent);
const S = boot.strings;
const $ = (id) => document.getElementById(id);

$("show-transcript").addEventListener("click", async () => {
  const button = $("show-transcript");
  button.disabled = true;
  const r = await fetch(`/api/calls/${encodeURIComponent(boot.call_id)}/transcript`, { credentials: "same-origin" });
  const list = $("transcript");
  if (!r.ok) { list.replaceChildren(Object.assign(document.createElement("li"), { textContent: S["admin.transcript_failed"] })); button.disabled = false; return; }
  const { lines } = await r.json();
  if (!lines.length) { list.replaceChildren(Object.assign(document.createElement("li"), { textContent: S["admin.transcript_empty"] })); return; }
  list.replaceChildren(...lines.map((l) => {
    const li = document.createElement("li");
    const who = l.speaker === "agent" ? S["admin.speaker.agent"] : S["admin.speaker.caller"];
    const time = new Date(l.at * 1000).toLocaleTimeString(boot.lang === "en" ? "en" : "zh-CN", { hour12: false, timeZone: boot.timezone });
    li.textContent = `${time} ${who}: ${l.text}`;
    if (l.gloss) { const g = document.createElement("span"); g.className = "gloss"; g.textContent = ` (${l.gloss})`; li.append(g); }
    for (const a of l.alerts || []) { const f = document.createElement("strong"); f.className = "flag"; f.textContent = ` ⚠ ${a.phrase}`; li.append(f); }
    return li;
  }));
  button.hidden = true;
});

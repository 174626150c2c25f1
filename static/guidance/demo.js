// Standalone demo: renders a caller view (or the agent panel) from demo-fixture.json.
// Serve the repository root (python -m http.server) and open
// /static/guidance/demo.html?view=0&lang=zh_CN  or  ?panel=1&lang=en
import { renderStep } from "./caller-step.js";
import { mountGuidancePanel } from "./agent-panel.js";

const params = new URLSearchParams(location.search);
const fixture = await fetch("demo-fixture.json").then((r) => r.json());
const lang = params.get("lang") || "zh_CN";
const strings = fixture.strings[lang];
document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
const log = (what) => (view) => console.log(what, view && view.seq);

if (params.get("panel")) {
  document.getElementById("caller").remove();
  const panel = mountGuidancePanel(document.getElementById("agent"), {
    send: (msg) => console.log("send", JSON.stringify(msg)),
    strings,
    lang,
    fetchJson: async () => fixture.library[lang],
  });
  if (params.get("live") !== "0") panel.update(fixture.snapshot);
} else {
  const views = fixture.views;
  let index = Number(params.get("view") || 0);
  // A tiny silent WAV stands in for the TTS prompt the server renders.
  const silent = "data:audio/wav;base64,UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=";
  for (const v of views) v.audio_url = params.get("audio") === "0" ? null : silent;
  const view = views[index];
  const handle = renderStep(document.getElementById("caller"), view, {
    strings,
    onDone: () => {
      index = (index + 1) % views.length;
      handle.update(views[index]);
    },
    onHelp: log("help"),
    onReplay: log("replay"),
  });
}

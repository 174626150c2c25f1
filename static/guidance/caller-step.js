// The caller's guidance step: takes over the screen with one big instruction, the picture with
// a pulsing frame on the button to press, and two huge answers. No timeouts: the senior takes
// as long as they need. Every visible word comes from `strings` (the i18n catalogue).

import { appendPhrased } from "/static/js/phrasing.js";

/** Fill `{name}` placeholders of catalogue string `key`. */
export function t(strings, key, vars = {}) {
  const text = (strings && strings[key]) || key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

// Long CJK instructions may wrap, but never inside a word or a quoted label: each 「label」
// (the words on the button to find) is kept whole, and elsewhere the text gets a <wbr> at each
// word boundary (Intl.Segmenter) while the CSS says `word-break: keep-all`, so 订单 or 验证码
// are never split across two lines. Without Segmenter the text is left as it is.
function phrased(node, text, lang) {
  if (!text || typeof Intl === "undefined" || !Intl.Segmenter) {
    node.textContent = text || "";
    return node;
  }
  const words = new Intl.Segmenter(lang, { granularity: "word" });
  for (const piece of text.split(/(「[^「」]*」)/)) {
    if (!piece) continue;
    if (piece.startsWith("「")) {
      node.append(el("span", "gd-label", piece));
      continue;
    }
    if (node.lastChild && !/^\p{P}/u.test(piece)) node.append(document.createElement("wbr"));
    appendPhrased(node, piece, words);
  }
  return node;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

// Icons are drawn, not emoji: an old phone may lack an emoji font and show an empty box.
const ICONS = {
  done: "M4 12.5l5 5L20 6.5",
  help: "M8.5 9a3.5 3.5 0 1 1 5 3.2c-1 .5-1.5 1.2-1.5 2.3v.5M12 19v.5",
  replay: "M4 9.5h3.5L12 5v14l-4.5-4.5H4zM15.5 9a4 4 0 0 1 0 6M18 6.5a7.5 7.5 0 0 1 0 11",
};

function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "gd-btn-icon");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

function bigButton(className, iconName, label) {
  const button = el("button", `gd-btn ${className}`);
  button.type = "button";
  button.append(icon(iconName), el("span", "gd-btn-label", label));
  return button;
}

function picture(view) {
  const figure = el("figure", "gd-figure");
  const frame = el("div", "gd-pic");
  const img = el("img", "gd-img");
  img.src = view.picture_url;
  img.alt = view.alt || "";
  img.addEventListener("load", () => {
    if (img.naturalWidth && img.naturalHeight) {
      frame.style.setProperty("--gd-ratio", `${img.naturalWidth} / ${img.naturalHeight}`);
    }
  });
  frame.append(img);
  const box = view.highlight;
  if (box) {
    // The frame lives inside the picture's own box (overflow hidden), so it can never
    // cover the instruction text. Percentages keep it on the button at any size.
    const ring = el("div", "gd-ring");
    ring.setAttribute("aria-hidden", "true");
    ring.style.left = `${box.x * 100}%`;
    ring.style.top = `${box.y * 100}%`;
    ring.style.width = `${box.w * 100}%`;
    ring.style.height = `${box.h * 100}%`;
    frame.append(ring);
  }
  figure.append(frame);
  return figure;
}

function header(view, strings) {
  const head = el("p", "gd-count");
  if (view.is_free_text) {
    head.textContent = t(strings, "guidance.text_badge");
    head.classList.add("gd-badge");
  } else if (view.number) {
    head.textContent = t(strings, "guidance.step_of", { n: view.number, total: view.total });
  }
  if (view.is_hint) {
    const badge = el("span", "gd-badge gd-hint-badge", t(strings, "guidance.hint_badge"));
    head.prepend(badge);
  }
  return head;
}

function build(view, opts) {
  const strings = opts.strings || {};
  const root = el("section", `gd-step gd-mode-${view.mode}`);
  root.lang = view.lang === "en" ? "en" : "zh-CN";
  if (view.mode === "finished") {
    const h = el("h1", "gd-text gd-finished", t(strings, "guidance.finished"));
    h.tabIndex = -1;
    root.append(h, el("p", "gd-done-means", t(strings, "guidance.finished_detail")));
    return { root, focus: h };
  }
  const body = el("div", "gd-body");
  body.append(header(view, strings));
  const text = phrased(el("h1", "gd-text"), view.text || "", root.lang);
  text.tabIndex = -1;
  body.append(text);
  if (view.waiting_for_agent) {
    const wait = el("p", "gd-waiting", t(strings, "guidance.waiting_for_agent"));
    wait.setAttribute("role", "status");
    body.append(wait);
  }
  if (view.done_text && !view.waiting_for_agent) {
    body.append(el("p", "gd-done-means", t(strings, "guidance.done_means", { done: view.done_text })));
  }
  const actions = el("div", "gd-actions");
  const done = bigButton(
    "gd-done",
    "done",
    t(strings, view.is_free_text ? "guidance.text_done" : "guidance.done"),
  );
  const help = bigButton(
    "gd-help",
    "help",
    t(strings, view.is_free_text ? "guidance.text_help" : "guidance.help"),
  );
  const replay = bigButton("gd-replay", "replay", t(strings, "guidance.replay"));
  actions.append(done, help, replay);
  const audio = el("audio", "gd-audio");
  audio.preload = "auto";
  if (view.audio_url) audio.src = view.audio_url;
  else replay.hidden = true;
  const answer = (callback) => () => {
    // One answer per step: the buttons rest until the next step arrives.
    done.disabled = true;
    help.disabled = true;
    if (callback) callback(view);
  };
  done.addEventListener("click", answer(opts.onDone));
  help.addEventListener("click", answer(opts.onHelp));
  replay.addEventListener("click", () => {
    if (opts.speak) opts.speak(view.audio_url);
    else {
      audio.currentTime = 0;
      audio.play().catch(() => {});
    }
    if (opts.onReplay) opts.onReplay(view);
  });
  if (view.picture_url) root.append(body, picture(view), actions, audio);
  else root.append(body, actions, audio);
  if (!view.picture_url) root.classList.add("gd-no-picture");
  return { root, focus: text, audio };
}

/**
 * Render a caller view (from the server's `guide_state`) into `container`.
 * Returns {update(view), audio, element}; update() re-renders only when `view.seq` changes.
 */
export function renderStep(container, view, opts = {}) {
  let shownSeq = null;
  const handle = { audio: null, element: null, update };
  function update(next) {
    if (!next || next.seq === shownSeq) return handle;
    shownSeq = next.seq;
    container.replaceChildren();
    if (next.mode === "idle") {
      handle.element = null;
      handle.audio = null;
      return handle;
    }
    const { root, focus, audio } = build(next, opts);
    container.append(root);
    handle.element = root;
    handle.audio = audio || null;
    focus.focus({ preventScroll: true });
    // The page's speech queue (if given) keeps the step from cutting off a message being
    // spoken, and offers it again if the browser refused to play it.
    if (next.audio_url) {
      if (opts.speak) opts.speak(next.audio_url);
      else if (audio) audio.play().catch(() => {});
    }
    if (opts.onShown) opts.onShown(next);
    return handle;
  }
  return update(view);
}

// Chinese has no spaces, so a browser may wrap a sentence inside a word (视频通/话, 电/话):
// hard to read for a senior. Each text-only paragraph of a page gets a <wbr> at
// every word boundary (Intl.Segmenter) while the CSS says `word-break: keep-all`, so lines wrap
// only between words. Text a script sets later is re-phrased by a MutationObserver. Without
// Segmenter (old browsers) the text is left as it is.

// Headings, legends and buttons are short: `keep-all` alone (breaks only at punctuation) keeps
// their phrases whole, which word boundaries would not (谢谢|您).
const SELECTOR = "p";

function textOnly(node) {
  return node.childNodes.length === 1 && node.firstChild.nodeType === Node.TEXT_NODE;
}

// Words the browser's dictionary (ICU) does not know and splits into single characters, found
// by segmenting every caller and family string of the catalogue: never break inside them.
const WHOLE = ["客服", "回电", "链接", "接听", "页面", "卡号", "静音", "重启", "新卡", "在线",
  "约满", "排队", "稍后", "一键", "断了", "不稳"];

/** Offsets inside a WHOLE word of `text` (a break there would split it). */
function insideWords(text) {
  const inside = new Set();
  for (const word of WHOLE) {
    for (let at = text.indexOf(word); at !== -1; at = text.indexOf(word, at + 1)) {
      for (let k = 1; k < word.length; k++) inside.add(at + k);
    }
  }
  return inside;
}

/** Append `text` to `node` with a <wbr> before each word (none inside a WHOLE word, none
 * before punctuation, which stays on the line of the word it follows). */
export function appendPhrased(node, text, segmenter) {
  const inside = insideWords(text);
  let run = "";
  for (const part of segmenter.segment(text)) {
    if (run && part.isWordLike && !inside.has(part.index)) {
      node.append(run, document.createElement("wbr"));
      run = "";
    }
    run += part.segment;
  }
  if (run) node.append(run);
}

function phrase(node, segmenter) {
  if (!textOnly(node)) return;
  const text = node.textContent;
  if (!text.trim() || Array.from(segmenter.segment(text)).length < 2) return;
  node.textContent = "";
  appendPhrased(node, text, segmenter);
}

/** Keep words whole when the text of `root`'s paragraphs and headings wraps, now and later. */
export function keepWordsWhole(root, lang) {
  if (typeof Intl === "undefined" || !Intl.Segmenter) return;
  const segmenter = new Intl.Segmenter(lang, { granularity: "word" });
  root.classList.add("phrased");
  for (const node of root.querySelectorAll(SELECTOR)) phrase(node, segmenter);
  new MutationObserver((changes) => {
    for (const change of changes) {
      const node = change.target.nodeType === Node.TEXT_NODE ? change.target.parentElement : change.target;
      if (node && node.matches && node.matches(SELECTOR)) phrase(node, segmenter);
    }
  }).observe(root, { childList: true, subtree: true, characterData: true });
}

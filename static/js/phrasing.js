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

function phrase(node, segmenter) {
  if (!textOnly(node)) return;
  const text = node.textContent;
  if (!text.trim()) return;
  const parts = Array.from(segmenter.segment(text));
  if (parts.length < 2) return;
  node.textContent = "";
  parts.forEach((part, i) => {
    // A break only before a word: punctuation stays on the line of the word it follows.
    if (i && part.isWordLike) node.append(document.createElement("wbr"));
    node.append(part.segment);
  });
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

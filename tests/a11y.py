"""Measure the caller-page accessibility bar in a real browser: text size, contrast, targets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# Returns a list of problems for visible elements: text under min_px, contrast under 7:1
# (text colour against the nearest opaque background), buttons/links smaller than 64 px.
MEASURE_JS = """
({minText, minTarget, minContrast}) => {
  const problems = [];
  const lum = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const [r, g, b, a] = m[1].split(',').map(Number);
    if (a === 0) return null;
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const bgOf = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      const l = lum(s.backgroundColor);
      if (l !== null) return l;
    }
    return 1;
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none';
  };
  for (const el of document.querySelectorAll('body *')) {
    if (!visible(el) || ['SCRIPT','STYLE','VIDEO','AUDIO','svg','SVG'].includes(el.tagName)) continue;
    if (el.closest('svg')) continue;
    const ownText = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const s = getComputedStyle(el);
    const label = el.tagName + (el.id ? '#' + el.id : '') + ' "' + (el.textContent || '').trim().slice(0, 20) + '"';
    if (ownText) {
      const size = parseFloat(s.fontSize);
      if (size < minText) problems.push(`${label}: text ${size}px < ${minText}px`);
      const fg = lum(s.color), bg = bgOf(el);
      if (fg !== null) {
        const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
        if (ratio < minContrast) problems.push(`${label}: contrast ${ratio.toFixed(2)} < ${minContrast}`);
      }
    }
    if (['BUTTON','A','INPUT','SELECT','TEXTAREA'].includes(el.tagName) && el.type !== 'hidden') {
      const r = el.getBoundingClientRect();
      if (r.height < minTarget || r.width < minTarget) problems.push(`${label}: target ${Math.round(r.width)}x${Math.round(r.height)} < ${minTarget}px`);
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1) problems.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
  return problems;
}
"""


def problems(
    page: Any, *, min_text: float = 24, min_target: float = 64, min_contrast: float = 7.0
) -> list[str]:
    """Every visible element on the page that misses the caller-page bar."""
    return page.evaluate(
        MEASURE_JS, {"minText": min_text, "minTarget": min_target, "minContrast": min_contrast}
    )


# Words broken across lines on buttons and headings. The characters of each text are located
# with Range client rects (one line = one run of equal tops). A "phrase" (text between spaces
# and punctuation) that fits the element's width must sit on one line (做好了, 没找到, 不满意
# are phrases); a longer phrase may wrap, but never inside a word of Intl.Segmenter.
BROKEN_WORDS_JS = """
([selector, whole]) => {
  const found = [];
  const seg = new Intl.Segmenter(document.documentElement.lang || 'zh', {granularity: 'word'});
  const punct = /[\\s\\p{P}\\p{S}]/u;
  for (const el of document.querySelectorAll(selector)) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || getComputedStyle(el).visibility === 'hidden') continue;
    const chars = [];
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      for (let i = 0; i < n.data.length; i++) {
        const r = document.createRange();
        r.setStart(n, i); r.setEnd(n, i + 1);
        const rect = [...r.getClientRects()].find(q => q.width > 0);
        chars.push({c: n.data[i], top: rect ? rect.top : null, w: rect ? rect.width : 0,
                    size: parseFloat(getComputedStyle(n.parentElement).fontSize)});
      }
    }
    const text = chars.map(x => x.c).join('');
    const lineOf = [];
    let line = 0, lastTop = null;
    for (const ch of chars) {
      if (ch.top !== null) {
        if (lastTop !== null && ch.top > lastTop + ch.size * 0.5) line += 1;
        lastTop = ch.top;
      }
      lineOf.push(line);
    }
    const style = getComputedStyle(el);
    const inner = box.width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const label = el.tagName + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ')[0] : '');
    // phrases; in a long instruction (.gd-text) only quoted labels count as phrases
    const quotedOnly = el.matches('.gd-text');
    let quoted = false;
    let start = 0;
    for (let i = 0; i <= chars.length; i++) {
      if (i < chars.length && chars[i].c === '「') quoted = true;
      if (i < chars.length && chars[i].c === '」') quoted = false;
      if (i === chars.length || punct.test(chars[i].c) || (quotedOnly && !quoted)) {
        if (quotedOnly && i < chars.length && chars[i].c !== '」') { start = i + 1; continue; }
        if (i > start) {
          const width = chars.slice(start, i).reduce((s, x) => s + x.w, 0);
          if (lineOf[i - 1] !== lineOf[start] && width <= inner) {
            found.push(`${label}: "${text.slice(start, i)}" broken across lines in "${text.trim()}"`);
          }
        }
        start = i + 1;
      }
    }
    // words of long phrases (the segmenter's, and those phrasing.js keeps whole)
    const words = [...seg.segment(text)].filter(w => w.isWordLike).map(w => [w.index, w.segment]);
    for (const word of whole) {
      for (let at = text.indexOf(word); at !== -1; at = text.indexOf(word, at + 1)) words.push([at, word]);
    }
    for (const [a, word] of words) {
      if (lineOf[a] !== lineOf[a + word.length - 1]) found.push(`${label}: word "${word}" broken in "${text.trim()}"`);
    }
  }
  return [...new Set(found)];
}
"""

WORD_SELECTOR = "button, h1, h2, legend, .huge, summary, label.choice, label.hour, .gd-text"


def _whole_words() -> list[str]:
    """The words static/js/phrasing.js keeps whole (the browser's dictionary splits them)."""
    source = (Path(__file__).resolve().parent.parent / "static/js/phrasing.js").read_text("utf-8")
    found = re.search(r"const WHOLE = \[(.*?)\];", source, re.S)
    assert found, "phrasing.js lost its WHOLE list"
    return re.findall(r'"([^"]+)"', found.group(1))


def broken_words(page: Any, selector: str = WORD_SELECTOR) -> list[str]:
    """Buttons and headings whose text breaks a phrase or a word across two lines."""
    return page.evaluate(BROKEN_WORDS_JS, [selector, _whole_words()])


AXE_JS = (
    Path(__file__).resolve().parent.parent
    / ".venv"
    / "node"
    / "node_modules"
    / "axe-core"
    / "axe.min.js"
)


def axe_violations(page: Any) -> list[str]:
    """axe-core's violations on the page (WCAG 2.x A/AA rules), as 'rule: node' lines.

    The page's CSP forbids injected scripts: the test's browser bypasses CSP (bypass_csp)."""
    if not page.evaluate("() => Boolean(window.axe)"):
        page.add_script_tag(content=AXE_JS.read_text(encoding="utf-8"))
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => v.nodes.map(n => v.id + ': ' + n.target.join(' '))).flat()"
    )
    return list(result)

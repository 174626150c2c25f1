"""Measure the caller-page accessibility bar in a real browser: text size, contrast, targets."""

from __future__ import annotations

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

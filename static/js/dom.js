// Small DOM helpers shared by the console components (no framework, no build step).

/** Fill `{name}` placeholders. */
export const fmt = (text, values = {}) =>
  String(text || "").replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m));

/** Create an element: attrs ("class", "onclick"…, others as attributes), then children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

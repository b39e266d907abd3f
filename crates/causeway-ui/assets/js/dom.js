// Building the page from data without ever parsing data as HTML: every string becomes a text
// node, attributes are set one by one, and `on*` attributes take functions.

/** An element: `el('a', {href: '/x', class: 'y', onclick: fn}, 'text', child, [more])`. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      node.addEventListener(name.slice(2), value);
    } else if (name === 'value') {
      node.value = value;
    } else if (name === 'checked') {
      node.checked = Boolean(value);
    } else {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(node, children);
  return node;
}

/** Appends children: strings and numbers as text, nodes as themselves, arrays flattened. */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces a node's children. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** A table: `headers` are strings or nodes; each row an array of cells (strings or nodes). */
export function table(headers, rows, attributes = {}) {
  return el('table', attributes,
    el('thead', {}, el('tr', {}, headers.map((header) => el('th', {}, header)))),
    el('tbody', {}, rows.map((row) => row instanceof Node ? row : el('tr', {}, row.map((cell) => el('td', {}, cell))))));
}

/** A section with a heading. */
export function section(title, ...children) {
  return el('section', {class: 'card'}, el('h2', {}, title), ...children);
}

/** A small coloured label. */
export function badge(text, kind = '') {
  return el('span', {class: `badge ${kind}`.trim()}, text);
}

/** A link inside the UI (the router handles the click). */
export function link(href, ...children) {
  return el('a', {href}, ...children);
}

// Tiny DOM helpers: element builders, labelled fields, JSON editors, error boxes, paged tables.
// No framework: pages rebuild their own subtree when their data changes.

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.setAttribute('class', value);
    else if (key in el && !(el instanceof SVGElement) && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function replace(el, ...children) {
  el.replaceChildren();
  fill(el, {}, children);
  return el;
}

let idCounter = 0;
export function uid(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

// A labelled control with a hint and a slot for the server's field violation, which the
// control references with aria-describedby so screen readers read it with the field.
export function field(label, control, { hint, wide, name } = {}) {
  const id = control.id || uid('f');
  control.id = id;
  const violation = h('p', { class: 'violation', id: `${id}-violation`, 'data-violation-for': name || '' });
  const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const described = [hintEl && hintEl.id, violation.id].filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', described);
  const wrapper = h('div', { class: `field${wide ? ' wide' : ''}`, 'data-field': name || '' },
    h('label', { for: id }, label), control, hintEl, violation);
  wrapper.violation = violation;
  wrapper.control = control;
  return wrapper;
}

// A textarea holding JSON: parse errors appear as you type; value() returns the parsed JSON
// (undefined when empty) or throws.
export function jsonEditor(label, { name, hint, initial } = {}) {
  const area = h('textarea', { name, rows: 5, spellcheck: 'false', autocomplete: 'off' });
  if (initial !== undefined) area.value = JSON.stringify(initial, null, 2);
  const wrapper = field(label, area, { hint, wide: true, name });
  const parseError = h('p', { class: 'parse-error', id: `${area.id}-parse`, 'aria-live': 'polite' });
  wrapper.insertBefore(parseError, wrapper.violation);
  area.setAttribute('aria-describedby', `${area.getAttribute('aria-describedby')} ${parseError.id}`);
  const check = () => {
    const text = area.value.trim();
    if (!text) { parseError.textContent = ''; area.removeAttribute('aria-invalid'); return; }
    try {
      JSON.parse(text);
      parseError.textContent = '';
      area.removeAttribute('aria-invalid');
    } catch (error) {
      parseError.textContent = `Not valid JSON: ${error.message}`;
      area.setAttribute('aria-invalid', 'true');
    }
  };
  area.addEventListener('input', check);
  wrapper.value = () => {
    const text = area.value.trim();
    return text ? JSON.parse(text) : undefined;
  };
  wrapper.valid = () => { check(); return !parseError.textContent; };
  return wrapper;
}

export function errorBox(error) {
  const box = h('div', { class: 'error', role: 'alert' }, error.message || String(error));
  if (error.hint) box.append(h('div', {}, error.hint));
  if (error.violations && error.violations.length) {
    box.append(h('ul', {}, error.violations.map((v) => h('li', {}, `${v.field}: ${v.description}`))));
  }
  return box;
}

export function badge(text, kind, label) {
  return h('span', { class: `badge ${kind || ''}`, 'aria-label': label }, text);
}

// The strategy badge plus, when otao halted the rollout by itself, a "halted" badge with the reason.
export function strategyBadges(definition) {
  const out = [badge(definition.rolloutStrategy, definition.rolloutStrategy, `strategy ${definition.rolloutStrategy}`)];
  if (definition.halt) {
    out.push(' ', h('span', { class: 'badge halted', 'data-testid': 'halt-badge', title: definition.halt.reason },
      `halted: ${definition.halt.reason}`));
  }
  return out;
}

export function formatTime(value) {
  if (!value) return '—';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toLocaleString();
}

export function jsonBlock(value) {
  return h('pre', { class: 'json' }, value === undefined ? '' : JSON.stringify(value, null, 2));
}

// A table whose rows come page by page with the API's page tokens. fetchPage(token) resolves
// to {rows, next}; previous pages are re-fetched by their remembered tokens.
export function pagedTable({ caption, columns, fetchPage, empty = 'Nothing yet.' }) {
  const tokens = [''];
  let index = 0;
  const body = h('tbody');
  const status = h('span', { class: 'muted', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', onclick: () => go(index - 1) }, 'Previous page');
  const next = h('button', { type: 'button', onclick: () => go(index + 1) }, 'Next page');
  const errorSlot = h('div');
  const table = h('table', {},
    h('caption', { class: 'muted' }, caption || ''),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : '' }, c.title)))),
    body);
  async function go(target) {
    prev.disabled = true; next.disabled = true;
    status.textContent = 'Loading…';
    try {
      const page = await fetchPage(tokens[target]);
      index = target;
      tokens.length = index + 1;
      if (page.next) tokens.push(page.next);
      replace(body, page.rows.length ? page.rows.map((row) => h('tr', {},
        columns.map((c) => h('td', { class: c.num ? 'num' : '' }, c.cell(row)))))
        : h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, empty)));
      replace(errorSlot);
      status.textContent = `Page ${index + 1}`;
    } catch (error) {
      replace(errorSlot, errorBox(error));
      status.textContent = '';
    }
    prev.disabled = index === 0;
    next.disabled = tokens.length <= index + 1;
  }
  const element = h('div', {}, errorSlot, h('div', { class: 'table-wrap' }, table), h('div', { class: 'pager' }, prev, next, status));
  element.reload = () => go(index);
  go(0);
  return element;
}

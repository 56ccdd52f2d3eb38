// The upgrade graph as inline SVG: nodes = versions, edges = upgradableFrom (from -> to).
//
// Layering: edges always go from a lower to a higher SemVer, so the graph is acyclic; a node's
// column is the length of the longest chain of upgrades leading to it, and each column is
// ordered by SemVer (newest at the top). Halted, suspended and never-defined (factory)
// versions are styled apart. "Show path" highlights what an endpoint on a version would take.

import { api, enc } from '../api.js';
import { errorBox, field, h, replace, s } from '../dom.js';
import { compare, newestFirst } from '../semver.js';

const NODE_W = 120;
const NODE_H = 44;
const COL_GAP = 90;
const ROW_GAP = 24;
const PAD = 20;

export function layout(nodes, edges) {
  const versions = nodes.map((n) => n.version).sort(compare);
  const incoming = new Map(versions.map((v) => [v, []]));
  for (const e of edges) if (incoming.has(e.to)) incoming.get(e.to).push(e.from);
  const layer = new Map();
  for (const v of versions) {
    // Ascending SemVer order visits every source before its targets.
    layer.set(v, Math.max(-1, ...incoming.get(v).map((f) => (layer.has(f) ? layer.get(f) : -1))) + 1);
  }
  const columns = [];
  for (const v of versions) (columns[layer.get(v)] ||= []).push(v);
  const position = new Map();
  columns.forEach((column, x) => column.sort(newestFirst).forEach((v, y) => {
    position.set(v, { x: PAD + x * (NODE_W + COL_GAP), y: PAD + y * (NODE_H + ROW_GAP) });
  }));
  const rows = Math.max(1, ...columns.map((c) => c.length));
  return {
    position,
    width: PAD * 2 + columns.length * NODE_W + Math.max(0, columns.length - 1) * COL_GAP,
    height: PAD * 2 + rows * NODE_H + (rows - 1) * ROW_GAP,
  };
}

function nodeClass(node, definition) {
  if (!node.defined) return 'undefined';
  if (definition && definition.halt) return 'halted';
  return node.rolloutStrategy || '';
}

function drawGraph(app, graph, definitions) {
  const { position, width, height } = layout(graph.nodes, graph.edges);
  const byVersion = new Map(definitions.map((d) => [d.version, d]));
  const svg = s('svg', {
    class: 'graph', role: 'img', viewBox: `0 0 ${Math.max(width, 200)} ${Math.max(height, 80)}`,
    width: Math.max(width, 200), height: Math.max(height, 80), 'aria-label': `Upgrade graph of ${app}`,
  });
  svg.append(s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
    s('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#8c959f' }))));
  const edgeGroup = s('g', { class: 'edges' });
  for (const e of graph.edges) {
    const a = position.get(e.from); const b = position.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + NODE_W; const y1 = a.y + NODE_H / 2; const x2 = b.x; const y2 = b.y + NODE_H / 2;
    const mid = (x1 + x2) / 2;
    edgeGroup.append(s('path', {
      class: 'edge', 'data-from': e.from, 'data-to': e.to, 'marker-end': 'url(#arrow)',
      d: x2 > x1 ? `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}` : `M ${a.x + NODE_W / 2} ${a.y + NODE_H} L ${b.x + NODE_W / 2} ${b.y}`,
    }, s('title', {}, `${e.from} → ${e.to}`)));
  }
  const nodeGroup = s('g', { class: 'nodes' });
  for (const node of graph.nodes) {
    const p = position.get(node.version);
    const definition = byVersion.get(node.version);
    const kind = nodeClass(node, definition);
    const label = node.defined ? (definition && definition.halt ? 'halted' : node.rolloutStrategy) : 'no definition';
    const open = () => { if (node.defined) window.location.hash = `#/apps/${enc(app)}/software/${enc(node.version)}`; };
    nodeGroup.append(s('g', {
      class: `node ${kind}`, 'data-version': node.version, transform: `translate(${p.x} ${p.y})`,
      tabindex: node.defined ? 0 : -1, role: node.defined ? 'link' : 'img', 'aria-label': `${node.version}, ${label}`,
      onclick: open, onkeydown: (event) => { if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); open(); } },
    },
    s('rect', { width: NODE_W, height: NODE_H, rx: 8 }),
    s('text', { x: NODE_W / 2, y: 16 }, node.version),
    s('text', { x: NODE_W / 2, y: 33, class: 'sub' }, label),
    s('title', {}, definition && definition.halt ? `halted: ${definition.halt.reason}` : `${node.version} (${label})`)));
  }
  svg.append(edgeGroup, nodeGroup);
  return svg;
}

export function highlight(svg, versions) {
  const on = new Set(versions);
  for (const node of svg.querySelectorAll('.node')) node.classList.toggle('on-path', on.has(node.dataset.version));
  const hops = new Set(versions.slice(1).map((v, i) => `${versions[i]}>${v}`));
  for (const edge of svg.querySelectorAll('.edge')) edge.classList.toggle('on-path', hops.has(`${edge.dataset.from}>${edge.dataset.to}`));
}

export async function renderGraph(root, { app }) {
  const [graph, definitions] = await Promise.all([
    api('GET', `/applications/${enc(app)}/upgrade-graph`),
    api('GET', `/applications/${enc(app)}/software`),
  ]);
  graph.nodes ||= [];
  graph.edges ||= [];
  const svg = drawGraph(app, graph, definitions);
  const current = h('input', { name: 'currentVersion', autocomplete: 'off', placeholder: '1.0.0' });
  const result = h('div', { 'aria-live': 'polite' });
  const form = h('form', {
    class: 'inline', 'aria-label': 'Upgrade path',
    onsubmit: async (event) => {
      event.preventDefault();
      const from = current.value.trim();
      highlight(svg, []);
      try {
        const path = await api('GET', `/applications/${enc(app)}/upgrade-path`, { query: { from } });
        const hops = path.hops || [];
        highlight(svg, [from, ...hops]);
        replace(result, h('p', { class: 'notice', 'data-testid': 'upgrade-path' },
          hops.length ? `An endpoint on ${from} installs ${hops.join(' → ')}.` : `An endpoint on ${from} has nothing to install.`));
      } catch (error) {
        replace(result, errorBox(error));
      }
    },
  }, field('Current version', current), h('button', { type: 'submit' }, 'Show path'));
  root.append(
    h('h2', {}, `Upgrade graph · ${app}`),
    graph.nodes.length ? svg : h('p', { class: 'muted' }, 'No definitions yet.'),
    h('p', { class: 'legend' }, 'Green: general · blue: targeted · yellow: suspended · red: halted · dashed: no definition (e.g. a factory version). Choose a version to open its definition.'),
    form, result,
  );
}

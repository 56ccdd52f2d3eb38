// One version's rollout: status counts, halt state with Halt/Resume, waves (once the API
// reports them), and endpoints per version as a bar chart; refreshed every few seconds.

import { api, enc } from '../api.js';
import { badge, errorBox, field, formatTime, h, replace, strategyBadges } from '../dom.js';
import { newestFirst } from '../semver.js';
import { resumeStrategy, setStrategy, softwarePath, waveList } from './definitions.js';

const POLL_MS = 3000;
const COUNTS = [
  ['eligible', 'Eligible'], ['offered', 'Offered'], ['applied', 'Applied'], ['failed', 'Failed'],
  ['awaitingConsent', 'Awaiting consent'], ['notYetEligible', 'Not yet eligible'],
];

function distributionChart(distribution, version) {
  const rows = [...(distribution.versions || [])].sort((a, b) => newestFirst(a.version || '', b.version || ''));
  const max = Math.max(1, ...rows.map((r) => Number(r.endpointCount)));
  if (!rows.length) return h('p', { class: 'muted' }, 'No endpoint has reported yet.');
  return h('div', { class: 'bars', role: 'list', 'aria-label': 'Endpoints per version' }, rows.flatMap((row) => {
    const bar = h('div', { class: `bar${row.version === version ? ' current' : ''}` });
    bar.style.width = `${(100 * Number(row.endpointCount)) / max}%`;
    const name = row.version || 'unknown';
    return [
      h('span', { role: 'listitem', 'aria-label': `${name}: ${row.endpointCount} endpoints` }, name),
      h('div', { 'aria-hidden': 'true' }, bar),
      h('span', { class: 'num', 'aria-hidden': 'true', 'data-version-count': name }, String(row.endpointCount)),
    ];
  }));
}

// Staged rollouts (docs/rollouts.md): the API prints "waves": [] without a plan, so the section
// appears only for a definition with one. Advance opens the next wave (the only way forward with
// "advance": "manual"); Pause stops new offers and advancing until Resume.
function wavesSection(status, definition, plan) {
  const waves = status.waves || [];
  if (!waves.length) return null;
  const current = Number(status.currentWave || 0);
  const lastOpen = current >= waves.length - 1;
  const mode = ((definition.rolloutPlan || {}).advance) || 'automatic';
  const gate = status.gate || {};
  return h('section', { class: 'card', 'aria-label': 'Waves' }, h('h3', {}, 'Waves'),
    h('p', { class: 'inline' },
      h('span', { 'data-testid': 'current-wave' }, `Open: wave ${current} (of waves 0–${waves.length - 1})`),
      h('span', { class: 'muted' }, `advance ${mode}`),
      status.paused ? h('span', { class: 'badge paused', 'data-testid': 'rollout-paused' }, 'paused') : null),
    status.paused ? h('p', { class: 'notice' }, 'Paused: nothing new is offered and no wave opens until Resume.') : null,
    waveList(waves),
    h('p', { 'data-testid': 'gate', 'data-met': String(Boolean(gate.met)) },
      gate.met ? badge('gate met', 'general') : badge('gate not met', 'suspended'), ' ', gate.reason || ''),
    h('div', { class: 'actions' },
      h('button', {
        type: 'button', class: 'primary', 'data-action': 'advance', disabled: lastOpen,
        title: lastOpen ? 'The last wave is open already.' : `Open wave ${current + 1} now`, onclick: () => plan('advance'),
      }, 'Advance'),
      status.paused
        ? h('button', { type: 'button', 'data-action': 'resume', onclick: () => plan('resume') }, 'Resume')
        : h('button', { type: 'button', 'data-action': 'pause', onclick: () => plan('pause') }, 'Pause')));
}

// Every refresh rebuilds the page's body; the focused button gets its focus back (or its
// counterpart's, when Pause became Resume) so keyboard users are not thrown out every poll.
const FOCUS_AFTER = { pause: 'resume', resume: 'pause', halt: 'unhalt', unhalt: 'halt' };

function keepFocus(container, rebuild, clicked) {
  const active = document.activeElement;
  const key = clicked || (active && container.contains(active) ? active.dataset.action : null);
  rebuild();
  if (!key) return;
  const again = container.querySelector(`[data-action="${key}"]:not(:disabled)`)
    || container.querySelector(`[data-action="${FOCUS_AFTER[key]}"]`);
  if (again) again.focus();
}

export async function renderRollout(root, { app, arg }) {
  const definitions = (await api('GET', softwarePath(app))).sort((a, b) => newestFirst(a.version, b.version));
  const version = arg || (definitions[0] && definitions[0].version);
  const picker = h('select', {
    name: 'version',
    onchange: () => { window.location.hash = `#/apps/${enc(app)}/rollout/${enc(picker.value)}`; },
  }, definitions.map((d) => h('option', { value: d.version, selected: d.version === version }, d.version)));
  root.append(h('h2', {}, `Rollout · ${app}`), h('div', { class: 'inline' }, field('Version', picker)));
  if (!version) { root.append(h('p', { class: 'muted' }, 'No definitions yet.')); return null; }

  const body = h('div', { 'aria-live': 'polite' });
  const actionError = h('div');
  const updated = h('p', { class: 'muted' });
  root.append(actionError, body, updated);
  let definition = null;
  let timer = null;
  let stopped = false;
  let sequence = 0;
  let shown = 0;
  let busy = false;
  // The button an action was started from: disabling it while the call runs drops its focus.
  let clicked = null;

  async function act(strategy) {
    replace(actionError);
    try {
      definition = await setStrategy(app, definition, strategy);
      await refresh(false);
    } catch (error) { replace(actionError, errorBox(error)); }
  }

  // No body (the routes take none). One call at a time: a double click must not open two waves.
  async function plan(verb) {
    if (busy) return;
    busy = true;
    clicked = verb;
    for (const button of body.querySelectorAll('[data-action]')) button.disabled = true;
    replace(actionError);
    try {
      await api('POST', `${softwarePath(app, version)}/rollout:${verb}`);
    } catch (error) { replace(actionError, errorBox(error)); }
    busy = false;
    await refresh(false);
    clicked = null;
  }

  function draw(current, status, distribution) {
    definition = current;
    const halted = current.rolloutStrategy === 'suspended';
    keepFocus(body, () => replace(body,
      h('p', { 'data-testid': 'rollout-state' }, strategyBadges(current)),
      h('div', { class: 'actions' },
        halted
          ? h('button', { type: 'button', class: 'primary', 'data-action': 'unhalt', onclick: () => act(resumeStrategy(current)) }, 'Resume')
          : h('button', { type: 'button', class: 'danger', 'data-action': 'halt', onclick: () => act('suspended') }, 'Halt')),
      h('dl', { class: 'counts', 'aria-label': 'Rollout status' }, COUNTS.map(([key, label]) => h('div', {},
        h('dt', {}, label), h('dd', { 'data-count': key }, String(status[key] ?? 0))))),
      wavesSection(status, current, plan),
      h('h3', {}, 'Endpoints per version'),
      distributionChart(distribution, version)), clicked);
    updated.textContent = `Updated ${formatTime(new Date().toISOString())}; refreshes every ${POLL_MS / 1000} s.`;
  }

  async function refresh(schedule = true) {
    sequence += 1;
    const mine = sequence;
    try {
      const [current, status, distribution] = await Promise.all([
        api('GET', softwarePath(app, version)),
        api('GET', `${softwarePath(app, version)}/rollout`),
        api('GET', `/applications/${enc(app)}/software-distribution`),
      ]);
      // A poll that started before an action's refresh must not draw the older state over it.
      if (!stopped && mine >= shown) {
        shown = mine;
        draw(current, status, distribution);
      }
    } catch (error) {
      if (!stopped && mine >= shown) replace(body, errorBox(error));
    }
    if (schedule && !stopped) timer = setTimeout(refresh, POLL_MS);
  }

  await refresh();
  return () => { stopped = true; clearTimeout(timer); };
}

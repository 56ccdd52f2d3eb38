// One version's rollout: status counts, halt state with Halt/Resume, waves (once the API
// reports them), and endpoints per version as a bar chart; refreshed every few seconds.

import { api, enc } from '../api.js';
import { errorBox, field, formatTime, h, replace, strategyBadges } from '../dom.js';
import { newestFirst } from '../semver.js';
import { resumeStrategy, setStrategy, softwarePath, waveBar } from './definitions.js';

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

// Staged rollouts (docs/rollouts.md): drawn only when the status JSON carries a "waves" array,
// with Advance/Pause (and resuming a paused plan) through the rollout:advance|pause|resume routes.
function wavesSection(status, act) {
  if (!Array.isArray(status.waves)) return null;
  const gate = status.gate || (status.waves[status.currentWave] || {}).gate;
  return h('section', { 'aria-label': 'Waves' }, h('h3', {}, 'Waves'),
    status.waves.map((wave, i) => waveBar({ ...wave, name: `Wave ${i}${wave.percent ? ` (${wave.percent}%)` : ''}` }, i)),
    gate ? h('p', { 'data-testid': 'gate' }, `Gate: ${gate.met ? 'met' : 'not met'}${gate.reason ? `; ${gate.reason}` : ''}`) : null,
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => act('advance') }, 'Advance'),
      status.paused
        ? h('button', { type: 'button', onclick: () => act('resume') }, 'Resume waves')
        : h('button', { type: 'button', onclick: () => act('pause') }, 'Pause')));
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

  async function act(strategy) {
    replace(actionError);
    try {
      definition = await setStrategy(app, definition, strategy);
      await refresh(false);
    } catch (error) { replace(actionError, errorBox(error)); }
  }

  async function plan(verb) {
    replace(actionError);
    try {
      await api('POST', `${softwarePath(app, version)}/rollout:${verb}`, { body: {} });
      await refresh(false);
    } catch (error) { replace(actionError, errorBox(error)); }
  }

  async function refresh(schedule = true) {
    try {
      const [current, status, distribution] = await Promise.all([
        api('GET', softwarePath(app, version)),
        api('GET', `${softwarePath(app, version)}/rollout`),
        api('GET', `/applications/${enc(app)}/software-distribution`),
      ]);
      if (stopped) return;
      definition = current;
      const halted = current.rolloutStrategy === 'suspended';
      replace(body,
        h('p', { 'data-testid': 'rollout-state' }, strategyBadges(current)),
        h('div', { class: 'actions' },
          halted
            ? h('button', { type: 'button', class: 'primary', onclick: () => act(resumeStrategy(current)) }, 'Resume')
            : h('button', { type: 'button', class: 'danger', onclick: () => act('suspended') }, 'Halt')),
        h('dl', { class: 'counts', 'aria-label': 'Rollout status' }, COUNTS.map(([key, label]) => h('div', {},
          h('dt', {}, label), h('dd', { 'data-count': key }, String(status[key] ?? 0))))),
        wavesSection(status, (verb) => plan(verb)),
        h('h3', {}, 'Endpoints per version'),
        distributionChart(distribution, version));
      updated.textContent = `Updated ${formatTime(new Date().toISOString())}; refreshes every ${POLL_MS / 1000} s.`;
    } catch (error) {
      if (!stopped) replace(body, errorBox(error));
    }
    if (schedule && !stopped) timer = setTimeout(refresh, POLL_MS);
  }

  await refresh();
  return () => { stopped = true; clearTimeout(timer); };
}

// Definitions of one application (newest SemVer first) with rollout progress, the
// "New version" form, and one definition's page (edit with its etag, delete, suspend/resume).

import { api, enc } from '../api.js';
import { errorBox, field, formatTime, h, jsonBlock, jsonEditor, replace, strategyBadges } from '../dom.js';
import { newestFirst } from '../semver.js';

const STRATEGIES = ['suspended', 'targeted', 'general'];

export const softwarePath = (app, version) => `/applications/${enc(app)}/software${version ? `/${enc(version)}` : ''}`;

// Resuming goes back to targeted when the definition has filters, else to general.
export const resumeStrategy = (definition) => ((definition.filters || []).length ? 'targeted' : 'general');

export async function setStrategy(app, definition, strategy) {
  return api('PATCH', softwarePath(app, definition.version), {
    query: { updateMask: 'rolloutStrategy', etag: definition.etag },
    body: { rolloutStrategy: strategy },
  });
}

// A modal confirmation (an in-page <dialog>, reachable by keyboard; no window.confirm).
export function confirmDialog(question, action) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { 'aria-label': question },
      h('p', {}, question),
      h('form', { method: 'dialog', class: 'actions' },
        h('button', { value: 'yes', class: 'danger' }, action),
        h('button', { value: 'no', autofocus: true }, 'Cancel')));
    dialog.addEventListener('close', () => { dialog.remove(); resolve(dialog.returnValue === 'yes'); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

function progress(status) {
  if (!status) return h('span', { class: 'muted' }, '—');
  // The API prints "waves": [] for a definition without a rollout plan, so test the length.
  if (Array.isArray(status.waves) && status.waves.length) {
    return h('div', {},
      status.paused ? h('span', { class: 'badge paused', 'data-testid': 'paused-badge' }, 'paused') : null,
      waveList(status.waves, { compact: true }));
  }
  const total = Math.max(1, Number(status.eligible) + Number(status.notYetEligible || 0));
  const bar = h('div', { class: 'progress', 'aria-hidden': 'true' });
  for (const key of ['applied', 'offered', 'failed']) {
    const part = h('div', { class: key });
    part.style.width = `${(100 * Number(status[key] || 0)) / total}%`;
    bar.append(part);
  }
  return h('div', { class: 'inline' }, bar,
    h('span', {}, `offered ${status.offered} · applied ${status.applied} · failed ${status.failed}`));
}

// A wave's counts as GET .../rollout reports them (docs/rollouts.md); int64s arrive as strings.
const WAVE_COUNTS = [
  ['eligible', 'eligible'], ['offered', 'offered'], ['applied', 'applied'], ['committed', 'committed'],
  ['failed', 'failed'], ['rolledBack', 'rolled back'], ['timedOut', 'timed out'], ['unconfirmed', 'unconfirmed'],
];

// One bar per wave, numbered from 0 as the API and explain's reasons number them. The bar splits
// the wave's endpoints by what their install became; failures are failed + rolledBack + timedOut.
export function waveList(waves, { compact = false } = {}) {
  return h('ul', { class: `waves${compact ? ' compact' : ''}`, 'aria-label': 'Waves' }, waves.map((wave, index) => {
    const n = (key) => Number(wave[key] || 0);
    const failures = n('failed') + n('rolledBack') + n('timedOut');
    const settled = n('committed') + n('applied') + n('unconfirmed') + failures;
    const total = Math.max(1, n('eligible'), n('offered'));
    const bar = h('div', { class: 'progress', 'aria-hidden': 'true' });
    for (const [key, count] of [['committed', n('committed')], ['applied', n('applied')], ['unconfirmed', n('unconfirmed')],
      ['failed', failures], ['offered', Math.max(0, n('offered') - settled)]]) {
      const part = h('div', { class: key });
      part.style.width = `${(100 * count) / total}%`;
      bar.append(part);
    }
    const state = wave.state || 'pending';
    const counts = compact
      ? h('span', { class: 'muted' }, `${n('applied') + n('committed')} of ${n('eligible')} · failed ${failures}`)
      : h('span', { class: 'wave-counts' }, WAVE_COUNTS.map(([key, label]) => h('span', {},
        `${label} `, h('b', { 'data-wave-count': key }, String(n(key))))));
    return h('li', { class: `wave ${state}`, 'data-wave': String(index), 'data-state': state },
      h('span', { class: 'wave-name' }, `Wave ${index} · ${wave.percent}%`),
      h('span', { class: `badge wave-${state}`, 'data-testid': 'wave-state' }, state),
      bar,
      !compact && wave.openedAt ? h('span', { class: 'muted' }, `opened ${formatTime(wave.openedAt)}`) : null,
      counts);
  }));
}

function splitVersions(text) {
  return text.split(/[\s,]+/).map((v) => v.trim()).filter(Boolean);
}

// The form for a new definition, or (with `existing`) for replacing one with its etag.
export function definitionForm(app, { existing, versions = [], onSaved }) {
  const editing = Boolean(existing);
  const version = h('input', { name: 'version', required: true, autocomplete: 'off', readonly: editing, placeholder: '1.2.0' });
  const from = h('input', { name: 'upgradableFrom', autocomplete: 'off', placeholder: '1.0.0, 1.1.0' });
  const strategy = h('select', { name: 'rolloutStrategy' }, STRATEGIES.map((s) => h('option', { value: s }, s)));
  const filters = jsonEditor('Filters', { name: 'filters', hint: 'For targeted: [{"filterId": "beta", "rolloutDate": "2026-01-01T00:00:00Z"}]' });
  const spec = jsonEditor('Specification', { name: 'specification', hint: 'Sent to endpoints as stored, e.g. {"url": "https://...", "sha256": "..."}' });
  const meta = jsonEditor('Metadata', { name: 'metadata', hint: 'For operators; never sent to endpoints.' });
  const policy = jsonEditor('Rollout policy', { name: 'rolloutPolicy', hint: 'Optional: {"maxFailureRatio": 0.2, "minReports": 20} halts the rollout when crossed.' });
  const plan = jsonEditor('Rollout plan', {
    name: 'rolloutPlan',
    hint: 'Optional staged waves (cumulative percent, the last 100): {"waves": [{"percent": 10, "minReports": 20, "minSuccessRatio": 0.95, "soakSeconds": 3600}, {"percent": 100}], "advance": "automatic"}',
  });
  if (editing) {
    version.value = existing.version;
    from.value = (existing.upgradableFrom || []).join(', ');
    strategy.value = existing.rolloutStrategy;
    for (const [editor, value] of [[filters, existing.filters && existing.filters.length ? existing.filters : undefined],
      [spec, existing.specification], [meta, existing.metadata], [policy, existing.rolloutPolicy],
      [plan, existing.rolloutPlan]]) {
      if (value !== undefined && value !== null) editor.control.value = JSON.stringify(value, null, 2);
    }
  } else {
    strategy.value = 'general';
  }
  const picks = versions.filter((v) => !editing || v !== existing.version).slice(0, 12).map((v) => h('button', {
    type: 'button', 'aria-label': `Add ${v} to Upgradable from`,
    onclick: () => { const list = splitVersions(from.value); if (!list.includes(v)) from.value = [...list, v].join(', '); },
  }, `+ ${v}`));
  const fromField = field('Upgradable from', from, { name: 'upgradableFrom', hint: 'Versions that may upgrade to this one, comma-separated.' });
  if (picks.length) fromField.insertBefore(h('div', { class: 'inline' }, picks), fromField.violation);
  const fields = [
    field('Version', version, { name: 'version', hint: 'SemVer 2.0' }),
    fromField,
    field('Rollout strategy', strategy, { name: 'rolloutStrategy' }),
    filters, spec, meta, policy, plan,
  ];
  const errorSlot = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary' }, editing ? 'Save' : 'Create');
  const form = h('form', { class: 'card', 'aria-label': editing ? `Edit ${existing.version}` : 'New version', novalidate: true },
    h('h3', {}, editing ? `Edit ${existing.version}` : 'New version'),
    h('div', { class: 'fields' }, fields), errorSlot, h('div', { class: 'actions' }, submit));

  function clearViolations() {
    for (const f of fields) { f.violation.textContent = ''; f.control.removeAttribute('aria-invalid'); }
    replace(errorSlot);
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearViolations();
    const editors = [filters, spec, meta, policy, plan];
    if (!editors.every((e) => e.valid())) {
      replace(errorSlot, errorBox(new Error('Fix the JSON errors shown above first.')));
      return;
    }
    const body = {
      version: version.value.trim(), upgradableFrom: splitVersions(from.value), rolloutStrategy: strategy.value,
    };
    for (const [key, editor] of [['filters', filters], ['specification', spec], ['metadata', meta], ['rolloutPolicy', policy], ['rolloutPlan', plan]]) {
      const value = editor.value();
      if (value !== undefined) body[key] = value;
    }
    submit.disabled = true;
    try {
      const saved = editing
        ? await api('PUT', softwarePath(app, existing.version), { query: { etag: existing.etag }, body })
        : await api('POST', softwarePath(app), { body });
      submit.disabled = false;
      if (!editing) form.reset();
      replace(errorSlot, h('p', { class: 'notice', role: 'status' }, `${editing ? 'Saved' : 'Created'} ${saved.version}.`));
      if (onSaved) onSaved(saved);
    } catch (error) {
      submit.disabled = error.status === 403;
      const unplaced = [];
      for (const violation of error.violations || []) {
        const path = String(violation.field).replace(/^software\./, '');
        const head = path.split(/[.[]/)[0];
        const target = fields.find((f) => f.dataset.field === head);
        if (target) {
          // A nested path (rolloutPlan.waves[1].percent) says which part of the field is wrong.
          const text = path === head ? violation.description : `${path}: ${violation.description}`;
          target.violation.textContent = [target.violation.textContent, text].filter(Boolean).join('; ');
          target.control.setAttribute('aria-invalid', 'true');
        } else unplaced.push(violation);
      }
      replace(errorSlot, errorBox(Object.assign(error, { violations: unplaced })));
    }
  });
  return form;
}

async function loadStatuses(app, definitions) {
  // In parallel, not one after the other: one request per row, all at once.
  const statuses = await Promise.all(definitions.map((d) => api('GET', `${softwarePath(app, d.version)}/rollout`).catch(() => null)));
  return new Map(definitions.map((d, i) => [d.version, statuses[i]]));
}

// The application's settings: whether endpoints must consent before they get an update.
async function settingsForm(app) {
  const path = `/applications/${enc(app)}/settings`;
  const settings = await api('GET', path);
  const box = h('input', { type: 'checkbox', name: 'consentRequired', checked: Boolean(settings.consentRequired) });
  const status = h('span', { class: 'muted', role: 'status' });
  box.addEventListener('change', async () => {
    box.disabled = true;
    try {
      const saved = await api('PUT', path, { body: { consentRequired: box.checked } });
      box.checked = Boolean(saved.consentRequired);
      status.textContent = saved.consentRequired ? 'Endpoints need consent.' : 'No consent needed.';
    } catch (error) {
      box.checked = !box.checked;
      status.replaceChildren(errorBox(error));
    }
    box.disabled = false;
  });
  return h('div', { class: 'inline' }, h('label', {}, box, ' Consent required'), status);
}

export async function renderDefinitions(root, { app }) {
  const tableSlot = h('div', { 'aria-live': 'polite' });
  const formSlot = h('div');
  const settingsSlot = h('div');
  root.append(h('h2', {}, `Definitions · ${app}`), settingsSlot, tableSlot, formSlot);
  settingsForm(app).then((form) => replace(settingsSlot, form), (error) => replace(settingsSlot, errorBox(error)));

  async function load() {
    const definitions = (await api('GET', softwarePath(app))).sort((a, b) => newestFirst(a.version, b.version));
    const statuses = await loadStatuses(app, definitions);
    const rows = definitions.map((d) => h('tr', { 'data-version': d.version },
      h('th', { scope: 'row' }, h('a', { href: `#/apps/${enc(app)}/software/${enc(d.version)}` }, d.version)),
      h('td', {}, strategyBadges(d)),
      h('td', {}, (d.upgradableFrom || []).join(', ') || h('span', { class: 'muted' }, '—')),
      h('td', {}, progress(statuses.get(d.version))),
      h('td', {}, formatTime(d.updatedAt)),
      h('td', {}, h('div', { class: 'inline' },
        h('a', { href: `#/apps/${enc(app)}/rollout/${enc(d.version)}` }, 'Rollout'),
        d.rolloutStrategy === 'suspended'
          ? h('button', { type: 'button', 'aria-label': `Resume ${d.version}`, onclick: () => act(() => setStrategy(app, d, resumeStrategy(d))) }, 'Resume')
          : h('button', { type: 'button', 'aria-label': `Suspend ${d.version}`, onclick: () => act(() => setStrategy(app, d, 'suspended')) }, 'Suspend'),
        h('button', {
          type: 'button', class: 'danger', 'aria-label': `Delete ${d.version}`,
          onclick: async () => { if (await confirmDialog(`Delete definition ${d.version}?`, 'Delete')) act(() => api('DELETE', softwarePath(app, d.version), { query: { etag: d.etag } })); },
        }, 'Delete')))));
    replace(tableSlot, h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Definitions' },
      h('thead', {}, h('tr', {}, ['Version', 'Strategy', 'Upgradable from', 'Rollout', 'Updated', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No definitions yet: create the first version below.'))))));
    return definitions;
  }

  async function act(action) {
    try { await action(); await load(); } catch (error) { tableSlot.prepend(errorBox(error)); }
  }

  let definitions = [];
  try { definitions = await load(); } catch (error) { replace(tableSlot, errorBox(error)); }
  replace(formSlot, definitionForm(app, { versions: definitions.map((d) => d.version), onSaved: () => load().catch((error) => replace(tableSlot, errorBox(error))) }));
}

export async function renderDefinition(root, { app, arg: version }) {
  const definition = await api('GET', softwarePath(app, version));
  const errorSlot = h('div');
  const list = await api('GET', softwarePath(app)).catch(() => []);
  root.append(
    h('h2', {}, `Definition ${definition.version} · ${app}`),
    h('p', {}, strategyBadges(definition)),
    h('div', { class: 'inline' },
      h('a', { href: `#/apps/${enc(app)}/rollout/${enc(version)}` }, 'Rollout'),
      h('a', { href: `#/apps/${enc(app)}/graph` }, 'Upgrade graph'),
      h('button', {
        type: 'button', class: 'danger',
        onclick: async () => {
          if (!(await confirmDialog(`Delete definition ${version}?`, 'Delete'))) return;
          try {
            await api('DELETE', softwarePath(app, version), { query: { etag: definition.etag } });
            window.location.hash = `#/apps/${enc(app)}/definitions`;
          } catch (error) { replace(errorSlot, errorBox(error)); }
        },
      }, 'Delete')),
    errorSlot,
    h('p', { class: 'muted' }, `Created ${formatTime(definition.createdAt)} · updated ${formatTime(definition.updatedAt)} · etag ${definition.etag}`),
    definitionForm(app, {
      existing: definition,
      versions: list.map((d) => d.version).sort(newestFirst),
      onSaved: (saved) => { Object.assign(definition, saved); },
    }),
    h('details', {}, h('summary', {}, 'As JSON'), jsonBlock(definition)),
  );
}

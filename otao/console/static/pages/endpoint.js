// Endpoints: the known endpoints (paged) and, for one endpoint, what it runs, what it gets next
// and why (every definition's verdict), its consents (grant/revoke) and failures (clear).

import { api, enc } from '../api.js';
import { errorBox, field, formatTime, h, pagedTable, replace } from '../dom.js';

const PAGE_SIZE = 25;

function report(lastReport) {
  if (!lastReport || !lastReport.configId) return '—';
  const outcome = Number(lastReport.statusCode) === 200 ? 'applied' : `failed (${lastReport.statusCode} ${lastReport.reasonPhrase || ''})`;
  return `${lastReport.configId} ${outcome} at ${formatTime(lastReport.reportedAt)}`;
}

async function renderOne(slot, app, id) {
  const base = `/applications/${enc(app)}/endpoints/${enc(id)}`;
  const [software, explanation, consents] = await Promise.all([
    api('GET', `${base}/software`),
    api('GET', `${base}/software:explain`),
    api('GET', `${base}/consents`),
  ]);
  const errorSlot = h('div', { 'aria-live': 'polite' });
  const reload = () => renderOne(slot, app, id).catch((error) => replace(errorSlot, errorBox(error)));
  const act = async (action) => {
    try { await action(); await reload(); } catch (error) { replace(errorSlot, errorBox(error)); }
  };
  const failed = software.failedVersions || [];
  const consentVersion = h('input', { name: 'consentVersion', autocomplete: 'off', placeholder: '1.2.0' });
  const allVersions = h('input', { type: 'checkbox', name: 'allVersions' });
  replace(slot,
    h('h3', {}, `Endpoint ${id}`),
    errorSlot,
    h('dl', { class: 'counts', 'aria-label': 'Endpoint state' },
      h('div', {}, h('dt', {}, 'Current version'), h('dd', { 'data-testid': 'current-version' }, software.currentVersion || 'unknown')),
      h('div', {}, h('dt', {}, 'Last report'), h('dd', {}, report(software.lastReport))),
      h('div', {}, h('dt', {}, 'Next update'), h('dd', { 'data-testid': 'next-update' }, software.nextUpdate ? software.nextUpdate.version : 'none'))),
    h('h3', {}, 'Why: every definition\'s verdict'),
    h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Verdicts' },
      h('thead', {}, h('tr', {}, ['Version', 'Verdict', 'Reason'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, (explanation.verdicts || []).length
        ? explanation.verdicts.map((v) => h('tr', { 'data-version': v.version, class: v.verdict === 'selected' ? 'selected' : '' },
          h('td', {}, v.version), h('td', {}, v.verdict), h('td', {}, v.reason)))
        : h('tr', {}, h('td', { colspan: 3, class: 'muted' }, 'No definitions.'))))),
    h('h3', {}, 'Failures'),
    failed.length
      ? h('ul', { 'aria-label': 'Failed versions' }, failed.map((v) => h('li', {}, `${v} `,
        h('button', { type: 'button', 'aria-label': `Clear failure of ${v}`, onclick: () => act(() => api('DELETE', `${base}/failures/${enc(v)}`)) }, 'Clear'))))
      : h('p', { class: 'muted' }, 'No failed versions.'),
    h('h3', {}, 'Consents'),
    (consents.consents || []).length
      ? h('ul', { 'aria-label': 'Consents' }, consents.consents.map((c) => {
        const name = c.allVersions ? 'all versions' : c.version;
        return h('li', {}, `${name} (granted ${formatTime(c.grantedAt)}) `,
          h('button', { type: 'button', 'aria-label': `Revoke consent for ${name}`, onclick: () => act(() => api('DELETE', `${base}/consents/${c.allVersions ? 'all' : enc(c.version)}`)) }, 'Revoke'));
      }))
      : h('p', { class: 'muted' }, 'No consents.'),
    h('form', {
      class: 'inline', 'aria-label': 'Grant consent',
      onsubmit: (event) => {
        event.preventDefault();
        const body = allVersions.checked ? { allVersions: true } : { version: consentVersion.value.trim() };
        act(() => api('POST', `${base}/consents`, { body }));
      },
    }, field('Consent version', consentVersion), field('All versions', allVersions), h('button', { type: 'submit' }, 'Grant')),
  );
}

export async function renderEndpoint(root, { app, arg }) {
  const input = h('input', { name: 'endpointId', autocomplete: 'off', required: true, value: arg || '' });
  const result = h('div');
  const form = h('form', {
    class: 'inline', role: 'search', 'aria-label': 'Find an endpoint',
    onsubmit: (event) => {
      event.preventDefault();
      window.location.hash = `#/apps/${enc(app)}/endpoints/${enc(input.value.trim())}`;
    },
  }, field('Endpoint ID', input), h('button', { type: 'submit', class: 'primary' }, 'Look up'));
  root.append(h('h2', {}, `Endpoints · ${app}`), form, result);
  if (arg) {
    try { await renderOne(result, app, arg); } catch (error) { replace(result, errorBox(error)); }
  }
  root.append(h('h3', {}, 'Known endpoints'), pagedTable({
    caption: `Endpoints of ${app}`,
    empty: 'No endpoint has polled yet.',
    columns: [
      { title: 'Endpoint ID', cell: (e) => h('a', { href: `#/apps/${enc(app)}/endpoints/${enc(e.endpointId)}` }, e.endpointId) },
      { title: 'Current version', cell: (e) => e.currentVersion || 'unknown' },
      { title: 'Last report', cell: (e) => report(e.lastReport) },
      { title: 'Updated', cell: (e) => formatTime(e.updatedAt) },
    ],
    fetchPage: async (token) => {
      const page = await api('GET', `/applications/${enc(app)}/endpoints`, { query: { pageSize: PAGE_SIZE, pageToken: token } });
      return { rows: page.endpoints || [], next: page.nextPageToken };
    },
  }));
}

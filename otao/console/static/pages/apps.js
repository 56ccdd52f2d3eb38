// Applications: the ones the caller may see (GET /api/v1/applications: the caller's tenant's
// applications it may read), by name, paged with the API's page tokens. An application can also
// be opened by name; its own pages then show the API's answer (404/403 with its message).

import { api, enc } from '../api.js';
import { field, h, pagedTable } from '../dom.js';

const PAGE_SIZE = 50;

export function renderApps(root) {
  const name = h('input', { name: 'application', required: true, autocomplete: 'off', pattern: '[^/#?\\s]+' });
  const form = h('form', {
    class: 'card inline', 'aria-label': 'Open an application',
    onsubmit: (event) => {
      event.preventDefault();
      window.location.hash = `#/apps/${enc(name.value.trim())}/definitions`;
    },
  }, field('Application name', name), h('button', { type: 'submit', class: 'primary' }, 'Open'));
  const table = pagedTable({
    caption: 'Applications',
    empty: 'You may read no application of your tenant.',
    columns: [
      { title: 'Name', cell: (a) => h('a', { href: `#/apps/${enc(a.name)}/definitions` }, a.name) },
      { title: 'App versions', cell: (a) => (a.appVersions || []).join(', ') },
      { title: 'Consent required', cell: (a) => (a.consentRequired ? 'yes' : 'no') },
      { title: 'Graph', cell: (a) => h('a', { href: `#/apps/${enc(a.name)}/graph`, 'aria-label': `Upgrade graph of ${a.name}` }, 'graph') },
    ],
    fetchPage: async (token) => {
      const page = await api('GET', '/applications', { query: { pageSize: PAGE_SIZE, pageToken: token } });
      return { rows: page.applications || [], next: page.nextPageToken };
    },
  });
  root.append(h('h2', {}, 'Applications'), table, form);
}

// Audit: who changed what, newest first, paged with the API's page tokens.

import { api, enc } from '../api.js';
import { formatTime, h, jsonBlock, pagedTable } from '../dom.js';

const PAGE_SIZE = 25;

export function renderAudit(root, { app }) {
  const table = pagedTable({
    caption: `Audit log of ${app}, newest first`,
    empty: 'No changes recorded yet.',
    columns: [
      { title: 'Time', cell: (e) => formatTime(e.time) },
      { title: 'Actor', cell: (e) => e.actor },
      { title: 'Action', cell: (e) => e.action },
      { title: 'Resource', cell: (e) => e.resource },
      { title: 'Details', cell: (e) => (e.details && Object.keys(e.details).length ? jsonBlock(e.details) : '') },
    ],
    fetchPage: async (token) => {
      const page = await api('GET', `/applications/${enc(app)}/audit`, { query: { pageSize: PAGE_SIZE, pageToken: token } });
      return { rows: page.entries || [], next: page.nextPageToken };
    },
  });
  root.append(h('h2', {}, `Audit · ${app}`), table);
}

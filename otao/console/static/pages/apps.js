// Applications: the ones this console is configured with (config.json) plus any the operator
// names. otao has no "list applications" call yet; the application's own pages then show
// whether the caller may see it (404/403 with the API's message).

import { field, h } from '../dom.js';

export function renderApps(root, { config }) {
  const apps = [...new Set(config.applications || [])];
  const name = h('input', { name: 'application', required: true, autocomplete: 'off', pattern: '[^/#?\\s]+' });
  const form = h('form', {
    class: 'card inline', 'aria-label': 'Open an application',
    onsubmit: (event) => {
      event.preventDefault();
      window.location.hash = `#/apps/${encodeURIComponent(name.value.trim())}/definitions`;
    },
  }, field('Application name', name), h('button', { type: 'submit', class: 'primary' }, 'Open'));
  root.append(
    h('h2', {}, 'Applications'),
    apps.length
      ? h('ul', { 'aria-label': 'Applications' }, apps.map((app) => h('li', {},
        h('a', { href: `#/apps/${encodeURIComponent(app)}/definitions` }, app), ' ',
        h('a', { href: `#/apps/${encodeURIComponent(app)}/graph`, 'aria-label': `Upgrade graph of ${app}` }, '(graph)'))))
      : h('p', { class: 'muted' }, 'No application is configured for this console; open one by name.'),
    form,
  );
}

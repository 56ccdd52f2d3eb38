// The console's shell: configuration, sign-in state, connection state, navigation and routing.
//
// Routes live in the hash (#/apps/<app>/<page>[/<arg>]) so Envoy serves one document,
// /console/, for every page, and the OIDC redirect URI is that same /console/.

import { onConnection } from './api.js';
import { completeSignIn, onAuthChange, signOut, snapshot, startSignIn } from './auth.js';
import { errorBox, field, h, replace } from './dom.js';
import { renderApps } from './pages/apps.js';
import { renderAudit } from './pages/audit.js';
import { renderDefinitions, renderDefinition } from './pages/definitions.js';
import { renderEndpoint } from './pages/endpoint.js';
import { renderGraph } from './pages/graph.js';
import { renderRollout } from './pages/rollout.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const connectionEl = document.getElementById('connection');
const sessionEl = document.getElementById('session');
let config = { clientId: 'otao-console', keycloakUrl: '' };
let cleanup = null;

const PAGES = {
  definitions: { title: 'Definitions', render: renderDefinitions },
  software: { title: 'Definition', render: renderDefinition, hidden: true },
  graph: { title: 'Upgrade graph', render: renderGraph },
  rollout: { title: 'Rollout', render: renderRollout },
  endpoints: { title: 'Endpoints', render: renderEndpoint },
  audit: { title: 'Audit', render: renderAudit },
};

export function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== 'apps' || !parts[1]) return { page: 'apps' };
  return { page: parts[2] || 'definitions', app: parts[1], arg: parts[3] || '' };
}

function renderNav(route) {
  const links = [h('a', { href: '#/', 'aria-current': route.page === 'apps' ? 'page' : null }, 'Applications')];
  if (route.app) {
    for (const [key, page] of Object.entries(PAGES)) {
      if (page.hidden) continue;
      links.push(h('a', {
        href: `#/apps/${encodeURIComponent(route.app)}/${key}`,
        'aria-current': route.page === key ? 'page' : null,
      }, page.title));
    }
  }
  replace(nav, links);
}

function renderSession() {
  const auth = snapshot();
  if (auth.signedIn) {
    replace(sessionEl, h('span', {}, `Signed in as ${auth.user}`), h('button', { type: 'button', onclick: signOut }, 'Sign out'));
  } else {
    replace(sessionEl);
  }
}

// Shown when the API answered 401: pick the tenant's issuer and sign in there.
function renderSignIn(reason) {
  if (cleanup) { cleanup(); cleanup = null; }
  const issuers = config.issuers || {};
  const base = (config.keycloakUrl || '').replace(/\/+$/, '');
  const tenant = h('input', { name: 'tenant', autocomplete: 'organization', list: 'known-tenants' });
  const issuer = h('input', { name: 'issuer', type: 'url', required: true, value: base ? `${base}/realms/` : '' });
  const clientId = h('input', { name: 'clientId', required: true, value: config.clientId || 'otao-console' });
  let issuerEdited = false;
  issuer.addEventListener('input', () => { issuerEdited = true; });
  tenant.addEventListener('input', () => {
    if (issuerEdited) return;
    issuer.value = issuers[tenant.value] || (base ? `${base}/realms/${tenant.value}` : issuer.value);
  });
  const errorSlot = h('div');
  const form = h('form', {
    class: 'card', 'aria-label': 'Sign in',
    onsubmit: async (event) => {
      event.preventDefault();
      try { await startSignIn(issuer.value.trim(), clientId.value.trim()); } catch (error) { replace(errorSlot, errorBox(error)); }
    },
  },
  h('div', { class: 'fields' },
    field('Tenant', tenant, { hint: 'Your tenant (its Keycloak realm); fills in the issuer.' }),
    field('Issuer', issuer, { hint: 'The tenant\'s OpenID Connect issuer URL.' }),
    field('Client ID', clientId)),
  h('datalist', { id: 'known-tenants' }, Object.keys(issuers).map((name) => h('option', { value: name }))),
  errorSlot,
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
  replace(main, h('h2', {}, 'Sign in'), h('p', { class: 'notice', role: 'alert' }, reason || 'otao needs you to sign in.'), form);
}

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  const auth = snapshot();
  if (auth.required && !auth.signedIn) { renderSignIn(auth.required); return; }
  const current = parseRoute(window.location.hash);
  renderNav(current);
  const page = current.page === 'apps' ? { title: 'Applications', render: renderApps } : PAGES[current.page];
  if (!page) { replace(main, h('h2', {}, 'Not found'), h('p', {}, 'No such page. '), h('a', { href: '#/' }, 'Applications')); return; }
  document.title = `${page.title}${current.app ? ` · ${current.app}` : ''} · otao console`;
  const root = h('div');
  replace(main, root);
  // aria-busy tells assistive technology (and the browser tests) when a page has its data.
  main.setAttribute('aria-busy', 'true');
  try {
    cleanup = (await page.render(root, { ...current, config })) || null;
  } catch (error) {
    replace(root, h('h2', {}, page.title), errorBox(error));
  }
  main.setAttribute('aria-busy', 'false');
}

onConnection((state, text) => {
  connectionEl.textContent = text;
  connectionEl.className = state === 'down' ? 'down' : '';
});

onAuthChange((auth) => {
  renderSession();
  if (auth.required && !auth.signedIn) renderSignIn(auth.required);
});

async function start() {
  try {
    const response = await fetch('/console/config.json');
    if (response.ok) config = { ...config, ...(await response.json()) };
  } catch { /* the defaults do; the API calls will show what is wrong */ }
  try {
    const returnTo = await completeSignIn();
    if (returnTo && returnTo !== window.location.hash) window.location.hash = returnTo;
  } catch (error) {
    replace(main, h('h2', {}, 'Sign in'), errorBox(error));
    return;
  }
  renderSession();
  window.addEventListener('hashchange', route);
  await route();
}

start();

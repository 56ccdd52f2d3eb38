// Sign-in with OpenID Connect authorization code + PKCE (RFC 7636) against the tenant's issuer.
//
// Tokens live in this module's memory only (never localStorage/sessionStorage/cookies): a reload
// signs in again, which Keycloak's own session makes a redirect without a password prompt. Only
// the PKCE verifier and state cross the redirect, in sessionStorage, and are deleted on return.

const LOGIN_KEY = 'otao-console-login';
const state = {
  accessToken: null, refreshToken: null, tokenEndpoint: null, endSession: null,
  clientId: null, issuer: null, user: null, timer: null, required: null,
};
const listeners = new Set();

export function onAuthChange(listener) { listeners.add(listener); }
function changed() { for (const listener of listeners) listener(snapshot()); }
export function snapshot() {
  return { signedIn: Boolean(state.accessToken), user: state.user, issuer: state.issuer, required: state.required };
}
export function authorization() { return state.accessToken ? `Bearer ${state.accessToken}` : null; }

// The API answered 401: the token is missing, expired or not accepted. Drop it and ask for a sign-in.
export function requireSignIn(reason) {
  clearTokens();
  state.required = reason;
  changed();
}

function clearTokens() {
  clearTimeout(state.timer);
  Object.assign(state, { accessToken: null, refreshToken: null, user: null, timer: null });
}

function b64url(bytes) {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch { return {}; }
}

function redirectUri() { return `${window.location.origin}/console/`; }

async function discover(issuer) {
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  let response;
  try { response = await fetch(url); } catch { throw new Error(`cannot reach the issuer ${issuer}`); }
  if (!response.ok) throw new Error(`the issuer ${issuer} answered ${response.status} to OpenID discovery`);
  return response.json();
}

export async function startSignIn(issuer, clientId) {
  if (!window.crypto || !window.crypto.subtle) {
    throw new Error('Sign-in needs a secure context (https, or http://127.0.0.1 / localhost).');
  }
  const meta = await discover(issuer);
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const nonce = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem(LOGIN_KEY, JSON.stringify({
    verifier, nonce, issuer, clientId, tokenEndpoint: meta.token_endpoint,
    endSession: meta.end_session_endpoint || null, returnTo: window.location.hash || '#/',
  }));
  const url = new URL(meta.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code', client_id: clientId, redirect_uri: redirectUri(), scope: 'openid',
    state: nonce, code_challenge: b64url(new Uint8Array(digest)), code_challenge_method: 'S256',
  }).toString();
  window.location.assign(url.toString());
}

async function tokenRequest(form) {
  let response;
  try {
    response = await fetch(state.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  } catch { throw new Error('cannot reach the token endpoint'); }
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.access_token) {
    throw new Error(`sign-in failed: ${body.error_description || body.error || response.status}`);
  }
  return body;
}

function accept(body) {
  state.accessToken = body.access_token;
  state.refreshToken = body.refresh_token || state.refreshToken;
  const claims = claimsOf(body.access_token);
  state.user = claims.preferred_username || claims.sub || 'signed in';
  state.required = null;
  clearTimeout(state.timer);
  const lifetime = Number(body.expires_in) || 300;
  // Refresh ahead of expiry so no call goes out with a token about to lapse.
  if (state.refreshToken) state.timer = setTimeout(refresh, Math.max(5, lifetime - 30) * 1000);
  changed();
}

async function refresh() {
  try {
    accept(await tokenRequest({ grant_type: 'refresh_token', refresh_token: state.refreshToken, client_id: state.clientId }));
  } catch {
    requireSignIn('Your session expired; sign in again.');
  }
}

// Called once at start: finishes a sign-in when the issuer redirected back with ?code=&state=.
// Returns the hash route to show, or null.
export async function completeSignIn() {
  // Test hook (documented in docs/console.md): a token put on window before the console starts.
  if (typeof window.__OTAO_CONSOLE_TOKEN__ === 'string') {
    accept({ access_token: window.__OTAO_CONSOLE_TOKEN__ });
    return null;
  }
  const params = new URLSearchParams(window.location.search);
  if (!params.has('code') && !params.has('error')) return null;
  const saved = JSON.parse(sessionStorage.getItem(LOGIN_KEY) || 'null');
  sessionStorage.removeItem(LOGIN_KEY);
  window.history.replaceState(null, '', `/console/${saved ? saved.returnTo : ''}`);
  if (params.has('error')) throw new Error(`sign-in refused: ${params.get('error_description') || params.get('error')}`);
  if (!saved || saved.nonce !== params.get('state')) throw new Error('sign-in answer does not match a sign-in this tab started; try again');
  Object.assign(state, { tokenEndpoint: saved.tokenEndpoint, endSession: saved.endSession, clientId: saved.clientId, issuer: saved.issuer });
  accept(await tokenRequest({
    grant_type: 'authorization_code', code: params.get('code'), redirect_uri: redirectUri(),
    client_id: saved.clientId, code_verifier: saved.verifier,
  }));
  return saved.returnTo;
}

export function signOut() {
  const { endSession, clientId } = state;
  clearTokens();
  state.required = 'Signed out.';
  changed();
  if (endSession) {
    const url = new URL(endSession);
    url.search = new URLSearchParams({ client_id: clientId, post_logout_redirect_uri: redirectUri() }).toString();
    window.location.assign(url.toString());
  }
}

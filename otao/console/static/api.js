// Every call to otao's REST API (/api/v1, same origin): Bearer token, error JSON, retries.
//
// Errors keep the API's own message (google.rpc.Status JSON) and its BadRequest field
// violations. 502/503 and network failures (otao or Envoy restarting) are retried with a
// visible "reconnecting" state; nothing the API refuses (4xx) is retried.

import { authorization, requireSignIn } from './auth.js';

const BAD_REQUEST = 'type.googleapis.com/google.rpc.BadRequest';
const RETRY_DELAYS_MS = [250, 500, 1000, 2000];
const MAX_RETRY_MS = 60000;

export class ApiError extends Error {
  constructor(status, body, hint) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.hint = hint || '';
    this.violations = [];
    for (const detail of (body && body.details) || []) {
      if (detail['@type'] === BAD_REQUEST) this.violations.push(...(detail.fieldViolations || []));
    }
  }
}

const connectionListeners = new Set();
export function onConnection(listener) { connectionListeners.add(listener); }
function connection(state, text) { for (const listener of connectionListeners) listener(state, text); }

// The Kaa permission a call needs (the same table as otao/rpc/access.py), to explain a 403.
export function scopeFor(method, path) {
  if (method === 'GET') return 'application:software:read';
  if (method === 'DELETE') return 'application:software:delete';
  return 'application:software:update';
}

function applicationOf(path) {
  const match = /^\/applications\/([^/]+)/.exec(path);
  return match ? decodeURIComponent(match[1]) : '';
}

export const enc = encodeURIComponent;

export async function api(method, path, { query, body } = {}) {
  const url = new URL(`/api/v1${path}`, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  const started = Date.now();
  for (let attempt = 0; ; attempt += 1) {
    const headers = { accept: 'application/json' };
    const bearer = authorization();
    if (bearer) headers.authorization = bearer;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response = null;
    try {
      response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      response = null;
    }
    if (response === null || response.status === 502 || response.status === 503) {
      if (Date.now() - started > MAX_RETRY_MS) {
        connection('down', 'otao is unreachable');
        const status = response ? response.status : 0;
        throw new ApiError(status, response ? await response.json().catch(() => null) : { message: 'otao is unreachable (network error)' });
      }
      connection('reconnecting', 'Reconnecting to otao…');
      await new Promise((resolve) => { setTimeout(resolve, RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)]); });
      continue;
    }
    connection('ok', '');
    const text = await response.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = { message: text.slice(0, 200) }; }
    if (response.ok) return parsed;
    if (response.status === 401) {
      requireSignIn(bearer ? 'otao did not accept your session; sign in again.' : 'otao needs you to sign in.');
      throw new ApiError(401, parsed, 'Sign in to continue.');
    }
    if (response.status === 403) {
      const app = applicationOf(path);
      throw new ApiError(403, parsed,
        `This needs the permission ${scopeFor(method, path)} on resource application-${app}; ask your Keycloak administrator to grant it.`);
    }
    // ABORTED (10) is an etag mismatch; ALREADY_EXISTS (6) keeps the API's message alone.
    if (response.status === 409 && parsed && parsed.code === 10) {
      throw new ApiError(409, parsed, 'Someone changed it since you loaded it: reload to see the current state, then apply your change again.');
    }
    throw new ApiError(response.status, parsed);
  }
}

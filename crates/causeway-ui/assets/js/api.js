// Talking to the server: the UI's JSON under /ui/api/ and the MLflow API, with the token the
// person signed in with (kept for the tab in sessionStorage, or in localStorage when they asked
// to be remembered; sent as a bearer header, never as a cookie, so no other site can use it).

const KEY = 'causeway.token';

/** The token in use, if any. */
export function token() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || '';
}

/** Keeps `value` for this tab (and across visits with `remember`). */
export function setToken(value, remember) {
  sessionStorage.setItem(KEY, value);
  if (remember) localStorage.setItem(KEY, value); else localStorage.removeItem(KEY);
}

/** Forgets the token. */
export function signOut() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

/** An answer that was not 2xx: its status and the server's sentence. */
export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}) {
  const value = token();
  return value ? {...extra, Authorization: `Bearer ${value}`} : extra;
}

async function decode(response) {
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    const message = (body && (body.message || body.error)) || text || response.statusText;
    throw new ApiError(response.status, message, body && (body.error_code || body.code));
  }
  return body;
}

/** GET or POST JSON at `path`. */
export async function request(path, {method = 'GET', body} = {}) {
  const init = {method, headers: headers(body === undefined ? {} : {'Content-Type': 'application/json'})};
  if (body !== undefined) init.body = JSON.stringify(body);
  return decode(await fetch(path, init));
}

/** The UI's own API: `ui('overview')`. */
export function ui(path, options) {
  return request(`/ui/api/${path}`, options);
}

/** The MLflow API: `mlflow('runs/search', {experiment_ids: ['0']})` posts; no body gets. */
export function mlflow(path, body) {
  return request(`/api/2.0/mlflow/${path}`, body === undefined ? {} : {method: 'POST', body});
}

/** An artifact's bytes as a Blob (with the token, which a plain link could not send). */
export async function artifact(runId, path) {
  const query = new URLSearchParams({run_id: runId, path});
  const response = await fetch(`/get-artifact?${query}`, {headers: headers()});
  if (!response.ok) throw new ApiError(response.status, `cannot read ${path}: ${response.statusText}`);
  return response.blob();
}

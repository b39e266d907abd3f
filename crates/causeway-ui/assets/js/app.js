// The UI's shell: who is signed in, the navigation, the router (every page is a URL, so links can
// be shared), the error banner and the timers of live pages.

import {ApiError, setToken, signOut, token, ui} from './api.js';
import {el, link, replace} from './dom.js';

const PAGES = [
  ['/', 'overview', () => import('./pages/overview.js')],
  ['/ui/experiments', 'experiments', () => import('./pages/experiments.js')],
  ['/ui/experiments/:id', 'runs', () => import('./pages/runs.js')],
  ['/ui/runs/:id', 'run', () => import('./pages/run.js')],
  ['/ui/compare', 'compare', () => import('./pages/compare.js')],
  ['/ui/models', 'models', () => import('./pages/models.js')],
  ['/ui/models/:model', 'model', () => import('./pages/models.js')],
  ['/ui/models/:model/versions/:version', 'version', () => import('./pages/models.js')],
  ['/ui/loop', 'loop-list', () => import('./pages/loop.js')],
  ['/ui/loop/:model', 'loop', () => import('./pages/loop.js')],
  ['/ui/monitoring', 'monitoring-list', () => import('./pages/monitoring.js')],
  ['/ui/monitoring/:model', 'monitoring', () => import('./pages/monitoring.js')],
  ['/ui/datasets', 'datasets', () => import('./pages/datasets.js')],
  ['/ui/datasets/:name/:version', 'dataset', () => import('./pages/datasets.js')],
  ['/ui/events', 'events', () => import('./pages/events.js')],
];

const NAV = [
  ['/', 'Overview'],
  ['/ui/experiments', 'Experiments'],
  ['/ui/models', 'Models'],
  ['/ui/loop', 'Loop'],
  ['/ui/monitoring', 'Monitoring'],
  ['/ui/datasets', 'Datasets'],
  ['/ui/events', 'Events'],
];

const main = document.getElementById('main');
const banner = document.getElementById('banner');
let me = null;
let timers = [];
let generation = 0;

function match(pattern, path) {
  const want = pattern.split('/');
  const have = path.replace(/\/+$/, '').split('/');
  if (pattern === '/') return path === '/' || path === '/ui' || path === '/ui/' ? {} : null;
  if (want.length !== have.length) return null;
  const params = {};
  for (let index = 0; index < want.length; index += 1) {
    if (want[index].startsWith(':')) params[want[index].slice(1)] = decodeURIComponent(have[index]);
    else if (want[index] !== have[index]) return null;
  }
  return params;
}

/** Shows `message` in the banner (or hides it with null). */
export function showError(message) {
  if (!message) { banner.hidden = true; banner.replaceChildren(); return; }
  replace(banner, el('span', {}, message), el('button', {class: 'link', onclick: () => showError(null)}, 'dismiss'));
  banner.hidden = false;
}

function stopTimers() {
  timers.forEach((timer) => clearInterval(timer));
  timers = [];
}

/** Goes to `url` inside the UI. */
export function navigate(url, {replace: replacing = false} = {}) {
  if (replacing) history.replaceState(history.state, '', url); else history.pushState(null, '', url);
  route();
}

function drawNav() {
  const nav = document.getElementById('nav');
  const path = location.pathname;
  replace(nav, NAV.map(([href, label]) => {
    const current = href === '/' ? match('/', path) !== null : path === href || path.startsWith(`${href}/`)
      || (href === '/ui/experiments' && (path.startsWith('/ui/runs/') || path.startsWith('/ui/compare')));
    return el('a', {href, class: current ? 'current' : null, 'aria-current': current ? 'page' : null}, label);
  }));
  const who = document.getElementById('who');
  if (!me) { who.replaceChildren(); return; }
  replace(who, el('span', {class: 'muted'}, `${me.name} · ${me.scope}`),
    token() ? el('button', {class: 'link', 'data-action': 'sign-out', onclick: () => { signOut(); me = null; stopTimers(); drawLogin(''); }}, 'sign out') : null);
}

async function route() {
  generation += 1;
  const mine = generation;
  stopTimers();
  showError(null);
  drawNav();
  const path = location.pathname;
  const found = PAGES.map(([pattern, name, load]) => ({params: match(pattern, path), name, load})).find((page) => page.params);
  delete main.dataset.ready;
  if (!found) {
    replace(main, el('h1', {}, 'Not found'), el('p', {}, `No page at ${path}. `, link('/', 'Go to the overview.')));
    main.dataset.ready = 'not-found';
    return;
  }
  const context = {
    main,
    me,
    name: found.name,
    params: found.params,
    query: new URLSearchParams(location.search),
    current: () => mine === generation,
    poll(work, milliseconds = 5000) {
      const timer = setInterval(() => {
        if (document.visibilityState === 'visible' && mine === generation) work().catch((error) => showError(error.message));
      }, milliseconds);
      timers.push(timer);
    },
    navigate,
    /** Draws the page again from the URL (after `setQuery`). */
    refresh: () => route(),
    setQuery(values, {push = false} = {}) {
      const query = new URLSearchParams(location.search);
      for (const [key, value] of Object.entries(values)) {
        if (value === null || value === undefined || value === '') query.delete(key); else query.set(key, value);
      }
      const url = `${location.pathname}${query.toString() ? `?${query}` : ''}`;
      if (push) history.pushState(null, '', url); else history.replaceState(history.state, '', url);
      context.query = query;
    },
    ready(name = found.name) {
      if (mine !== generation) return;
      main.dataset.ready = name;
      performance.mark(`${name}-ready`);
    },
    showError,
  };
  try {
    const page = await found.load();
    if (mine !== generation) return;
    await page.render(context);
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof ApiError && error.status === 401) { me = null; drawLogin(error.message); return; }
    replace(main, el('h1', {}, 'Something went wrong'), el('p', {class: 'error-text'}, error.message));
    main.dataset.ready = 'error';
  }
}

function drawLogin(reason) {
  drawNav();
  const input = el('input', {id: 'token', type: 'password', autocomplete: 'off', placeholder: 'cw_…', required: true, size: 48});
  const remember = el('input', {id: 'remember', type: 'checkbox'});
  const message = el('p', {class: 'error-text', id: 'login-error'}, reason && token() ? reason : '');
  const form = el('form', {class: 'login card', onsubmit: async (event) => {
    event.preventDefault();
    setToken(input.value.trim(), remember.checked);
    await start();
  }},
  el('h1', {}, 'Sign in'),
  el('p', {}, 'This server asks for an API token. Create one with ', el('code', {}, 'causeway token create --name NAME --scope read'), ' (or ', el('code', {}, 'admin'), ' to promote and steer the loop).'),
  el('label', {for: 'token'}, 'Token'), input,
  el('label', {class: 'inline'}, remember, ' remember on this computer'),
  el('button', {type: 'submit', class: 'primary', 'data-action': 'sign-in'}, 'Sign in'),
  message);
  replace(main, form);
  main.dataset.ready = 'login';
  input.focus();
}

async function start() {
  try {
    me = await ui('whoami');
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      const hadToken = Boolean(token());
      signOut();
      drawLogin(hadToken ? 'That token is unknown or revoked.' : '');
      if (hadToken) document.getElementById('login-error').textContent = 'That token is unknown or revoked.';
      return;
    }
    replace(main, el('h1', {}, 'The server did not answer'), el('p', {class: 'error-text'}, error.message));
    main.dataset.ready = 'error';
    return;
  }
  await route();
}

document.addEventListener('click', (event) => {
  const anchor = event.target.closest && event.target.closest('a[href]');
  if (!anchor || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const href = anchor.getAttribute('href');
  if (!href.startsWith('/') || anchor.target || anchor.hasAttribute('download')) return;
  if (!(href === '/' || href.startsWith('/ui/') || href.startsWith('/?'))) return;
  event.preventDefault();
  navigate(href);
});
window.addEventListener('popstate', () => route());
start();

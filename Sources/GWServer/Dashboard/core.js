// The dashboard's base: DOM helper, Admin API client (through /api/ on this listener, with the
// Kong-Admin-Token asked for on a 401), per-view timers, modal, toasts, formatting, router.
// Invariant: every timer a view starts is stopped when the view changes (GW.every).
'use strict';

const GW = {};

// h('div', {class: 'x', onclick: f, text: 't'}, child, 'text', [children]) → Element
GW.h = function (tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  const add = (c) => {
    if (c === undefined || c === null || c === false) return;
    if (Array.isArray(c)) { c.forEach(add); return; }
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  };
  children.forEach(add);
  return el;
};
const h = GW.h;

// ---- Admin API client -------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || ('HTTP ' + status));
    this.status = status;
    this.body = body;
  }
}
GW.ApiError = ApiError;

GW.tokenKey = 'gateway-admin-token';
GW.tokenPrompt = null;   // one pending prompt shared by every request that got a 401

GW.askToken = function (message) {
  if (GW.tokenPrompt) return GW.tokenPrompt;
  GW.tokenPrompt = new Promise((resolve) => {
    const input = h('input', {type: 'password', id: 'admin-token', name: 'token', autocomplete: 'current-password'});
    const form = h('form', {class: 'token-form', onsubmit: (e) => {
      e.preventDefault();
      sessionStorage.setItem(GW.tokenKey, input.value);
      GW.closeModal();
      GW.tokenPrompt = null;
      resolve();
    }},
      h('p', {text: 'This node has admin_token set: the Admin API answers only requests that carry it (Kong-Admin-Token header).'}),
      message ? h('p', {class: 'error', text: message}) : null,
      h('label', {for: 'admin-token', text: 'Admin token'}), input,
      h('div', {class: 'actions'}, h('button', {class: 'primary', type: 'submit', text: 'Sign in'})));
    GW.openModal('Admin token required', form, {locked: true});
    input.focus();
  });
  return GW.tokenPrompt;
};

GW.request = async function (method, path, body, accept) {
  for (let attempt = 0; ; attempt++) {
    const headers = {'Accept': accept || 'application/json'};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const token = sessionStorage.getItem(GW.tokenKey);
    if (token) headers['Kong-Admin-Token'] = token;
    let r;
    try {
      r = await fetch('/api' + path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                      cache: 'no-store', credentials: 'omit'});
    } catch (e) {
      GW.setLive(false);
      throw new ApiError(0, {message: 'The Admin API is not reachable (' + e.message + ')'});
    }
    GW.setLive(true);
    if (r.status === 401 && attempt < 5) {
      const b = await r.json().catch(() => null);
      await GW.askToken(token ? 'Invalid credentials: ' + ((b && b.message) || '') : null);
      continue;
    }
    return r;
  }
};

GW.api = async function (method, path, body) {
  const r = await GW.request(method, path, body);
  const text = await r.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch (e) { data = {message: text}; } }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
};
GW.get = (path) => GW.api('GET', path);

// All pages of a listing (Kong's `offset` paging), at most `limit` entities.
GW.list = async function (path, limit) {
  limit = limit || 1000;
  let out = [];
  let next = path + (path.includes('?') ? '&' : '?') + 'size=' + Math.min(limit, 1000);
  while (next && out.length < limit) {
    const page = await GW.get(next);
    out = out.concat(page.data || []);
    if (!page.offset) break;
    next = path + (path.includes('?') ? '&' : '?') + 'size=1000&offset=' + encodeURIComponent(page.offset);
  }
  return out;
};

GW.setLive = function (ok) {
  const el = document.getElementById('live');
  if (el) { el.classList.toggle('down', !ok); el.title = ok ? 'Admin API reachable' : 'Admin API not reachable'; }
};

// ---- per-view lifetime ------------------------------------------------------------------------

GW.viewTimers = [];
GW.viewSeq = 0;
// Runs fn now and every ms until the view changes; runs never overlap.
GW.every = function (ms, fn) {
  const seq = GW.viewSeq;
  let busy = false;
  const tick = async () => {
    if (busy || seq !== GW.viewSeq) return;
    busy = true;
    try { await fn(); } catch (e) { if (!(e instanceof ApiError)) console.warn(e); } finally { busy = false; }
  };
  GW.viewTimers.push(setInterval(tick, ms));
  tick();
};
GW.alive = (seq) => seq === GW.viewSeq;

// ---- modal and toasts -------------------------------------------------------------------------

GW.openModal = function (title, content, opts) {
  GW.closeModal();
  const close = (opts && opts.locked) ? null : h('button', {class: 'close', type: 'button', 'aria-label': 'Close', onclick: GW.closeModal, text: '×'});
  const box = h('div', {class: 'modal', role: 'dialog', 'aria-modal': 'true', id: 'modal'},
    h('div', {class: 'panel'}, h('div', {class: 'panel-head'}, h('h2', {text: title}), close), h('div', {class: 'panel-body'}, content)));
  if (!(opts && opts.locked)) box.addEventListener('mousedown', (e) => { if (e.target === box) GW.closeModal(); });
  document.body.appendChild(box);
  return box;
};
GW.closeModal = function () {
  const m = document.getElementById('modal');
  if (m) m.remove();
};
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && !GW.tokenPrompt) GW.closeModal();
});

GW.toast = function (message, kind) {
  const t = h('div', {class: 'toast ' + (kind || 'ok'), role: 'status', text: message});
  document.getElementById('toasts').appendChild(t);
  setTimeout(() => t.remove(), 4000);
};

GW.errorBox = function (e) {
  return h('div', {class: 'error-box'}, h('strong', {text: e.status ? 'Error ' + e.status + ': ' : 'Error: '}), e.message);
};

// ---- formatting -------------------------------------------------------------------------------

GW.fmtBytes = function (n) {
  if (typeof n !== 'number') return String(n);
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 2 : 1) : n) + ' ' + u[i];
};
GW.fmtDuration = function (s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? `${d}d ${hh}h` : hh ? `${hh}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
};
GW.fmtTime = function (epoch) {
  if (!epoch) return '';
  const d = new Date(epoch * 1000);
  return d.toISOString().replace('T', ' ').slice(0, 19);
};
GW.fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '–');
GW.enc = encodeURIComponent;

GW.badge = function (state) {
  const s = String(state || 'unknown');
  return h('span', {class: 'badge ' + s.toLowerCase().replace(/[^a-z_]/g, ''), 'data-health': s, text: s.replace(/_/g, ' ')});
};
GW.tags = (list) => (list || []).map((t) => h('span', {class: 'tag', text: t}));
GW.join = (list) => (list && list.length ? list.join(', ') : '–');

// ---- tables and page scaffolding --------------------------------------------------------------

// columns: [{title, cell: (row) => node|string}], onRow: row => void
GW.table = function (columns, rows, onRow, empty) {
  if (!rows.length) return h('div', {class: 'empty', text: empty || 'Nothing here yet.'});
  return h('table', {class: 'grid'},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {text: c.title})))),
    h('tbody', {}, rows.map((r) => {
      const tr = h('tr', {class: onRow ? 'clickable' : ''}, columns.map((c) => {
        const v = c.cell(r);
        return h('td', {class: c.class || ''}, v === undefined || v === null || v === '' ? '–' : v);
      }));
      if (onRow) tr.addEventListener('click', (e) => { if (!e.target.closest('button, a')) onRow(r); });
      return tr;
    })));
};

// A text box that hides the rows of the page's tables that do not contain what is typed.
GW.filterBox = function (what) {
  return h('input', {type: 'search', class: 'filter', id: 'filter', placeholder: 'Filter ' + what + '…', 'aria-label': 'Filter',
    oninput: (e) => {
      const q = e.target.value.trim().toLowerCase();
      document.querySelectorAll('main table.grid tbody tr').forEach((tr) => {
        tr.hidden = q !== '' && !tr.textContent.toLowerCase().includes(q);
      });
    }});
};

GW.pageHead = function (title, subtitle, actions) {
  return h('div', {class: 'page-head'},
    h('div', {}, h('h1', {text: title}), subtitle ? h('p', {class: 'muted', text: subtitle}) : null),
    h('div', {class: 'actions'}, actions || []));
};

GW.card = (title, ...body) => h('section', {class: 'card'}, title ? h('h3', {text: title}) : null, body);

// wide: two key/value pairs a line.
GW.kv = function (pairs, wide) {
  return h('dl', {class: 'kv' + (wide ? ' wide' : '')}, pairs.map(([k, v]) => [h('dt', {text: k}),
    h('dd', {}, v === undefined || v === null || v === '' ? '–' : v)]));
};

GW.crumbs = function (items) {
  const el = document.getElementById('crumbs');
  el.replaceChildren(...items.map((it, i) => [i ? h('span', {class: 'sep', text: '/'}) : null,
    it[1] ? h('a', {href: it[1], 'data-link': true, text: it[0]}) : h('span', {text: it[0]})]).flat().filter(Boolean));
};

GW.confirmDelete = function (what, run) {
  const body = h('div', {},
    h('p', {}, 'Delete ', h('strong', {text: what}), '? This cannot be undone.'),
    h('div', {class: 'actions'},
      h('button', {type: 'button', onclick: GW.closeModal, text: 'Cancel'}),
      h('button', {type: 'button', class: 'danger', id: 'confirm-delete', text: 'Delete', onclick: async () => {
        try { await run(); GW.closeModal(); GW.toast(what + ' deleted'); GW.render(); } catch (e) {
          body.appendChild(GW.errorBox(e));
        }
      }})));
  GW.openModal('Delete', body);
};

// ---- router -----------------------------------------------------------------------------------

GW.routes = [];   // [regex, nav key, handler(main, ...params)], filled by main.js
GW.navigate = function (path) {
  if (path !== location.pathname + location.search) history.pushState(null, '', path);
  GW.render();
};
GW.render = async function () {
  GW.viewTimers.forEach(clearInterval);
  GW.viewTimers = [];
  const seq = ++GW.viewSeq;
  GW.closeModal();
  const main = document.getElementById('view');
  const path = decodeURIComponent(location.pathname.replace(/\/+$/, '')) || '/';
  for (const [re, nav, fn] of GW.routes) {
    const m = path.match(re);
    if (!m) continue;
    document.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('active', a.dataset.nav === nav));
    main.dataset.view = nav + (m.length > 1 ? '-detail' : '');
    try {
      await fn(main, seq, ...m.slice(1));
    } catch (e) {
      if (!GW.alive(seq)) return;
      main.replaceChildren(GW.errorBox(e instanceof ApiError ? e : new ApiError(0, {message: String(e)})));
    }
    return;
  }
  main.dataset.view = 'not-found';
  main.replaceChildren(h('div', {class: 'empty', text: 'No such page: ' + path}));
};
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-link]');
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  GW.navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', () => GW.render());

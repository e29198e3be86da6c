// Keel dashboard: plain JS, no build step. Views arrive over SSE (/keel/v1/dashboard/events)
// and are re-rendered in place; focus is restored by key so keyboard users keep their place.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { registry: null, traffic: null, config: null, health: null, csrf: null, user: null, authRequired: false };

// ---- DOM helper: never innerHTML with data, so metadata and messages cannot inject markup ----
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const svg = (tag, attrs) => {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
};

// Replaces a container's content, keeping focus on the element with the same data-key.
function replace(container, ...nodes) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.key : null;
  container.replaceChildren(...nodes.flat());
  if (key) {
    const again = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

function ago(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.round(ms / 1000);
  if (Math.abs(s) < 60) return `${s}s`;
  if (Math.abs(s) < 3600) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}
const fmt = (n, d = 1) => (n === null || n === undefined || Number.isNaN(n)) ? '—' : Number(n).toFixed(d);
const badge = (text, cls) => h('span', { class: `badge ${cls || text}` }, text);

function notice(text) {
  const n = $('notice');
  n.textContent = text || '';
  n.hidden = !text;
}

// ---- session, login, writes ----
async function loadSession() {
  const r = await fetch('/keel/v1/dashboard/session', { credentials: 'same-origin' });
  const s = await r.json();
  state.csrf = s.csrf; state.user = s.user; state.authRequired = s.authRequired;
  renderWho();
  return s;
}
function renderWho() {
  $('who').textContent = state.user ? `signed in as ${state.user}` : (state.authRequired ? 'read-only' : '');
  $('login-button').hidden = !state.authRequired || !!state.user;
  $('logout-button').hidden = !state.user;
}
async function post(path, body) {
  const r = await fetch(path, {
    method: 'POST', credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-keel-csrf': state.csrf || '' },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await r.json(); } catch (_) { /* empty body */ }
  return { ok: r.ok, status: r.status, data };
}
let afterLogin = null;
function openLogin(then) {
  afterLogin = then || null;
  $('login-error').textContent = '';
  $('login-dialog').showModal();
  $('login-user').focus();
}
async function submitLogin(ev) {
  ev.preventDefault();
  const r = await post('/keel/v1/dashboard/login', { user: $('login-user').value, password: $('login-password').value });
  if (!r.ok) { $('login-error').textContent = r.data.error || `refused (${r.status})`; return; }
  state.user = r.data.user; state.csrf = r.data.csrf;
  $('login-password').value = '';
  $('login-dialog').close();
  renderWho();
  if (afterLogin) { const f = afterLogin; afterLogin = null; f(); }
}
async function setStatus(app, id, status) {
  if (state.authRequired && !state.user) { openLogin(() => setStatus(app, id, status)); return; }
  const r = await post('/keel/v1/dashboard/status', { app, id, status });
  if (r.status === 401) { openLogin(() => setStatus(app, id, status)); return; }
  if (r.status === 403) { await loadSession(); }
  notice(r.ok ? '' : `Could not change ${id}: ${r.data.error || r.status}`);
}

// ---- registry ----
function renderRegistry() {
  const reg = state.registry;
  if (!reg) return;
  if (reg.available === false) { replace($('registry-apps'), h('p', { class: 'error' }, reg.error)); return; }
  const apps = reg.apps || [];
  const total = apps.reduce((n, a) => n + a.instances.length, 0);
  const up = apps.reduce((n, a) => n + a.instances.filter((i) => i.status === 'UP').length, 0);
  const sp = reg.selfPreservation || {};
  const spText = sp.enabled === false ? 'off'
    : sp.engaged ? 'leases are not expiring' : 'not engaged';
  replace($('registry-summary'),
    h('strong', {}, `${apps.length}`), ' applications · ',
    h('strong', {}, `${total}`), ` instances (${up} up) · self-preservation: `,
    badge(sp.engaged ? 'engaged' : (sp.enabled === false ? 'off' : 'armed'), sp.engaged ? 'engaged' : 'ok'),
    sp.enabled !== false ? ` ${spText}; renewals ${fmt(sp.arrivingRenewalsPerMinute, 0)}/${fmt(sp.expectedRenewalsPerMinute, 0)} per min (threshold ${Math.round((sp.threshold || 0) * 100)}%, floor ${sp.floor ?? '—'})` : '');
  const peers = reg.peers || [];
  replace($('registry-peers'), peers.length === 0
    ? h('p', { class: 'hint' }, 'Single node: no peers configured.')
    : h('table', { 'aria-label': 'Peers' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Peer'), h('th', {}, 'Replication'), h('th', { class: 'num' }, 'Queued'),
        h('th', { class: 'num' }, 'Sent'), h('th', { class: 'num' }, 'Failed batches'), h('th', { class: 'num' }, 'Dropped'), h('th', {}, 'Last error'))),
      h('tbody', {}, peers.map((p) => h('tr', {},
        h('td', { class: 'mono' }, p.url), h('td', {}, badge(p.state)), h('td', { class: 'num' }, p.queued),
        h('td', { class: 'num' }, p.sent), h('td', { class: 'num' }, p.failedBatches), h('td', { class: 'num' }, p.dropped),
        h('td', {}, p.lastError || '')))))); 
  const filter = $('registry-filter').value.trim().toLowerCase();
  const match = (a, i) => !filter || [a.name, i.id, i.zone, i.status, i.host, i.ip, ...Object.entries(i.metadata).flat()]
    .some((v) => v && String(v).toLowerCase().includes(filter));
  const now = reg.now;
  const anyMeta = apps.some((a) => a.instances.some((i) => Object.keys(i.metadata).length));
  const blocks = apps.map((a) => {
    const rows = a.instances.filter((i) => match(a, i));
    if (rows.length === 0) return null;
    return h('div', { class: 'app' },
      h('div', { class: 'app-head' }, h('h4', {}, a.name), h('span', { class: 'count' }, `${a.instances.length} instance${a.instances.length === 1 ? '' : 's'}`)),
      h('table', { 'aria-label': `Instances of ${a.name}` },
        h('thead', {}, h('tr', {}, h('th', {}, 'Instance'), h('th', {}, 'Status'), h('th', {}, 'Zone'), h('th', {}, 'Address'),
          h('th', {}, 'Lease left'), h('th', {}, 'Last renewal'), anyMeta ? h('th', {}, 'Metadata') : null, h('th', {}, 'Action'))),
        h('tbody', {}, rows.map((i) => {
          const left = i.lease.expiresAt != null ? i.lease.expiresAt - now : null;
          const out = i.status === 'OUT_OF_SERVICE';
          return h('tr', { 'data-instance-id': i.id },
            h('td', { class: 'mono' }, i.id),
            h('td', {}, badge(i.status), i.overriddenStatus !== 'UNKNOWN' && i.overriddenStatus !== i.status ? h('div', { class: 'shadowed' }, `override ${i.overriddenStatus}`) : null),
            h('td', {}, i.zone || '—'),
            h('td', { class: 'mono' }, `${i.ip || i.host}:${i.port}`),
            h('td', { class: 'num' },
              left === null ? '—' : [h('meter', { min: 0, max: i.lease.durationSecs * 1000, low: i.lease.renewalIntervalSecs * 1000, optimum: i.lease.durationSecs * 1000, value: Math.max(0, left), title: `${i.lease.durationSecs}s lease` }), ' ', left < 0 ? `overdue ${ago(-left)}` : ago(left)]),
            h('td', { class: 'num' }, i.lease.lastRenewal != null ? `${ago(now - i.lease.lastRenewal)} ago` : '—'),
            anyMeta ? h('td', {}, h('div', { class: 'meta' }, Object.entries(i.metadata).map(([k, v]) => h('span', {}, `${k}=${v}`)))) : null,
            h('td', {}, h('button', {
              type: 'button', class: out ? '' : 'danger', 'data-key': `status:${a.name}/${i.id}`,
              'aria-label': `${out ? 'Put back in service' : 'Take out of service'}: ${i.id}`,
              onclick: () => setStatus(a.name, i.id, out ? 'UP' : 'OUT_OF_SERVICE'),
            }, out ? 'Put back in service' : 'Take out of service')));
        }))));
  }).filter(Boolean);
  replace($('registry-apps'), blocks.length ? blocks
    : h('p', { class: 'empty' }, apps.length ? 'No instance matches the filter.' : 'No instances registered yet. Point a service at this registry (Eureka URL http://THIS-HOST/eureka/).'));
}

// ---- traffic ----
function spark(values, cls, max) {
  const s = svg('svg', { class: `spark ${cls || ''}`, viewBox: '0 0 120 26', role: 'img' });
  const vals = values.map((v) => (v === null || v === undefined ? 0 : v));
  const top = Math.max(max || 0, ...vals, 1e-9);
  const step = vals.length > 1 ? 120 / (vals.length - 1) : 0;
  const pts = vals.map((v, i) => `${(i * step).toFixed(1)},${(24 - (v / top) * 22).toFixed(1)}`).join(' ');
  s.append(svg('polyline', { points: pts || '0,24 120,24' }));
  return s;
}
function renderTraffic() {
  const t = state.traffic;
  if (!t) return;
  // Trouble first: open, then half-open, then the busiest.
  const rank = { OPEN: 0, HALF_OPEN: 1, CLOSED: 2 };
  const breakers = [...(t.breakers || [])].sort((a, b) => (rank[a.state] ?? 3) - (rank[b.state] ?? 3)
    || (a.source === b.source ? 0 : a.source === 'service' ? -1 : 1) || b.requestCount - a.requestCount || a.name.localeCompare(b.name));
  replace($('breakers'), breakers.length === 0
    ? h('p', { class: 'empty' }, `No circuit breakers reported yet${(t.streamingHosts || []).length ? '' : ' (no instance serves /hystrix.stream)'}.`)
    : breakers.map((b) => h('article', { class: `card ${b.state}`, 'data-breaker': b.name, 'aria-label': `Breaker ${b.name}: ${b.state}` },
      h('div', { class: 'app-head' }, h('h4', {}, b.name), badge(b.state)),
      h('div', { class: 'big' }, `${fmt(b.errorPercentage, 0)}%`, h('span', { class: 'hint' }, ' errors')),
      h('dl', {},
        h('dt', {}, 'Requests (window)'), h('dd', {}, b.requestCount),
        h('dt', {}, 'Errors'), h('dd', {}, b.errorCount),
        h('dt', {}, 'Short-circuited'), h('dd', {}, b.shortCircuited),
        h('dt', {}, 'Rejected'), h('dd', {}, b.rejected),
        h('dt', {}, 'Latency p50 / p99'), h('dd', {}, `${b.latencyP50Ms} / ${b.latencyP99Ms} ms`),
        h('dt', {}, 'Hosts'), h('dd', { title: b.hosts.join(', ') }, `${b.reportingHosts} (${b.source})`)))));
  if (t.available === false) {
    replace($('routes'), h('p', { class: 'hint' }, t.error));
    replace($('limits'), []);
    return;
  }
  const routes = t.routes || [];
  replace($('routes'), routes.length === 0 ? h('p', { class: 'empty' }, 'The gateway has no routes.')
    : h('table', { 'aria-label': 'Gateway routes' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Route'), h('th', {}, 'Target'), h('th', {}, 'Requests/s'), h('th', {}, 'Error rate'),
        h('th', {}, 'Latency p50 · p90 · p99 (ms)'), h('th', { class: 'num' }, 'Rate-limited'))),
      h('tbody', {}, routes.map((r) => {
        const s = r.series || [];
        const last = s[s.length - 1] || {};
        const lat = spark(s.map((p) => p.p99), '');
        lat.querySelector('polyline').setAttribute('class', 'p99');
        return h('tr', {},
          h('td', {}, h('div', { class: 'mono' }, r.id), h('div', { class: 'shadowed' }, (r.predicates || []).map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join(' '), ` · ${r.source || ''}`)),
          h('td', { class: 'mono' }, r.uri),
          h('td', {}, spark(s.map((p) => p.rps)), ' ', fmt(last.rps)),
          h('td', {}, spark(s.map((p) => p.errorRate), 'err', 0.05), ' ', `${fmt((last.errorRate || 0) * 100)}%`),
          h('td', {}, lat, ' ', `${fmt(last.p50)} · ${fmt(last.p90)} · ${fmt(last.p99)}`),
          h('td', { class: 'num' }, `${r.rateLimited || 0}`, last.rejectedPerSec ? ` (${fmt(last.rejectedPerSec)}/s)` : ''));
      }))));
  const services = t.services || [];
  replace($('limits'), services.length === 0 ? h('p', { class: 'empty' }, 'No upstream services yet.')
    : h('table', { 'aria-label': 'Service limits' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Service'), h('th', { class: 'num' }, 'Instances'), h('th', { class: 'num' }, 'Concurrency in flight / limit'), h('th', { class: 'num' }, 'Retry budget (calls / retries)'))),
      h('tbody', {}, services.map((s) => h('tr', {},
        h('td', { class: 'mono' }, s.service),
        h('td', { class: 'num' }, (s.instances || []).length),
        h('td', { class: 'num' }, s.concurrency ? `${s.concurrency.inFlight} / ${s.concurrency.limit}` : '—'),
        h('td', { class: 'num' }, s.retryBudget ? `${s.retryBudget.calls} / ${s.retryBudget.retries}` : '—'))))));
}

// ---- config ----
const configPick = { app: null, profile: 'default', label: '' };
let lastServed = null;
function fillSelect(sel, values, current) {
  const want = values.map(String);
  const have = [...sel.options].map((o) => o.value);
  if (current !== null && current !== undefined && !want.includes(current)) want.push(current);
  if (JSON.stringify(want) !== JSON.stringify(have)) sel.replaceChildren(...want.map((v) => h('option', { value: v }, v || '(default)')));
  if (current !== null && current !== undefined) sel.value = current;
}
function renderConfig() {
  const c = state.config;
  if (!c) return;
  if (c.available === false) { replace($('config-summary'), h('span', { class: 'error' }, c.error)); return; }
  const labels = Object.entries((c.status || {}).labels || {});
  replace($('config-summary'), `${c.apps.length} applications · ${labels.length} labels · ${(c.watchers || []).length} watching clients`,
    c.status.fetchError ? [' · ', h('span', { class: 'error' }, `fetch failing: ${c.status.fetchError}`)] : '');
  if (!configPick.app) configPick.app = c.apps.find((a) => a !== 'application') || c.apps[0];
  fillSelect($('config-app'), c.apps, configPick.app);
  fillSelect($('config-profile'), c.profiles, configPick.profile);
  fillSelect($('config-label'), ['', ...c.labels], configPick.label);
  replace($('config-labels'), h('table', { 'aria-label': 'Labels' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Label'), h('th', {}, 'Kind'), h('th', {}, 'Served'), h('th', {}, 'Latest'), h('th', {}, 'Rejected'))),
    h('tbody', {}, labels.map(([name, l]) => h('tr', {},
      h('td', { class: 'mono' }, name), h('td', {}, l.kind || ''), h('td', { class: 'mono' }, short(l.served)),
      h('td', { class: 'mono' }, short(l.latest)), h('td', {}, l.rejected ? JSON.stringify(l.rejected) : ''))))));
  const watchers = c.watchers || [];
  replace($('config-watchers'), watchers.length === 0 ? h('p', { class: 'empty' }, 'No client is watching right now.')
    : h('table', { 'aria-label': 'Watching clients' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Client'), h('th', {}, 'Application'), h('th', {}, 'Profile'), h('th', {}, 'Label'), h('th', {}, 'Has version'), h('th', {}, 'Since'))),
      h('tbody', {}, watchers.map((w) => h('tr', {},
        h('td', { class: 'mono' }, w.peer || `#${w.id}`), h('td', {}, w.application), h('td', {}, w.profile), h('td', {}, w.label || '(default)'),
        h('td', { class: 'mono' }, short(w.version)), h('td', {}, w.since ? new Date(w.since * 1000).toLocaleTimeString() : ''))))));
  // A new commit served: refresh what is shown.
  const served = JSON.stringify(labels.map(([n, l]) => [n, l.served]));
  if (served !== lastServed) { lastServed = served; loadConfigDetails(); }
}
const short = (v) => (v ? String(v).slice(0, 10) : '—');
// Property sources are repository paths; the file inside the repository is what people recognise.
const sourceName = (s) => { const m = /\.git\/(.+)$/.exec(s) || /([^/]+)$/.exec(s); return m ? m[1] : s; };
async function getJson(path) {
  const r = await fetch(path, { credentials: 'same-origin' });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `${r.status}`);
  return data;
}
async function loadConfigDetails() {
  if (!configPick.app) return;
  const q = new URLSearchParams({ app: configPick.app, profile: configPick.profile || 'default', label: configPick.label || '' });
  try {
    const m = await getJson(`/keel/v1/dashboard/config/merged?${q}`);
    replace($('config-merged'),
      h('p', { class: 'hint' }, `${m.application} · ${m.profiles.join(',')} · label ${m.label || '(default)'} · version `, h('code', {}, short(m.version)),
        ` · sources, highest first: ${m.sources.map(sourceName).join(' › ') || 'none'}`),
      m.entries.length === 0 ? h('p', { class: 'empty' }, 'No properties for this application.')
        : h('table', { 'aria-label': 'Merged configuration' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Key'), h('th', {}, 'Value'), h('th', {}, 'Winning source'))),
          h('tbody', {}, m.entries.map((e) => h('tr', {},
            h('td', { class: 'mono' }, e.key),
            h('td', { class: 'mono' }, typeof e.value === 'string' ? e.value : JSON.stringify(e.value)),
            h('td', { title: e.source }, h('div', { class: 'mono' }, sourceName(e.source)), e.shadowed.length ? h('div', { class: 'shadowed' }, `overrides ${e.shadowed.map(sourceName).join(', ')}`) : null))))));
  } catch (e) { replace($('config-merged'), h('p', { class: 'error' }, `Cannot load: ${e.message}`)); }
  try {
    const hist = await getJson(`/keel/v1/dashboard/config/history?${new URLSearchParams({ app: configPick.app })}`);
    const commits = hist.commits || [];
    replace($('config-history'), commits.length === 0 ? h('p', { class: 'empty' }, 'No commit touched this application.')
      : h('ol', { class: 'history', 'aria-label': `Commits touching ${configPick.app}` }, commits.map((c, i) => h('li', { 'data-commit': c.commit },
        h('div', { class: 'msg' }, c.message.split('\n')[0]),
        h('div', { class: 'sub' }, h('code', {}, short(c.commit)), ` · ${c.author} · ${c.timestamp} · ${c.files.join(', ')}`),
        commits[i + 1] ? h('button', { type: 'button', 'data-key': `diff:${c.commit}`, onclick: () => showDiff(commits[i + 1].commit, c.commit) }, 'Diff with previous') : null))));
  } catch (e) { replace($('config-history'), h('p', { class: 'hint' }, `History unavailable: ${e.message}`)); }
}
async function showDiff(from, to) {
  const q = new URLSearchParams({ app: configPick.app, profile: configPick.profile || 'default', from, to });
  try {
    const d = await getJson(`/keel/v1/dashboard/config/diff?${q}`);
    const rows = [];
    for (const [k, v] of Object.entries(d.added || {})) rows.push(h('tr', { class: 'add' }, h('td', {}, '+'), h('td', { class: 'mono' }, k), h('td', { class: 'mono' }, JSON.stringify(v))));
    for (const [k, v] of Object.entries(d.removed || {})) rows.push(h('tr', { class: 'del' }, h('td', {}, '−'), h('td', { class: 'mono' }, k), h('td', { class: 'mono' }, JSON.stringify(v))));
    for (const [k, v] of Object.entries(d.changed || {})) rows.push(h('tr', { class: 'chg' }, h('td', {}, '~'), h('td', { class: 'mono' }, k), h('td', { class: 'mono' }, JSON.stringify(v))));
    replace($('config-diff'), h('div', { class: 'diff' }, h('h4', { tabindex: '-1', id: 'diff-title' }, `Diff ${short(from)} → ${short(to)}`),
      rows.length ? h('table', { 'aria-label': 'Diff' }, h('tbody', {}, rows)) : h('p', { class: 'empty' }, 'No change to the merged configuration.')));
    $('diff-title').focus();
  } catch (e) { replace($('config-diff'), h('p', { class: 'error' }, `Diff failed: ${e.message}`)); }
}

// ---- health pills ----
function renderHealth() {
  const hl = state.health || {};
  replace($('components'), Object.entries(hl).map(([name, r]) => h('li', { class: r.status, title: r.error || '' }, `${name} ${r.status}`)));
}

// ---- tabs and keys ----
function show(view) {
  for (const v of ['registry', 'traffic', 'config']) {
    $(v).hidden = v !== view;
    const tab = $(`tab-${v}`);
    if (v === view) tab.setAttribute('aria-current', 'page'); else tab.removeAttribute('aria-current');
  }
}
function route() { show((location.hash || '#registry').slice(1).split('/')[0] || 'registry'); }
window.addEventListener('hashchange', route);
document.addEventListener('keydown', (e) => {
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
  if (typing || e.ctrlKey || e.metaKey || e.altKey) {
    if (e.key === 'Escape' && document.activeElement.id === 'registry-filter') { e.target.value = ''; renderRegistry(); }
    return;
  }
  const views = { 1: 'registry', 2: 'traffic', 3: 'config' };
  if (views[e.key]) { location.hash = views[e.key]; $('main').focus(); e.preventDefault(); }
  if (e.key === '/') { location.hash = 'registry'; $('registry-filter').focus(); e.preventDefault(); }
});

// ---- live feed ----
function connect() {
  const es = new EventSource('/keel/v1/dashboard/events');
  const live = $('live');
  es.onopen = () => { live.textContent = 'live'; live.className = 'live on'; };
  es.onerror = () => { live.textContent = 'reconnecting…'; live.className = 'live'; };
  const on = (name, render) => es.addEventListener(name, (ev) => { state[name] = JSON.parse(ev.data); render(); });
  on('registry', renderRegistry);
  on('traffic', renderTraffic);
  on('config', renderConfig);
  on('health', renderHealth);
}

document.addEventListener('DOMContentLoaded', async () => {
  route();
  $('registry-filter').addEventListener('input', renderRegistry);
  $('login-button').addEventListener('click', () => openLogin());
  $('logout-button').addEventListener('click', async () => {
    const r = await post('/keel/v1/dashboard/logout', {});
    if (r.ok) { state.user = null; state.csrf = r.data.csrf; renderWho(); }
  });
  $('login-form').addEventListener('submit', submitLogin);
  $('login-cancel').addEventListener('click', () => $('login-dialog').close());
  $('config-form').addEventListener('submit', (e) => {
    e.preventDefault();
    configPick.app = $('config-app').value; configPick.profile = $('config-profile').value; configPick.label = $('config-label').value;
    replace($('config-diff'), []);
    loadConfigDetails();
  });
  try {
    const s = await loadSession();
    if (s.readsProtected && !s.user) { notice('Log in to see the platform.'); openLogin(() => { notice(''); connect(); }); return; }
  } catch (e) { notice(`Cannot reach Keel: ${e}`); }
  connect();
});

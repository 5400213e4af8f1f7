// Upstreams (`/upstreams`, `/upstreams/{name or id}`): the list with each balancer's health, and an
// upstream's targets with live health: GET /upstreams/{u}/health every second (rows updated in
// place, so a click is never lost to a redraw), add/delete targets, mark a target (un)healthy.
'use strict';

GW.views = GW.views || {};

GW.upstreamFields = [
  {name: 'name', label: 'Name', placeholder: 'example-upstream (a virtual host name services use)'},
  {name: 'algorithm', label: 'Algorithm', type: 'select', options: ['round-robin', 'consistent-hashing', 'least-connections', 'latency'], default: 'round-robin'},
  {name: 'hash_on', label: 'Hash on', type: 'select', options: ['none', 'consumer', 'ip', 'header', 'cookie', 'path', 'query_arg', 'uri_capture'], default: 'none'},
  {name: 'hash_fallback', label: 'Hash fallback', type: 'select', options: ['none', 'consumer', 'ip', 'header', 'cookie', 'path', 'query_arg', 'uri_capture'], default: 'none'},
  {name: 'hash_on_header', label: 'Hash on header'},
  {name: 'slots', label: 'Slots', type: 'number', default: 10000},
  {name: 'host_header', label: 'Host header'},
  {name: 'healthchecks', label: 'Health checks (JSON)', type: 'json', rows: 8,
    help: 'e.g. {"active": {"healthy": {"interval": 2}, "unhealthy": {"interval": 1, "tcp_failures": 1}}}; left empty: Kong\'s defaults (checks off).'},
  {name: 'tags', label: 'Tags', type: 'list'},
];

GW.editUpstream = function (u, after) {
  GW.editEntity(u ? 'Edit upstream' : 'New upstream', {fields: GW.upstreamFields, initial: u, edit: !!u},
    (body) => (u ? GW.api('PATCH', '/upstreams/' + GW.enc(u.id), body) : GW.api('POST', '/upstreams', body)), after);
};

GW.views.upstreams = async function (main, seq) {
  GW.crumbs([['Upstreams']]);
  const ups = await GW.list('/upstreams');
  if (!GW.alive(seq)) return;
  const cells = {};
  main.replaceChildren(
    GW.pageHead('Upstreams', 'An upstream balances a service\'s traffic over targets and checks their health.',
      [GW.filterBox('upstreams'), h('button', {class: 'primary', id: 'new-upstream', text: 'New upstream', onclick: () => GW.editUpstream(null)})]),
    h('div', {class: 'card flush'}, GW.table([
      {title: 'Name', cell: (u) => h('a', {href: '/upstreams/' + GW.enc(u.name || u.id), 'data-link': true, text: u.name})},
      {title: 'Algorithm', cell: (u) => u.algorithm},
      {title: 'Slots', cell: (u) => String(u.slots)},
      {title: 'Targets', cell: (u) => (cells[u.id] = cells[u.id] || {}).targets = h('span', {text: '…'})},
      {title: 'Health', cell: (u) => (cells[u.id] = cells[u.id] || {}).health = h('span', {'data-upstream-health': u.name}, '…')},
      {title: 'Tags', cell: (u) => GW.tags(u.tags)},
      {title: '', cell: (u) => GW.rowActions(() => GW.editUpstream(u),
        () => GW.confirmDelete('upstream ' + u.name, () => GW.api('DELETE', '/upstreams/' + GW.enc(u.id))))},
    ], ups, (u) => GW.navigate('/upstreams/' + GW.enc(u.name || u.id)), 'No upstreams yet.')));
  GW.every(2000, async () => {
    await Promise.all(ups.slice(0, 50).map(async (u) => {
      const r = await GW.get('/upstreams/' + GW.enc(u.id) + '/health?balancer_health=1').catch(() => null);
      if (!r || !GW.alive(seq) || !cells[u.id]) return;
      const d = r.data || {};
      cells[u.id].health.replaceChildren(GW.badge(d.health));
      cells[u.id].targets.textContent = String(((d.details || {}).hosts || []).length);
    }));
  });
};

GW.checkSummary = function (hc) {
  const a = (hc && hc.active) || {}, p = (hc && hc.passive) || {};
  const ah = a.healthy || {}, au = a.unhealthy || {}, pu = p.unhealthy || {};
  const active = ah.interval > 0 || au.interval > 0
    ? `${a.type} ${a.type && a.type.startsWith('http') ? a.http_path : ''} every ${ah.interval}s (healthy) / ${au.interval}s (unhealthy); ` +
      `unhealthy after ${au.tcp_failures} TCP, ${au.http_failures} HTTP failures or ${au.timeouts} timeouts; healthy after ${ah.successes} successes`
    : 'off';
  const passive = pu.tcp_failures > 0 || pu.http_failures > 0 || pu.timeouts > 0
    ? `unhealthy after ${pu.tcp_failures} TCP, ${pu.http_failures} HTTP failures or ${pu.timeouts} timeouts` : 'off';
  return [['Active checks', active], ['Passive checks', passive], ['Threshold', String((hc && hc.threshold) || 0) + ' %']];
};

GW.views.upstream = async function (main, seq, key) {
  GW.crumbs([['Upstreams', '/upstreams'], [key]]);
  const u = await GW.get('/upstreams/' + GW.enc(key));
  if (!GW.alive(seq)) return;
  const base = '/upstreams/' + GW.enc(u.id);
  const balancer = h('span', {id: 'balancer-health'}, '…');
  const tbody = h('tbody');
  const empty = h('div', {class: 'empty', text: 'No targets: add one (host:port).', hidden: true});
  const updated = h('span', {class: 'muted', id: 'health-updated'});
  main.replaceChildren(
    GW.pageHead(u.name, `${u.algorithm} · ${u.slots} slots`, [
      h('button', {text: 'Edit', onclick: () => GW.editUpstream(u, (x) => GW.navigate('/upstreams/' + GW.enc(x.name || x.id)))}),
      h('button', {class: 'danger-outline', text: 'Delete', onclick: () => GW.confirmDelete('upstream ' + u.name,
        async () => { await GW.api('DELETE', base); history.replaceState(null, '', '/upstreams'); })}),
    ]),
    h('div', {class: 'cols'},
      GW.card('Upstream', GW.kv([['ID', u.id], ['Name', u.name], ['Algorithm', u.algorithm], ['Hash on', u.hash_on],
        ['Host header', u.host_header], ['Tags', GW.tags(u.tags)], ['Balancer health', balancer]])),
      GW.card('Health checks', GW.kv(GW.checkSummary(u.healthchecks)))),
    h('section', {class: 'card flush'},
      h('div', {class: 'card-head'}, h('h3', {}, 'Targets ', updated),
        h('button', {class: 'small primary', id: 'new-target', text: 'New target', onclick: () => GW.editEntity('New target', {fields: [
          {name: 'target', label: 'Target', placeholder: 'host:port (port 8000 when left out)'},
          {name: 'weight', label: 'Weight', type: 'number', default: 100},
          {name: 'tags', label: 'Tags', type: 'list'}]}, (body) => GW.api('POST', base + '/targets', body))})),
      h('table', {class: 'grid', id: 'targets'}, h('thead', {}, h('tr', {},
        ['Target', 'Weight', 'Addresses', 'Health', 'Tags', ''].map((t) => h('th', {text: t})))), tbody), empty));

  const rows = new Map();   // target id → {tr, health, addrs, weight}
  const makeRow = (t) => {
    const r = {health: h('td', {class: 'health'}), addrs: h('td'), weight: h('td', {class: 'num'})};
    const setHealth = (healthy) => async () => {
      try { await GW.api('PUT', `${base}/targets/${GW.enc(t.id)}/${healthy ? 'healthy' : 'unhealthy'}`); tick(); } catch (e) { GW.toast(e.message, 'bad'); }
    };
    r.tr = h('tr', {'data-target': t.target, 'data-target-id': t.id},
      h('td', {}, h('code', {text: t.target})), r.weight, r.addrs, r.health, h('td', {}, GW.tags(t.tags)),
      h('td', {}, h('div', {class: 'row-actions'},
        h('button', {type: 'button', class: 'small', text: 'Mark healthy', onclick: setHealth(true)}),
        h('button', {type: 'button', class: 'small', text: 'Mark unhealthy', onclick: setHealth(false)}),
        h('button', {type: 'button', class: 'small danger-outline', text: 'Delete', onclick: () =>
          GW.confirmDelete('target ' + t.target, () => GW.api('DELETE', `${base}/targets/${GW.enc(t.id)}`))}))));
    return r;
  };
  const tick = async () => {
    const [list, bal] = await Promise.all([GW.get(base + '/health'), GW.get(base + '/health?balancer_health=1')]);
    if (!GW.alive(seq)) return;
    const targets = list.data || [];
    const seen = new Set();
    targets.forEach((t, i) => {
      seen.add(t.id);
      let r = rows.get(t.id);
      if (!r) { r = makeRow(t); rows.set(t.id, r); }
      if (tbody.children[i] !== r.tr) tbody.insertBefore(r.tr, tbody.children[i] || null);
      const d = t.data || {};
      r.weight.textContent = String(t.weight);
      if (r.health.dataset.state !== t.health) { r.health.dataset.state = t.health; r.health.replaceChildren(GW.badge(t.health)); }
      const addrs = (d.addresses || []).map((a) => `${a.ip}:${a.port} ${a.health || ''}`).join('\n');
      if (r.addrs.dataset.v !== addrs) {
        r.addrs.dataset.v = addrs;
        r.addrs.replaceChildren(...(d.addresses || []).map((a) => h('div', {class: 'addr'}, h('code', {text: `${a.ip}:${a.port}`}), ' ', GW.badge(a.health))));
      }
    });
    for (const [id, r] of rows) if (!seen.has(id)) { r.tr.remove(); rows.delete(id); }
    empty.hidden = targets.length > 0;
    const bh = (bal.data || {}).health;
    if (balancer.dataset.state !== bh) { balancer.dataset.state = bh; balancer.replaceChildren(GW.badge(bh)); }
    updated.textContent = '· live, updated ' + new Date().toLocaleTimeString();
  };
  GW.every(1000, tick);
};

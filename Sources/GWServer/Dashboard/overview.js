// The node overview (`/`): GET / (node, version, pids, configuration, plugins) once, GET /status
// every 2 s (connections, requests, requests/s from the total's delta, per-worker rows,
// configuration generation, memory as Kong's workers_lua_vms / lua_shared_dicts), entity counts.
'use strict';

GW.views = GW.views || {};

GW.views.overview = async function (main, seq) {
  GW.crumbs([['Overview']]);
  const info = await GW.get('/');
  if (!GW.alive(seq)) return;
  document.getElementById('node-name').textContent = info.hostname || '';
  const conf = info.configuration || {};
  const pids = info.pids || {};
  const stats = h('div', {class: 'stats', id: 'node-stats'});
  const workers = h('div', {id: 'workers'});
  const memory = h('div', {id: 'memory'});
  const counts = h('div', {class: 'stats', id: 'entity-counts'});
  main.replaceChildren(
    GW.pageHead('Overview', `Node ${info.hostname || ''} · Kong Admin API ${info.version || '?'} · gateway ${info.gateway_version || '?'}`),
    h('div', {class: 'cols'},
      GW.card('Node', GW.kv([
        ['Hostname', info.hostname], ['Node ID', info.node_id], ['Version', info.version],
        ['Gateway version', info.gateway_version], ['Master pid', pids.master],
        ['Worker processes', conf.worker_processes], ['Database', conf.database],
        ['Proxy listen', conf.proxy_listen], ['Admin listen', conf.admin_listen],
        ['Plugins available', Object.keys((info.plugins || {}).available_on_server || {}).length],
        ['Plugins configured', GW.join((info.plugins || {}).enabled_in_cluster)],
      ])),
      h('div', {}, GW.card('Traffic', stats), GW.card('Configuration', counts))),
    GW.card('Workers', workers),
    GW.card('Memory', memory));

  GW.list('/services').then(async (svcs) => {
    const kinds = [['Services', '/services', svcs.length], ['Routes', '/routes'], ['Upstreams', '/upstreams'],
      ['Consumers', '/consumers'], ['Plugins', '/plugins']];
    for (const k of kinds) if (k[2] === undefined) k[2] = (await GW.list(k[1])).length;
    if (!GW.alive(seq)) return;
    counts.replaceChildren(...kinds.map(([t, href, n]) =>
      h('a', {class: 'stat-box link', href, 'data-link': true}, h('div', {class: 'num', text: GW.fmtNum(n)}), h('div', {class: 'lbl', text: t}))));
  }).catch(() => {});

  let last = null;
  GW.every(2000, async () => {
    const st = await GW.get('/status');
    if (!GW.alive(seq)) return;
    const s = st.server || {};
    const now = performance.now();
    let rate = '–';
    if (last && typeof s.total_requests === 'number') {
      rate = Math.max(0, (s.total_requests - last.total) / ((now - last.t) / 1000)).toFixed(1);
    }
    last = {t: now, total: s.total_requests};
    const box = (id, label, value) => h('div', {class: 'stat-box', id}, h('div', {class: 'num', text: value}), h('div', {class: 'lbl', text: label}));
    stats.replaceChildren(...[
      box('stat-requests', 'Total requests', GW.fmtNum(s.total_requests)),
      box('stat-rps', 'Requests/s', rate),
      box('stat-active', 'Active connections', GW.fmtNum(s.connections_active)),
      box('stat-accepted', 'Accepted connections', GW.fmtNum(s.connections_accepted)),
      box('stat-generation', 'Configuration generation', GW.fmtNum(s.config_generation)),
      box('stat-uptime', 'Uptime', typeof s.uptime_seconds === 'number' ? GW.fmtDuration(s.uptime_seconds) : '–'),
      st.database ? box('stat-db', 'Database', st.database.reachable ? 'reachable' : 'unreachable') : null,
      st.configuration_hash ? box('stat-hash', 'Configuration hash', st.configuration_hash.slice(0, 12)) : null,
    ].filter(Boolean));
    const ws = s.workers || [];
    workers.replaceChildren(GW.table([
      {title: 'PID', cell: (w) => String(w.pid)},
      {title: 'Requests', cell: (w) => GW.fmtNum(w.requests), class: 'num'},
      {title: 'Active connections', cell: (w) => GW.fmtNum(w.connections_active), class: 'num'},
      {title: 'Accepted connections', cell: (w) => GW.fmtNum(w.connections_accepted), class: 'num'},
      {title: 'Configuration generation', cell: (w) => GW.fmtNum(w.config_generation), class: 'num'},
      {title: 'Heartbeat', cell: (w) => (typeof w.heartbeat_age_ms === 'number' ? w.heartbeat_age_ms + ' ms ago' : '–')},
    ], ws, null, 'No worker reports (GET /status has no per-worker rows).'));
    const mem = st.memory || {};
    const vms = mem.workers_lua_vms || [];
    const dicts = Object.entries(mem.lua_shared_dicts || {});
    memory.replaceChildren(
      h('h4', {text: 'Workers'}),
      GW.table([
        {title: 'PID', cell: (v) => String(v.pid)},
        {title: 'Allocated', cell: (v) => String(v.http_allocated_gc || v.allocated || '–'), class: 'num'},
      ], vms, null, 'Not reported by this node.'),
      h('h4', {text: 'Shared memory'}),
      GW.table([
        {title: 'Segment', cell: (d) => d[0]},
        {title: 'Allocated', cell: (d) => String(d[1].allocated_slabs || d[1].allocated || '–'), class: 'num'},
        {title: 'Capacity', cell: (d) => String(d[1].capacity || '–'), class: 'num'},
      ], dicts, null, 'Not reported by this node.'));
  });
};

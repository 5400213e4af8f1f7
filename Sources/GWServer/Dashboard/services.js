// Gateway Services (`/services`, `/services/{name or id}` with its routes, plugins and traffic
// chart) and Routes (`/routes`): lists, create/edit forms and deletes, all through the Admin API.
'use strict';

GW.views = GW.views || {};

GW.serviceFields = [
  {name: 'name', label: 'Name', placeholder: 'example-service'},
  {name: 'protocol', label: 'Protocol', type: 'select', options: ['http', 'https'], default: 'http'},   // what the data path proxies
  {name: 'host', label: 'Host', placeholder: 'upstream.example.com or an upstream name'},
  {name: 'port', label: 'Port', type: 'number', default: 80},
  {name: 'path', label: 'Path', placeholder: '/'},
  {name: 'retries', label: 'Retries', type: 'number', default: 5},
  {name: 'connect_timeout', label: 'Connect timeout (ms)', type: 'number', default: 60000},
  {name: 'write_timeout', label: 'Write timeout (ms)', type: 'number', default: 60000},
  {name: 'read_timeout', label: 'Read timeout (ms)', type: 'number', default: 60000},
  {name: 'tags', label: 'Tags', type: 'list'},
  {name: 'enabled', label: 'Enabled', type: 'bool', default: true},
];

GW.editService = function (svc, after) {
  GW.editEntity(svc ? 'Edit gateway service' : 'New gateway service', {fields: GW.serviceFields, initial: svc, edit: !!svc},
    (body) => (svc ? GW.api('PATCH', '/services/' + GW.enc(svc.id), body) : GW.api('POST', '/services', body)), after);
};

GW.views.services = async function (main, seq) {
  GW.crumbs([['Gateway Services']]);
  const svcs = await GW.list('/services');
  if (!GW.alive(seq)) return;
  main.replaceChildren(
    GW.pageHead('Gateway Services', 'A service is an upstream API the gateway proxies to.',
      [GW.filterBox('services'), h('button', {class: 'primary', id: 'new-service', text: 'New gateway service', onclick: () => GW.editService(null)})]),
    h('div', {class: 'card flush'}, GW.table([
      {title: 'Name', cell: (s) => h('a', {href: '/services/' + GW.enc(s.name || s.id), 'data-link': true, text: s.name || s.id})},
      {title: 'Protocol', cell: (s) => s.protocol},
      {title: 'Host', cell: (s) => s.host},
      {title: 'Port', cell: (s) => String(s.port)},
      {title: 'Path', cell: (s) => s.path},
      {title: 'Enabled', cell: (s) => GW.badge(s.enabled === false ? 'disabled' : 'enabled')},
      {title: 'Tags', cell: (s) => GW.tags(s.tags)},
      {title: '', cell: (s) => GW.rowActions(() => GW.editService(s),
        () => GW.confirmDelete('service ' + (s.name || s.id), () => GW.api('DELETE', '/services/' + GW.enc(s.id))))},
    ], svcs, (s) => GW.navigate('/services/' + GW.enc(s.name || s.id)), 'No gateway services yet: create one to proxy traffic.')));
};

GW.views.service = async function (main, seq, key) {
  GW.crumbs([['Gateway Services', '/services'], [key]]);
  const svc = await GW.get('/services/' + GW.enc(key));
  const [routes, plugins, info] = await Promise.all([
    GW.list('/services/' + GW.enc(svc.id) + '/routes'), GW.list('/services/' + GW.enc(svc.id) + '/plugins'), GW.get('/')]);
  if (!GW.alive(seq)) return;
  const title = svc.name || svc.id;
  main.replaceChildren(
    GW.pageHead(title, `${svc.protocol}://${svc.host}:${svc.port}${svc.path || ''}`, [
      h('button', {id: 'edit-service', text: 'Edit', onclick: () => GW.editService(svc, (s) => GW.navigate('/services/' + GW.enc(s.name || s.id)))}),
      h('button', {class: 'danger-outline', text: 'Delete', onclick: () => GW.confirmDelete('service ' + title,
        async () => { await GW.api('DELETE', '/services/' + GW.enc(svc.id)); history.replaceState(null, '', '/services'); })}),
    ]),
    GW.serviceChart(svc, info, seq),
    GW.card('Configuration', GW.kv([
      ['ID', svc.id], ['Name', svc.name], ['Protocol', svc.protocol], ['Host', svc.host], ['Port', String(svc.port)],
      ['Path', svc.path], ['Retries', String(svc.retries)], ['Connect / write / read timeout',
        `${svc.connect_timeout} / ${svc.write_timeout} / ${svc.read_timeout} ms`],
      ['Enabled', GW.badge(svc.enabled === false ? 'disabled' : 'enabled')], ['Tags', GW.tags(svc.tags)],
      ['Created', GW.fmtTime(svc.created_at)], ['Updated', GW.fmtTime(svc.updated_at)]], true)),
    h('section', {class: 'card flush'}, h('div', {class: 'card-head'}, h('h3', {text: 'Routes'}),
      h('button', {class: 'small primary', id: 'new-route', text: 'Add route', onclick: () => GW.editRoute(null, {service: {id: svc.id}})})),
      GW.routeTable(routes, {[svc.id]: svc})),
    h('section', {class: 'card flush'}, h('div', {class: 'card-head'}, h('h3', {text: 'Plugins'}),
      h('button', {class: 'small primary', text: 'Add plugin', onclick: () => GW.editPlugin(null, {service: {id: svc.id}})})),
      GW.pluginTable(plugins, {[svc.id]: title})));
};

// ---- routes -----------------------------------------------------------------------------------

GW.routeFields = async function () {
  const svcs = await GW.list('/services');
  return [
    {name: 'name', label: 'Name', placeholder: 'example-route'},
    {name: 'service', label: 'Gateway service', type: 'select', ref: true,
      options: [['', '(none)']].concat(svcs.map((s) => [s.id, s.name || s.host + ' (' + s.id.slice(0, 8) + ')']))},
    {name: 'protocols', label: 'Protocols', type: 'list', placeholder: 'http, https'},
    {name: 'methods', label: 'Methods', type: 'list', placeholder: 'GET, POST'},
    {name: 'hosts', label: 'Hosts', type: 'list', placeholder: 'example.com, *.example.org'},
    {name: 'paths', label: 'Paths', type: 'list', placeholder: '/api, ~/v[0-9]+/users'},
    {name: 'regex_priority', label: 'Regex priority', type: 'number', default: 0},
    {name: 'path_handling', label: 'Path handling', type: 'select', options: ['v0', 'v1'], default: 'v0'},
    {name: 'https_redirect_status_code', label: 'HTTPS redirect status code', type: 'select', options: ['426', '301', '302', '307', '308'], default: '426'},
    {name: 'tags', label: 'Tags', type: 'list'},
    {name: 'strip_path', label: 'Strip path', type: 'bool', default: true},
    {name: 'preserve_host', label: 'Preserve host', type: 'bool', default: false},
  ];
};

GW.editRoute = async function (route, preset) {
  const fields = await GW.routeFields();
  const initial = Object.assign({}, preset || {}, route || {});
  GW.editEntity(route ? 'Edit route' : 'New route', {fields, initial, edit: !!route}, (body) => {
    if (body.https_redirect_status_code) body.https_redirect_status_code = Number(body.https_redirect_status_code);
    return route ? GW.api('PATCH', '/routes/' + GW.enc(route.id), body) : GW.api('POST', '/routes', body);
  });
};

GW.routeTable = function (routes, svcById) {
  return GW.table([
    {title: 'Name', cell: (r) => r.name || r.id},
    {title: 'Service', cell: (r) => {
      const s = r.service && svcById[r.service.id];
      return r.service ? h('a', {href: '/services/' + GW.enc(s ? (s.name || s.id) : r.service.id), 'data-link': true,
        text: s ? (s.name || s.host) : r.service.id}) : '–';
    }},
    {title: 'Protocols', cell: (r) => GW.join(r.protocols)},
    {title: 'Methods', cell: (r) => GW.join(r.methods)},
    {title: 'Hosts', cell: (r) => GW.join(r.hosts)},
    {title: 'Paths', cell: (r) => GW.join(r.paths)},
    {title: 'Tags', cell: (r) => GW.tags(r.tags)},
    {title: '', cell: (r) => GW.rowActions(() => GW.editRoute(r),
      () => GW.confirmDelete('route ' + (r.name || r.id), () => GW.api('DELETE', '/routes/' + GW.enc(r.id))))},
  ], routes, null, 'No routes.');
};

GW.views.routes = async function (main, seq) {
  GW.crumbs([['Routes']]);
  const [routes, svcs] = await Promise.all([GW.list('/routes'), GW.list('/services')]);
  if (!GW.alive(seq)) return;
  const byId = Object.fromEntries(svcs.map((s) => [s.id, s]));
  main.replaceChildren(
    GW.pageHead('Routes', 'Routes match requests (protocols, methods, hosts, paths, headers) and send them to a service.',
      [GW.filterBox('routes'), h('button', {class: 'primary', id: 'new-route', text: 'New route', onclick: () => GW.editRoute(null)})]),
    h('div', {class: 'card flush'}, GW.routeTable(routes, byId)));
};

// Plugins (`/plugins`): every plugin instance with its scope (global, service, route, consumer), an
// enable switch (PATCH enabled), and the create/edit form: the plugin names the node has (GET /),
// the scope as references, `config` as JSON (Kong's field errors under it, e.g. `minute: ...`).
'use strict';

GW.views = GW.views || {};

GW.editPlugin = async function (plugin, preset) {
  const [info, svcs, routes, consumers] = await Promise.all([GW.get('/'), GW.list('/services'), GW.list('/routes'), GW.list('/consumers')]);
  const names = Object.keys((info.plugins || {}).available_on_server || {}).sort();
  const none = [['', '(all)']];
  const fields = [
    {name: 'name', label: 'Plugin', type: 'select', options: names, readonly: !!plugin},
    {name: 'service', label: 'Gateway service', type: 'select', ref: true, options: none.concat(svcs.map((s) => [s.id, s.name || s.host]))},
    {name: 'route', label: 'Route', type: 'select', ref: true, options: none.concat(routes.map((r) => [r.id, r.name || r.id]))},
    {name: 'consumer', label: 'Consumer', type: 'select', ref: true, options: none.concat(consumers.map((c) => [c.id, c.username || c.custom_id || c.id]))},
    {name: 'protocols', label: 'Protocols', type: 'list', placeholder: 'grpc, grpcs, http, https'},
    {name: 'config', label: 'Configuration (JSON)', type: 'json', rows: 10, default: '{}',
      help: 'The plugin\'s config object; fields left out take their defaults (GET /schemas/plugins/{name}).'},
    {name: 'tags', label: 'Tags', type: 'list'},
    {name: 'enabled', label: 'Enabled', type: 'bool', default: true},
  ];
  const initial = Object.assign({}, preset || {}, plugin || {});
  const form = GW.editEntity(plugin ? 'Edit plugin ' + plugin.name : 'New plugin', {fields, initial, edit: !!plugin},
    (body) => (plugin ? GW.api('PATCH', '/plugins/' + GW.enc(plugin.id), body) : GW.api('POST', '/plugins', body)));
  // The chosen plugin's config fields (GET /schemas/plugins/{name}) listed under the JSON input.
  const select = form.querySelector('#f-name');
  const help = h('div', {class: 'schema-help', id: 'config-fields'});
  form.querySelector('[data-field="config"]').appendChild(help);
  const show = async () => {
    const name = select.value;
    help.replaceChildren();
    if (!name) return;
    const schema = await GW.get('/schemas/plugins/' + GW.enc(name)).catch(() => null);
    if (!schema || select.value !== name) return;
    const cfg = (schema.fields || []).map((f) => f.config).find(Boolean);
    const rows = ((cfg && cfg.fields) || []).map((f) => {
      const [k, d] = Object.entries(f)[0];
      const extra = [d.type, d.required ? 'required' : null, d.default !== undefined ? 'default ' + JSON.stringify(d.default) : null,
        d.one_of ? 'one of ' + d.one_of.join(' | ') : null].filter(Boolean).join(', ');
      return h('div', {}, h('code', {text: k}), ' ', h('span', {class: 'muted', text: extra}));
    });
    if (rows.length) help.append(h('div', {class: 'help', text: name + ' config fields:'}), ...rows);
  };
  select.addEventListener('change', show);
  show();
};

// names: id → label of the services, routes and consumers the caller loaded (ids shown otherwise).
GW.pluginScope = function (p, names) {
  const n = (ref) => (names && names[ref.id]) || ref.id.slice(0, 8);
  const parts = [];
  if (p.service) parts.push(h('a', {href: '/services/' + GW.enc(p.service.id), 'data-link': true, text: 'service ' + n(p.service)}));
  if (p.route) parts.push(h('span', {text: 'route ' + n(p.route)}));
  if (p.consumer) parts.push(h('a', {href: '/consumers/' + GW.enc(p.consumer.id), 'data-link': true, text: 'consumer ' + n(p.consumer)}));
  return parts.length ? h('span', {class: 'scope'}, parts.flatMap((x, i) => (i ? [' + ', x] : [x]))) : h('span', {class: 'tag global', text: 'global'});
};

GW.pluginTable = function (plugins, names) {
  return GW.table([
    {title: 'Plugin', cell: (p) => h('strong', {text: p.name})},
    {title: 'Applied to', cell: (p) => GW.pluginScope(p, names)},
    {title: 'Protocols', cell: (p) => GW.join(p.protocols)},
    {title: 'Enabled', cell: (p) => h('label', {class: 'switch'},
      h('input', {type: 'checkbox', checked: p.enabled !== false, 'aria-label': 'enabled', onchange: async (e) => {
        try {
          await GW.api('PATCH', '/plugins/' + GW.enc(p.id), {enabled: e.target.checked});
          GW.toast(p.name + (e.target.checked ? ' enabled' : ' disabled'));
        } catch (err) { e.target.checked = !e.target.checked; GW.toast(err.message, 'bad'); }
      }}), h('span', {class: 'slider'}))},
    {title: 'Tags', cell: (p) => GW.tags(p.tags)},
    {title: '', cell: (p) => GW.rowActions(() => GW.editPlugin(p),
      () => GW.confirmDelete('plugin ' + p.name, () => GW.api('DELETE', '/plugins/' + GW.enc(p.id))))},
  ], plugins, null, 'No plugins.');
};

GW.views.plugins = async function (main, seq) {
  GW.crumbs([['Plugins']]);
  const [plugins, svcs, routes, consumers] = await Promise.all([GW.list('/plugins'), GW.list('/services'), GW.list('/routes'), GW.list('/consumers')]);
  if (!GW.alive(seq)) return;
  const names = {};
  svcs.forEach((x) => { names[x.id] = x.name || x.host; });
  routes.forEach((x) => { names[x.id] = x.name || x.id.slice(0, 8); });
  consumers.forEach((x) => { names[x.id] = x.username || x.custom_id || x.id.slice(0, 8); });
  main.replaceChildren(
    GW.pageHead('Plugins', 'Plugins run on requests: globally, or scoped to a service, a route or a consumer.',
      [GW.filterBox('plugins'), h('button', {class: 'primary', id: 'new-plugin', text: 'New plugin', onclick: () => GW.editPlugin(null)})]),
    h('div', {class: 'card flush'}, GW.pluginTable(plugins, names)));
};

// Consumers (`/consumers`, `/consumers/{username or id}`): list, create/edit/delete, and each
// consumer's credentials (key-auth keys, basic-auth users, ACL groups) and plugins.
'use strict';

GW.views = GW.views || {};

GW.consumerFields = [
  {name: 'username', label: 'Username'},
  {name: 'custom_id', label: 'Custom ID'},
  {name: 'tags', label: 'Tags', type: 'list'},
];

GW.editConsumer = function (c, after) {
  GW.editEntity(c ? 'Edit consumer' : 'New consumer', {fields: GW.consumerFields, initial: c, edit: !!c},
    (body) => (c ? GW.api('PATCH', '/consumers/' + GW.enc(c.id), body) : GW.api('POST', '/consumers', body)), after);
};

GW.views.consumers = async function (main, seq) {
  GW.crumbs([['Consumers']]);
  const list = await GW.list('/consumers');
  if (!GW.alive(seq)) return;
  main.replaceChildren(
    GW.pageHead('Consumers', 'Consumers are the users and applications that call your services; credentials identify them.',
      [GW.filterBox('consumers'), h('button', {class: 'primary', id: 'new-consumer', text: 'New consumer', onclick: () => GW.editConsumer(null)})]),
    h('div', {class: 'card flush'}, GW.table([
      {title: 'Username', cell: (c) => h('a', {href: '/consumers/' + GW.enc(c.username || c.id), 'data-link': true, text: c.username || '–'})},
      {title: 'Custom ID', cell: (c) => c.custom_id},
      {title: 'Tags', cell: (c) => GW.tags(c.tags)},
      {title: 'Created', cell: (c) => GW.fmtTime(c.created_at)},
      {title: '', cell: (c) => GW.rowActions(() => GW.editConsumer(c),
        () => GW.confirmDelete('consumer ' + (c.username || c.custom_id || c.id), () => GW.api('DELETE', '/consumers/' + GW.enc(c.id))))},
    ], list, (c) => GW.navigate('/consumers/' + GW.enc(c.username || c.id)), 'No consumers yet.')));
};

// One credential kind: its Admin API path under the consumer, the form fields and the columns.
GW.credentialKinds = [
  {path: 'key-auth', title: 'Key authentication', fields: [
    {name: 'key', label: 'Key', help: 'Left empty, the gateway generates one.'}, {name: 'tags', label: 'Tags', type: 'list'}],
    cols: [['Key', (k) => h('code', {text: k.key})]]},
  {path: 'basic-auth', title: 'Basic authentication', fields: [
    {name: 'username', label: 'Username'}, {name: 'password', label: 'Password', type: 'password'}, {name: 'tags', label: 'Tags', type: 'list'}],
    cols: [['Username', (k) => k.username], ['Password (hashed)', (k) => h('code', {text: String(k.password || '').slice(0, 16) + '…'})]]},
  {path: 'acls', title: 'ACL groups', fields: [{name: 'group', label: 'Group'}, {name: 'tags', label: 'Tags', type: 'list'}],
    cols: [['Group', (k) => k.group]]},
];

GW.views.consumer = async function (main, seq, key) {
  GW.crumbs([['Consumers', '/consumers'], [key]]);
  const c = await GW.get('/consumers/' + GW.enc(key));
  const base = '/consumers/' + GW.enc(c.id);
  const creds = await Promise.all(GW.credentialKinds.map((k) => GW.list(base + '/' + k.path).catch(() => null)));
  const plugins = await GW.list(base + '/plugins').catch(() => []);
  if (!GW.alive(seq)) return;
  const title = c.username || c.custom_id || c.id;
  main.replaceChildren(
    GW.pageHead(title, 'Consumer ' + c.id, [
      h('button', {text: 'Edit', onclick: () => GW.editConsumer(c, (x) => GW.navigate('/consumers/' + GW.enc(x.username || x.id)))}),
      h('button', {class: 'danger-outline', text: 'Delete', onclick: () => GW.confirmDelete('consumer ' + title,
        async () => { await GW.api('DELETE', base); history.replaceState(null, '', '/consumers'); })}),
    ]),
    GW.card('Consumer', GW.kv([['ID', c.id], ['Username', c.username], ['Custom ID', c.custom_id], ['Tags', GW.tags(c.tags)],
      ['Created', GW.fmtTime(c.created_at)]])),
    ...GW.credentialKinds.map((k, i) => creds[i] === null ? '' : h('section', {class: 'card flush', 'data-credentials': k.path},
      h('div', {class: 'card-head'}, h('h3', {text: `${k.title} (${creds[i].length})`}),
        h('button', {class: 'small primary', text: 'New credential', onclick: () =>
          GW.editEntity('New ' + k.title.toLowerCase() + ' credential', {fields: k.fields}, (body) => GW.api('POST', base + '/' + k.path, body))})),
      GW.table(k.cols.map(([t, f]) => ({title: t, cell: f})).concat([
        {title: 'Tags', cell: (x) => GW.tags(x.tags)},
        {title: 'Created', cell: (x) => GW.fmtTime(x.created_at)},
        {title: '', cell: (x) => GW.rowActions(null, () => GW.confirmDelete(k.title.toLowerCase() + ' credential',
          () => GW.api('DELETE', base + '/' + k.path + '/' + GW.enc(x.id))))},
      ]), creds[i], null, 'None.'))),
    h('section', {class: 'card flush'}, h('div', {class: 'card-head'}, h('h3', {text: 'Plugins'}),
      h('button', {class: 'small primary', text: 'Add plugin', onclick: () => GW.editPlugin(null, {consumer: {id: c.id}})})),
      GW.pluginTable(plugins, {[c.id]: title})));
};

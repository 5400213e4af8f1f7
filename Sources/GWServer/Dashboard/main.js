// The view table (each URL the listener serves as this page → the function that renders it) and
// the start: render the view the address bar names, then follow links and history.
'use strict';

GW.routes = [
  [/^\/$/, 'overview', GW.views.overview],
  [/^\/services$/, 'services', GW.views.services],
  [/^\/services\/([^/]+)$/, 'services', GW.views.service],
  [/^\/routes$/, 'routes', GW.views.routes],
  [/^\/upstreams$/, 'upstreams', GW.views.upstreams],
  [/^\/upstreams\/([^/]+)$/, 'upstreams', GW.views.upstream],
  [/^\/consumers$/, 'consumers', GW.views.consumers],
  [/^\/consumers\/([^/]+)$/, 'consumers', GW.views.consumer],
  [/^\/plugins$/, 'plugins', GW.views.plugins],
];

GW.get('/').then((info) => { document.getElementById('node-name').textContent = info.hostname || ''; }).catch(() => {});
GW.render();

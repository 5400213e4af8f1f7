// The per-service traffic chart: scrapes GET /metrics (through /api/, Prometheus text format) every
// 2 s and draws requests/s by status class (kong_http_requests_total) and latency percentiles
// (kong_request_latency_ms histogram, interpolated inside buckets as histogram_quantile does) on
// canvases. Without the prometheus plugin it says so instead of requesting a /metrics that is not
// there (GET / lists the plugins the node has and the ones configured).
'use strict';

GW.metrics = {};

// Prometheus text exposition → [{name, labels, value}] (comments skipped, label escapes honoured).
GW.metrics.parse = function (text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    let i = 0;
    while (i < line.length && line[i] !== '{' && line[i] !== ' ') i++;
    const name = line.slice(0, i);
    const labels = {};
    if (line[i] === '{') {
      i++;
      while (i < line.length && line[i] !== '}') {
        const eq = line.indexOf('=', i);
        if (eq < 0) break;
        const key = line.slice(i, eq).trim();
        i = eq + 2;   // past ="
        let v = '';
        while (i < line.length && line[i] !== '"') {
          if (line[i] === '\\' && i + 1 < line.length) {
            const c = line[i + 1];
            v += c === 'n' ? '\n' : c;
            i += 2;
          } else { v += line[i++]; }
        }
        labels[key] = v;
        i++;   // closing quote
        if (line[i] === ',') i++;
      }
      i++;   // }
    }
    const value = parseFloat(line.slice(i).trim().split(/\s+/)[0]);
    if (name && !Number.isNaN(value)) out.push({name, labels, value});
  }
  return out;
};

// One scrape reduced to one service: counts by status class and latency buckets (summed over routes).
GW.metrics.sample = function (series, service) {
  const s = {t: performance.now(), classes: {'2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, other: 0}, buckets: new Map(), found: false};
  for (const m of series) {
    if (m.labels.service !== service) continue;
    if (m.name === 'kong_http_requests_total') {
      const c = (m.labels.code || '')[0] + 'xx';
      s.classes[c in s.classes ? c : 'other'] += m.value;
      s.found = true;
    } else if (m.name === 'kong_request_latency_ms_bucket') {
      const le = m.labels.le === '+Inf' ? Infinity : parseFloat(m.labels.le);
      s.buckets.set(le, (s.buckets.get(le) || 0) + m.value);
      s.found = true;
    }
  }
  return s;
};

// Quantile q of the requests between two samples (null when none).
GW.metrics.quantile = function (a, b, q) {
  const les = [...b.buckets.keys()].sort((x, y) => x - y);
  if (!les.length) return null;
  const cum = les.map((le) => Math.max(0, b.buckets.get(le) - (a.buckets.get(le) || 0)));
  const total = cum[cum.length - 1];
  if (!(total > 0)) return null;
  const target = q * total;
  let prevLe = 0, prevCum = 0;
  for (let i = 0; i < les.length; i++) {
    if (cum[i] >= target) {
      if (les[i] === Infinity) return prevLe;
      const span = cum[i] - prevCum;
      return span > 0 ? prevLe + (les[i] - prevLe) * (target - prevCum) / span : les[i];
    }
    prevLe = les[i]; prevCum = cum[i];
  }
  return prevLe;
};

GW.metrics.colors = {'2xx': '#0a9e6e', '3xx': '#1155cb', '4xx': '#e8910c', '5xx': '#d63a3a', other: '#8391a7',
  p50: '#1155cb', p95: '#8a4fff', p99: '#d63a3a'};

// Draws series [{label, values (null = gap)}] on a canvas; stacked areas or lines.
GW.metrics.draw = function (canvas, series, opts) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 600, hgt = canvas.clientHeight || 160;
  canvas.width = w * dpr; canvas.height = hgt * dpr;
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, hgt);
  const padL = 48, padB = 18, padT = 8, padR = 8;
  const n = opts.points;
  const stacks = series.map(() => new Array(n).fill(null));
  let max = 0;
  for (let i = 0; i < n; i++) {
    let acc = 0;
    series.forEach((s, k) => {
      const v = s.values[i];
      if (v === null || v === undefined) return;
      acc = opts.stacked ? acc + v : v;
      stacks[k][i] = acc;
      max = Math.max(max, acc);
    });
  }
  max = max > 0 ? niceMax(max) : 1;
  const x = (i) => padL + (w - padL - padR) * (n > 1 ? i / (n - 1) : 0);
  const y = (v) => padT + (hgt - padT - padB) * (1 - v / max);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#6c7489'; g.strokeStyle = '#e7eaf0'; g.lineWidth = 1;
  for (let k = 0; k <= 4; k++) {
    const v = max * k / 4, yy = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(padL, yy); g.lineTo(w - padR, yy); g.stroke();
    g.fillText(fmtAxis(v) + (opts.unit || ''), 4, yy + 4);
  }
  g.fillText('−' + Math.round(opts.seconds) + ' s', padL, hgt - 4);
  g.fillText('now', w - padR - 22, hgt - 4);
  for (let k = series.length - 1; k >= 0; k--) {
    const col = GW.metrics.colors[series[k].label] || '#444';
    g.strokeStyle = col; g.lineWidth = 2;
    g.beginPath();
    let open = false;
    for (let i = 0; i < n; i++) {
      const v = stacks[k][i];
      if (v === null) { open = false; continue; }
      if (!open) { g.moveTo(x(i), y(v)); open = true; } else g.lineTo(x(i), y(v));
    }
    g.stroke();
    g.fillStyle = col;   // a point with no neighbour (a gap on both sides) is drawn as a dot
    for (let i = 0; i < n; i++) {
      const v = stacks[k][i];
      if (v !== null && (i === 0 || stacks[k][i - 1] === null) && (i === n - 1 || stacks[k][i + 1] === null)) {
        g.beginPath(); g.arc(x(i), y(v), 2.5, 0, 2 * Math.PI); g.fill();
      }
    }
    if (opts.stacked) {
      g.globalAlpha = 0.18; g.fillStyle = col;
      for (let i = 1; i < n; i++) {
        if (stacks[k][i] === null || stacks[k][i - 1] === null) continue;
        const below = (j) => (k > 0 && stacks[k - 1][j] !== null ? stacks[k - 1][j] : 0);
        g.beginPath();
        g.moveTo(x(i - 1), y(stacks[k][i - 1])); g.lineTo(x(i), y(stacks[k][i]));
        g.lineTo(x(i), y(below(i))); g.lineTo(x(i - 1), y(below(i - 1))); g.closePath(); g.fill();
      }
      g.globalAlpha = 1;
    }
  }
  function niceMax(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function fmtAxis(v) { return v >= 100 ? Math.round(v) : v >= 10 ? v.toFixed(0) : v.toFixed(v ? 1 : 0); }
};

// The chart card of a service (service name or host = Kong's `service` label).
GW.serviceChart = function (svc, nodeInfo, seq) {
  const label = svc.name || svc.host;
  const note = h('div', {class: 'chart-note', id: 'chart-note'});
  const legend = h('div', {class: 'legend', id: 'chart-legend'});
  const rps = h('canvas', {class: 'plot', id: 'chart-requests', 'aria-label': 'requests per second by status class'});
  const lat = h('canvas', {class: 'plot', id: 'chart-latency', 'aria-label': 'latency percentiles'});
  const card = h('section', {class: 'card chart', id: 'traffic-chart'},
    h('h3', {text: 'Traffic'}), note, legend,
    h('div', {class: 'plots'},
      h('div', {}, h('div', {class: 'plot-title', text: 'Requests/s by status class'}), rps),
      h('div', {}, h('div', {class: 'plot-title', text: 'Latency percentiles (ms, kong_request_latency_ms)'}), lat)));
  const plugins = (nodeInfo && nodeInfo.plugins) || {};
  const available = plugins.available_on_server && ('prometheus' in plugins.available_on_server);
  const enabled = (plugins.enabled_in_cluster || []).includes('prometheus');
  if (!available) {
    card.dataset.state = 'no-metrics';
    note.append('Enable the prometheus plugin to chart this service: this node serves no /metrics (the plugin is not available on this server).');
    return card;
  }
  if (!enabled) {
    card.dataset.state = 'not-enabled';
    note.append('Enable the prometheus plugin (status_code_metrics and latency_metrics on), globally or on this service, to chart its requests/s, status classes and latency percentiles. ',
      h('button', {type: 'button', class: 'small primary', id: 'enable-prometheus', text: 'Enable on this service', onclick: async () => {
        try {
          await GW.api('POST', '/services/' + GW.enc(svc.id) + '/plugins',
            {name: 'prometheus', config: {status_code_metrics: true, latency_metrics: true}});
          GW.toast('prometheus enabled on ' + label);
          GW.render();
        } catch (e) { note.appendChild(GW.errorBox(e)); }
      }}));
    return card;
  }
  card.dataset.state = 'live';
  const points = 60, period = 2000;   // the last 2 minutes
  const hist = {'2xx': [], '3xx': [], '4xx': [], '5xx': [], p50: [], p95: [], p99: []};
  let prev = null;
  const push = (k, v) => { hist[k].push(v); if (hist[k].length > points) hist[k].shift(); };
  const pad = (arr) => new Array(points - arr.length).fill(null).concat(arr);
  GW.every(period, async () => {
    const r = await GW.request('GET', '/metrics', undefined, 'text/plain');
    if (!GW.alive(seq)) return;
    if (!r.ok) { note.textContent = 'GET /metrics answered ' + r.status + '.'; return; }
    const cur = GW.metrics.sample(GW.metrics.parse(await r.text()), label);
    if (prev) {
      const dt = Math.max(0.001, (cur.t - prev.t) / 1000);
      let total = 0;
      for (const c of ['2xx', '3xx', '4xx', '5xx']) {
        const v = Math.max(0, cur.classes[c] - prev.classes[c]) / dt;
        total += v;
        push(c, v);
      }
      const q = {p50: GW.metrics.quantile(prev, cur, 0.5), p95: GW.metrics.quantile(prev, cur, 0.95), p99: GW.metrics.quantile(prev, cur, 0.99)};
      for (const k of ['p50', 'p95', 'p99']) push(k, q[k]);
      legend.replaceChildren(
        h('span', {class: 'stat', id: 'chart-rps', 'data-value': total.toFixed(2)}, h('b', {text: total.toFixed(1)}), ' req/s'),
        ...['2xx', '3xx', '4xx', '5xx'].map((c) => h('span', {class: 'stat'}, h('i', {class: 'swatch c' + c}), c + ' ' + hist[c][hist[c].length - 1].toFixed(1))),
        ...['p50', 'p95', 'p99'].map((k) => h('span', {class: 'stat'}, h('i', {class: 'swatch ' + k}), k + ' ' + (q[k] === null ? '–' : q[k].toFixed(0) + ' ms'))));
      note.textContent = cur.found ? '' : 'No requests recorded for ' + label + ' yet (the plugin counts requests with status_code_metrics, latencies with latency_metrics).';
    } else {
      note.textContent = 'Collecting: the first rates appear after the second scrape.';
    }
    prev = cur;
    const secs = points * period / 1000;
    GW.metrics.draw(rps, ['2xx', '3xx', '4xx', '5xx'].map((c) => ({label: c, values: pad(hist[c])})), {stacked: true, points, seconds: secs, unit: ''});
    GW.metrics.draw(lat, ['p50', 'p95', 'p99'].map((k) => ({label: k, values: pad(hist[k])})), {stacked: false, points, seconds: secs, unit: ''});
  });
  return card;
};

/* app.js: the operator's console. Plain DOM, no framework, no markup from
 * data: every value is put in the page with textContent (el() below), so a
 * device id, version or report text is always shown as text. The admin
 * token lives in this tab's sessionStorage and goes out as a bearer token
 * on each request; the live events come from /api/v1/events, read with
 * fetch() (EventSource cannot send the token). */
'use strict';
(function () {
  const TOKEN_KEY = 'dfotad.token';
  const PAGE = 50;
  const $ = (id) => document.getElementById(id);
  const viewEl = $('view');
  let token = sessionStorage.getItem(TOKEN_KEY);
  let current = null; /* the view on show: {onEvent, onStats, dispose} */
  let stream = null;

  /* ---- small helpers ----------------------------------------------------- */

  /* el('td', {class: 'num'}, 'text', child...): strings become text nodes */
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of kids.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const txt = (v) => (v === null || v === undefined || v === '' ? '—' : String(v));
  const pill = (s) => el('span', { class: 'pill s-' + String(s).replace(/[^a-z_]/g, '') }, txt(s));
  const link = (href, text) => el('a', { href: href }, txt(text));
  const enc = encodeURIComponent;
  function bytes(n) {
    if (n === null || n === undefined) return '—';
    return n >= 1024 ? window.PathGraph.size(n) : n + ' B';
  }
  function when(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }
  function card(title, ...kids) {
    return el('section', { class: 'card' }, title ? el('h2', {}, title) : null, ...kids);
  }
  /* heads: "#Name" for a number column; body: rows, or a tbody to fill later */
  function table(heads, body) {
    return el('table', {},
      el('thead', {}, el('tr', {}, heads.map((h) =>
        el('th', { class: h.startsWith('#') ? 'num' : '' }, h.replace(/^#/, ''))))),
      body instanceof Node ? body : el('tbody', {}, body));
  }
  function debounce(fn, ms) {
    let t = null;
    return () => {
      if (t) return;
      t = setTimeout(() => { t = null; fn(); }, ms);
    };
  }
  /* a stacked bar: parts [[class, n], ...] of total */
  function bar(parts, total, label) {
    const b = el('div', { class: 'bar', role: 'img', 'aria-label': label || '' });
    for (const [cls, n] of parts) {
      if (!n || !total) continue;
      const s = el('span', { class: 'b-' + cls, title: cls + ': ' + n });
      s.style.width = (100 * n / total).toFixed(3) + '%'; /* CSSOM: allowed by the CSP */
      b.appendChild(s);
    }
    return b;
  }

  /* ---- the API --------------------------------------------------------------- */

  class ApiError extends Error {
    constructor(status, body) {
      const e = body && body.error ? body.error : { code: 'http_' + status, message: 'HTTP ' + status };
      super(e.message);
      this.status = status;
      this.code = e.code;
    }
  }

  async function api(method, path, body) {
    const opts = { method: method, headers: { Authorization: 'Bearer ' + token } };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (r.status === 401) { logout('The token was refused.'); throw new ApiError(401, data); }
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }

  /* ---- the live stream ---------------------------------------------------- */

  /* Server-Sent Events over fetch: the same framing as EventSource, with the
   * token in a header, and Last-Event-ID on reconnection. */
  function startStream() {
    let lastId = null, stopped = false, ctrl = null, delay = 500;
    const live = $('live');
    const run = async () => {
      while (!stopped) {
        ctrl = new AbortController();
        try {
          const h = { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' };
          if (lastId !== null) h['Last-Event-ID'] = lastId;
          const r = await fetch('/api/v1/events', { headers: h, signal: ctrl.signal });
          if (r.status === 401) { logout('The token was refused.'); return; }
          if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
          live.classList.remove('off');
          delay = 500;
          const reader = r.body.getReader(), dec = new TextDecoder();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += dec.decode(value, { stream: true });
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, i);
              buf = buf.slice(i + 2);
              let ev = 'message', data = '', id = null;
              for (const line of block.split('\n')) {
                if (line.startsWith(':')) continue;
                const c = line.indexOf(':');
                const f = c < 0 ? line : line.slice(0, c);
                const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
                if (f === 'event') ev = v;
                else if (f === 'data') data += (data ? '\n' : '') + v;
                else if (f === 'id') id = v;
              }
              if (id !== null) lastId = id;
              if (data) deliver(ev, data);
            }
          }
        } catch (e) {
          if (stopped) return;
        }
        live.classList.add('off');
        await new Promise((res) => setTimeout(res, delay));
        delay = Math.min(delay * 2, 10000);
      }
    };
    run();
    return { stop: () => { stopped = true; if (ctrl) ctrl.abort(); } };
  }

  function deliver(kind, data) {
    let d;
    try { d = JSON.parse(data); } catch (e) { return; }
    if (!current) return;
    if (kind === 'stats') { noteStats(d); if (current.onStats) current.onStats(d); return; }
    if (kind === 'gap') { if (current.refresh) current.refresh(); return; }
    if (current.onEvent) current.onEvent(d);
  }

  /* bytes per second per protocol, from the stats ticks */
  const rates = { prev: null, perProto: {} };
  function noteStats(s) {
    const now = performance.now();
    if (rates.prev) {
      const dt = (now - rates.prev.t) / 1000;
      for (const p in s.transfers) {
        const before = rates.prev.s.transfers[p] ? rates.prev.s.transfers[p].bytes_sent : 0;
        rates.perProto[p] = dt > 0 ? Math.max(0, (s.transfers[p].bytes_sent - before) / dt) : 0;
      }
    }
    rates.prev = { t: now, s: s };
  }

  /* ---- login --------------------------------------------------------------- */

  function logout(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (stream) { stream.stop(); stream = null; }
    $('nav').hidden = $('logout').hidden = $('live').hidden = true;
    viewEl.replaceChildren();
    $('login').hidden = false;
    $('login-error').textContent = message || '';
  }

  async function login(t) {
    token = t;
    try {
      await api('GET', '/api/v1/overview');
    } catch (e) {
      if (e.status !== 401) logout('Cannot reach the admin API: ' + e.message);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, t);
    $('login').hidden = true;
    $('nav').hidden = $('logout').hidden = $('live').hidden = false;
    stream = startStream();
    route();
  }

  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    login($('token').value.trim());
    $('token').value = '';
  });
  $('logout').addEventListener('click', () => logout(''));

  /* ---- routing --------------------------------------------------------- */

  function parseHash() {
    const h = location.hash.replace(/^#\/?/, '');
    const [path, query] = h.split('?');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    return { parts: parts, query: new URLSearchParams(query || '') };
  }

  async function route() {
    if (!token) return;
    if (current && current.dispose) current.dispose();
    current = null;
    const { parts, query } = parseHash();
    const name = parts[0] || 'overview';
    for (const a of document.querySelectorAll('#nav a'))
      a.classList.toggle('on', a.dataset.view === name);
    const views = { overview: overview, rollouts: parts[1] ? rolloutPage : rollouts,
      devices: parts[1] ? devicePage : devices, packages: packages };
    const v = views[name] || overview;
    const me = { refresh: null };
    current = me;
    viewEl.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
    try {
      await v(me, parts[1], query);
    } catch (e) {
      if (current === me && e.status !== 401)
        viewEl.replaceChildren(card('Error', el('p', { class: 'error' }, e.message)));
    }
  }
  window.addEventListener('hashchange', route);

  /* ---- overview ------------------------------------------------------------- */

  async function overview(me) {
    const transfersBody = el('tbody');
    const draw = async () => {
      const o = await api('GET', '/api/v1/overview');
      if (current !== me) return;
      const states = Object.entries(o.by_state);
      const stateCard = card('Devices by state (' + o.devices + ', ' + new Date(o.as_of).toLocaleTimeString() + ')',
        bar(states.map(([s, n]) => [s === 'idle' ? 'pending' : s, n]), o.devices, 'devices by state'),
        table(['State', '#Devices'], states.filter(([, n]) => n > 0).map(([s, n]) =>
          el('tr', {}, el('td', {}, link('#/devices?state=' + enc(s), s)), el('td', { class: 'num' }, n)))));
      const models = Object.entries(o.models).map(([m, v]) => card('Model ' + m + ' (' + v.devices + ')',
        table(['Version', '#Devices'], Object.entries(v.versions).sort((a, b) => b[1] - a[1]).map(([ver, n]) =>
          el('tr', {}, el('td', { class: 'mono' },
            m === 'other' || ver === 'other' || ver === 'unknown' ? ver
              : link('#/devices?model=' + enc(m) + '&version=' + enc(ver), ver)),
          el('td', { class: 'num' }, n))))));
      const transfers = card('Transfers in flight', table(['Protocol', '#In flight', '#Bytes/s', '#Sent'], transfersBody));
      fillTransfers(o.transfers);
      const running = card('Rollouts running (' + o.running.length + ')',
        o.running.length ? table(['Rollout', 'State', 'Wave', '#Done'], o.running.map((r) =>
          el('tr', {}, el('td', {}, link('#/rollouts/' + enc(r.id), r.name)), el('td', {}, pill(r.state)),
            el('td', {}, r.wave + ' of ' + r.waves), el('td', { class: 'num' }, r.succeeded + ' / ' + r.devices))))
          : el('p', { class: 'muted' }, 'None.'));
      const alarms = card('Alarms (' + o.alarms.length + ')',
        o.alarms.length ? o.alarms.map((a) => el('div', { class: 'alarm' },
          link('#/rollouts/' + enc(a.rollout), a.name), ': ', a.reason))
          : el('p', { class: 'muted' }, 'No rollout is paused.'));
      viewEl.replaceChildren(el('h1', {}, 'Overview'),
        el('div', { class: 'grid' }, alarms, running, stateCard, transfers), el('div', { class: 'grid' }, models));
    };
    const fillTransfers = (t) => {
      transfersBody.replaceChildren(...Object.entries(t).map(([p, v]) => el('tr', {},
        el('td', {}, p), el('td', { class: 'num' }, v.in_flight),
        el('td', { class: 'num' }, bytes(Math.round(rates.perProto[p] || 0))),
        el('td', { class: 'num' }, bytes(v.bytes_sent)))));
    };
    /* the server counts the fleet at most every 2 s */
    const again = debounce(() => draw().catch(() => {}), 2000);
    me.refresh = again;
    /* only what changes these counts: not a report, an offer or an LwM2M exchange */
    const counts = new Set(['device.state', 'device.version', 'device.created', 'rollout', 'alarm']);
    me.onEvent = (e) => { if (counts.has(e.kind)) again(); };
    me.onStats = (s) => fillTransfers(s.transfers);
    await draw();
  }

  /* ---- rollouts ----------------------------------------------------------- */

  const ROLLOUT_FIELDS = [
    ['name', 'Name', 'text', true], ['model', 'Model', 'text', true],
    ['target_version', 'Target version', 'text', true],
    ['selector.group', 'Group (selector)', 'text'], ['selector.versions', 'From versions (comma-separated)', 'text'],
    ['selector.devices', 'Devices (comma-separated)', 'text'], ['selector.tags', 'Tags (comma-separated)', 'text'],
    ['waves', 'Waves, cumulative % (e.g. 10,50,100)', 'text'],
    ['success_threshold', 'Success threshold %', 'number'], ['max_failure_rate', 'Max failure rate %', 'number'],
    ['max_concurrent', 'Max concurrent (0: no limit)', 'number'], ['max_attempts', 'Max attempts', 'number'],
    ['timeout', 'Timeout (s)', 'number'], ['retry_backoff', 'Retry backoff (s)', 'number'],
    ['transport', 'Transport', 'select'],
  ];

  function rolloutForm(onCreated) {
    const inputs = {}, errs = {};
    const form = el('form', { class: 'form', novalidate: true });
    for (const [key, label, type, required] of ROLLOUT_FIELDS) {
      let input;
      if (type === 'select') {
        input = el('select', { name: key }, ['', 'http', 'https', 'coap', 'coaps', 'ftp', 'ftps'].map((v) =>
          el('option', { value: v }, v || '(the device\'s or the default)')));
      } else {
        input = el('input', { name: key, type: type === 'number' ? 'text' : 'text',
          inputmode: type === 'number' ? 'decimal' : null, required: required });
      }
      inputs[key] = input;
      errs[key] = el('span', { class: 'field-error', id: 'err-' + key.replace('.', '-'), role: 'alert' });
      input.setAttribute('aria-describedby', errs[key].id);
      form.appendChild(el('label', {}, label, input, errs[key]));
    }
    const formError = el('p', { class: 'error wide', role: 'alert' });
    form.appendChild(formError);
    form.appendChild(el('div', { class: 'actions wide' }, el('button', { type: 'submit' }, 'Create rollout')));
    const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      for (const k in inputs) { inputs[k].removeAttribute('aria-invalid'); errs[k].textContent = ''; }
      formError.textContent = '';
      const body = {}, sel = {};
      for (const [key, , type] of ROLLOUT_FIELDS) {
        const v = inputs[key].value.trim();
        if (v === '') continue;
        if (key.startsWith('selector.')) {
          const k = key.slice(9);
          sel[k] = k === 'group' ? v : list(v);
        } else if (key === 'waves') {
          body.waves = list(v).map((x) => (/^\d+$/.test(x) ? Number(x) : x));
        } else if (type === 'number') {
          body[key] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v; /* the server judges */
        } else body[key] = v;
      }
      if (Object.keys(sel).length) body.selector = sel;
      try {
        const r = await api('POST', '/api/v1/rollouts', body);
        onCreated(r);
      } catch (err) {
        /* the API's message names the field; show it there */
        const m = err.message || '';
        let field = null;
        const quoted = m.match(/'([a-z_.]+)'/);
        if (quoted && inputs[quoted[1]]) field = quoted[1];
        for (const [key] of ROLLOUT_FIELDS) {
          if (field) break;
          const words = [key, key.replace('selector.', 'selector.'), key.split('.').pop()];
          if (words.some((w) => new RegExp('(^|[^a-z_.])' + w.replace('.', '\\.') + '([^a-z_]|$)').test(m)))
            field = key;
        }
        if (!field && /wave/.test(m)) field = 'waves';
        if (!field && /selector/.test(m)) field = 'selector.group';
        if (field) {
          inputs[field].setAttribute('aria-invalid', 'true');
          errs[field].textContent = m;
          inputs[field].focus();
        } else formError.textContent = m;
      }
    });
    return form;
  }

  function rolloutProgress(r) {
    const c = r.counts || {};
    const total = r.devices || 0;
    return bar([['succeeded', c.succeeded], ['failed', c.failed], ['no_path', c.no_path],
      ['downloading', (c.downloading || 0) + (c.offered || 0)], ['updating', (c.downloaded || 0) + (c.updating || 0)]],
    total, 'progress');
  }

  async function rollouts(me) {
    const body = el('tbody'), info = el('span', { class: 'muted' });
    const prev = el('button', { type: 'button', class: 'quiet', disabled: true }, 'Previous');
    const next = el('button', { type: 'button', class: 'quiet', disabled: true }, 'Next');
    const pages = [null];
    let page = 0, nextAfter = null;
    const draw = async () => {
      const l = await api('GET', '/api/v1/rollouts?limit=' + PAGE + (pages[page] ? '&after=' + enc(pages[page]) : ''));
      if (current !== me) return;
      nextAfter = l.next;
      prev.disabled = page === 0;
      next.disabled = !nextAfter;
      info.textContent = 'page ' + (page + 1);
      body.replaceChildren(...l.rollouts.map((r) => el('tr', {},
        el('td', {}, link('#/rollouts/' + enc(r.id), r.name)), el('td', {}, pill(r.state)),
        el('td', { class: 'mono hide-narrow' }, r.model), el('td', { class: 'mono' }, r.target_version),
        el('td', { class: 'num' }, (r.counts.succeeded || 0) + ' / ' + r.devices),
        el('td', {}, rolloutProgress(r)))));
      if (!l.rollouts.length) body.replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No rollout yet.')));
    };
    prev.addEventListener('click', () => { if (page > 0) { page--; draw().catch(() => {}); } });
    next.addEventListener('click', () => { if (nextAfter) { pages[page + 1] = nextAfter; page++; draw().catch(() => {}); } });
    viewEl.replaceChildren(el('h1', {}, 'Rollouts'),
      card(null, table(['Name', 'State', 'Model', 'Target', '#Done', 'Progress'], body),
        el('div', { class: 'pager' }, prev, next, info)),
      card('New rollout', rolloutForm((r) => { location.hash = '#/rollouts/' + enc(r.id); })));
    const again = debounce(() => draw().catch(() => {}), 700);
    me.refresh = again;
    me.onEvent = (e) => { if (e.rollout) again(); };
    await draw();
  }

  const WAVE_PARTS = ['succeeded', 'failed', 'no_path', 'downloading', 'offered', 'downloaded', 'updating', 'pending'];

  async function rolloutPage(me, id) {
    const head = el('div'), wavesEl = el('div'), codesEl = el('div'), failedEl = el('div'), actions = el('div', { class: 'actions' });
    const act = async (what, btn) => {
      btn.disabled = true;
      try { await api('POST', '/api/v1/rollouts/' + enc(id) + '/' + what); } catch (e) { alertBox.textContent = e.message; }
      draw().catch(() => {});
    };
    const alertBox = el('p', { class: 'error', role: 'alert' });
    const draw = async () => {
      const [r, w] = await Promise.all([api('GET', '/api/v1/rollouts/' + enc(id)),
        api('GET', '/api/v1/rollouts/' + enc(id) + '/waves')]);
      if (current !== me) return;
      const can = { start: r.state === 'draft', pause: r.state === 'running', resume: r.state === 'paused',
        cancel: r.state !== 'completed' && r.state !== 'cancelled' };
      actions.replaceChildren(...['start', 'pause', 'resume', 'cancel'].map((a) => {
        const b = el('button', { type: 'button', class: a === 'cancel' ? 'quiet' : '', disabled: !can[a], 'data-action': a }, a[0].toUpperCase() + a.slice(1));
        b.addEventListener('click', () => act(a, b));
        return b;
      }));
      head.replaceChildren(el('h1', {}, 'Rollout ', r.name, ' ', pill(r.state)),
        r.reason ? el('div', { class: r.state === 'paused' ? 'alarm' : 'muted' }, r.reason) : null,
        (r.alarms || []).map((a) => el('div', { class: 'alarm' }, a)),
        el('dl', { class: 'kv' }, el('dt', {}, 'Id'), el('dd', { class: 'mono' }, r.id),
          el('dt', {}, 'Model'), el('dd', { class: 'mono' }, r.model),
          el('dt', {}, 'Target'), el('dd', { class: 'mono' }, r.target_version),
          el('dt', {}, 'Devices'), el('dd', {}, link('#/devices?rollout=' + enc(r.id), r.devices)),
          el('dt', {}, 'Wave'), el('dd', {}, r.wave + ' of ' + r.waves.length + ' (' + r.waves.join(', ') + ' %)'),
          el('dt', {}, 'Thresholds'), el('dd', {}, 'success ≥ ' + r.success_threshold + ' %, failures ≤ ' + r.max_failure_rate + ' %'),
          el('dt', {}, 'Served'), el('dd', {}, bytes(r.bytes_served)),
          el('dt', {}, 'Started'), el('dd', {}, when(r.started))));
      wavesEl.replaceChildren(...w.waves.map((v) => {
        const c = v.counts, done = c.succeeded + c.failed + c.no_path;
        const pct = v.devices ? Math.round(100 * c.succeeded / v.devices) : 0;
        return el('div', { class: 'wave', 'data-wave': v.wave, 'data-percent': pct,
          'data-done': v.devices ? Math.round(100 * done / v.devices) : 100 },
          el('div', {}, 'Wave ' + v.wave, el('br'), el('span', { class: 'muted' }, 'to ' + v.percent + ' %')),
          bar(WAVE_PARTS.map((k) => [k, c[k]]), v.devices, 'wave ' + v.wave),
          el('div', { class: 'legend' }, v.devices + ' devices: ' + c.succeeded + ' succeeded (' + pct + ' %), ' +
            c.failed + ' failed, ' + c.no_path + ' no path, ' + (c.offered + c.downloading) + ' downloading' +
            (v.bytes_to_download ? ' (' + bytes(v.bytes_downloading) + ' of ' + bytes(v.bytes_to_download) + ')' : '') +
            ', ' + (c.downloaded + c.updating) + ' installing, ' + c.pending + ' pending' + (done === v.devices && v.devices ? ' — done' : '')));
      }));
      codesEl.replaceChildren(w.codes.length ? table(['Quectel code', 'Meaning', 'Class', '#Reports'],
        w.codes.sort((a, b) => b.count - a.count).map((c) => el('tr', {}, el('td', { class: 'mono' }, c.code),
          el('td', {}, c.meaning), el('td', {}, c.class), el('td', { class: 'num' }, c.count))))
        : el('p', { class: 'muted' }, 'No result code reported yet.'));
      failedEl.replaceChildren(w.failed.length ? table(['Device', 'State', 'Wave', 'Reason'], w.failed.map((d) =>
        el('tr', {}, el('td', { class: 'mono' }, link('#/devices/' + enc(d.id), d.id)), el('td', {}, pill(d.state)),
          el('td', {}, d.wave), el('td', {}, d.reason))))
        : el('p', { class: 'muted' }, 'None.'));
    };
    viewEl.replaceChildren(head, actions, alertBox, card('Waves', wavesEl),
      el('div', { class: 'grid' }, card('Results by Quectel code', codesEl), card('Failed devices (first 20)', failedEl)));
    const again = debounce(() => draw().catch(() => {}), 300);
    me.refresh = again;
    me.onEvent = (e) => { if (e.rollout === id) again(); };
    me.onStats = (s) => { if (s.in_flight > 0) again(); };
    await draw();
  }

  /* ---- devices ------------------------------------------------------------ */

  const STATES = ['', 'idle', 'pending', 'offered', 'downloading', 'downloaded', 'updating', 'succeeded', 'failed', 'no_path'];
  const FILTERS = ['q', 'model', 'version', 'group', 'state', 'rollout'];

  async function devices(me, _id, query) {
    const inputs = {};
    const form = el('form', { class: 'form' });
    for (const k of FILTERS) {
      inputs[k] = k === 'state'
        ? el('select', { name: k }, STATES.map((s) => el('option', { value: s }, s || '(any)')))
        : el('input', { name: k, type: k === 'q' ? 'search' : 'text' });
      inputs[k].value = query.get(k) || '';
      form.appendChild(el('label', {}, k === 'q' ? 'Id contains' : k[0].toUpperCase() + k.slice(1), inputs[k]));
    }
    form.appendChild(el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Filter')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      for (const k of FILTERS) if (inputs[k].value.trim()) q.set(k, inputs[k].value.trim());
      location.hash = '#/devices' + (q.toString() ? '?' + q : '');
    });
    const body = el('tbody'), info = el('span', { class: 'muted' });
    const prev = el('button', { type: 'button', class: 'quiet', disabled: true }, 'Previous');
    const next = el('button', { type: 'button', class: 'quiet', disabled: true }, 'Next');
    const pages = [null]; /* the "after" of each page seen */
    let page = 0, nextAfter = null;
    const draw = async () => {
      const q = new URLSearchParams();
      for (const k of FILTERS) if (query.get(k)) q.set(k, query.get(k));
      q.set('limit', PAGE);
      if (pages[page]) q.set('after', pages[page]);
      const l = await api('GET', '/api/v1/devices?' + q);
      if (current !== me) return;
      nextAfter = l.next;
      body.replaceChildren(...l.devices.map((d) => el('tr', {},
        el('td', { class: 'mono' }, link('#/devices/' + enc(d.id), d.id)),
        el('td', { class: 'mono hide-narrow' }, d.model), el('td', { class: 'mono' }, txt(d.version)),
        el('td', { class: 'hide-narrow' }, txt(d.group)), el('td', {}, pill(d.state)),
        el('td', { class: 'mono hide-narrow' }, d.rollout ? link('#/rollouts/' + enc(d.rollout), d.rollout) : '—'),
        el('td', { class: 'num' }, d.progress.percent + ' %'))));
      if (!l.devices.length) body.replaceChildren(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No device matches.')));
      info.textContent = l.total + ' devices match; page ' + (page + 1);
      prev.disabled = page === 0;
      next.disabled = !nextAfter;
    };
    prev.addEventListener('click', () => { if (page > 0) { page--; draw(); } });
    next.addEventListener('click', () => { if (nextAfter) { pages[page + 1] = nextAfter; page++; draw(); } });
    viewEl.replaceChildren(el('h1', {}, 'Devices'), card(null, form),
      card(null, table(['Id', 'Model', 'Version', 'Group', 'State', 'Rollout', '#Progress'], body),
        el('div', { class: 'pager' }, prev, next, info)));
    const again = debounce(() => draw().catch(() => {}), 2000);
    me.refresh = again;
    me.onEvent = (e) => { if (e.kind === 'device.state' || e.kind === 'device.created') again(); };
    await draw();
  }

  function eventText(e) {
    const skip = new Set(['id', 'kind', 'at']);
    return Object.entries(e).filter(([k]) => !skip.has(k)).map(([k, v]) =>
      k + ': ' + (typeof v === 'object' && v !== null ? JSON.stringify(v) : txt(v))).join(', ');
  }

  /* LwM2M Firmware Update (/5/0/3 State, /5/0/5 Update Result) */
  const FW_STATE = ['idle', 'downloading', 'downloaded', 'updating'];
  const FW_RESULT = ['initial', 'success', 'not enough flash', 'out of RAM', 'connection lost',
    'integrity check failure', 'unsupported package type', 'invalid URI', 'update failed', 'unsupported protocol'];
  const named = (n, names) => (n === null || n === undefined ? '—' : n + (names[n] ? ' (' + names[n] + ')' : ''));

  /* the LwM2M registration of a device that has an endpoint name, as the
   * server holds it now (every value the client sent is shown as text) */
  function lwm2mCard(d) {
    if (!d.lwm2m_endpoint && !d.lwm2m) return null;
    const r = d.lwm2m;
    const kv = [['Trigger', d.trigger], ['Endpoint', d.lwm2m_endpoint]];
    if (!r) kv.push(['Registered', 'not since the daemon started']);
    else {
      kv.push(['Registered', r.registered ? 'yes' : 'no'], ['Since', when(r.registered_at)], ['Last update', when(r.updated_at)],
        ['Lifetime', r.lifetime + ' s'], ['LwM2M', r.lwm2m], ['Binding', r.binding], ['Address', r.address + ' (' + r.protocol + ')'],
        ['Objects', r.objects], ['Firmware', r.firmware_version], ['/5 State', named(r.fw_state, FW_STATE)],
        ['/5 Update Result', named(r.fw_update_result, FW_RESULT)],
        ['/5 Protocols', r.fw_protocols ? r.fw_protocols.join(', ') : null], ['/5 Delivery', r.fw_delivery]);
    }
    return card('LwM2M registration', el('dl', { class: 'kv', id: 'lwm2m' },
      kv.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { class: 'mono' }, txt(v))])));
  }

  async function devicePage(me, id) {
    const head = el('div'), timeline = el('ol', { class: 'timeline' });
    /* The newest SHOWN of a device's events, newest first: one page of the
     * API's newest-first listing (order=desc), however many events the
     * device keeps ([fleet] events_per_device). */
    const SHOWN = 200;
    const loadEvents = async () => {
      const l = await api('GET', '/api/v1/devices/' + enc(id) + '/events?order=desc&limit=' + SHOWN);
      if (current !== me) return;
      timeline.replaceChildren(...l.events.map((e) => el('li', { 'data-kind': e.kind },
        el('span', { class: 'k' }, e.kind), el('span', { class: 'muted' }, when(e.at)),
        el('span', { class: 'd mono' }, eventText(e)))));
      if (l.next) timeline.append(el('li', { class: 'muted' }, 'Older events are kept; this view shows the newest ' + SHOWN + '.'));
    };
    const draw = async () => {
      const d = await api('GET', '/api/v1/devices/' + enc(id));
      if (current !== me) return;
      const p = d.progress, o = d.offer;
      const pct = p.percent || 0;
      head.replaceChildren(el('h1', {}, 'Device ', el('span', { class: 'mono', id: 'device-id' }, d.id), ' ', pill(d.state)),
        el('div', { class: 'grid' },
          card('Registration', el('dl', { class: 'kv' },
            el('dt', {}, 'Model'), el('dd', { class: 'mono' }, d.model),
            el('dt', {}, 'Version'), el('dd', { class: 'mono', id: 'device-version' }, txt(d.version)),
            el('dt', {}, 'Group'), el('dd', {}, txt(d.group)),
            el('dt', {}, 'Tags'), el('dd', {}, txt((d.tags || []).join(', '))),
            el('dt', {}, 'Transport'), el('dd', {}, txt(d.transport)),
            el('dt', {}, 'PSK identity'), el('dd', { class: 'mono' }, txt(d.psk_identity)),
            el('dt', {}, 'First seen'), el('dd', {}, when(p.first_seen)),
            el('dt', {}, 'Last seen'), el('dd', {}, when(p.last_seen)),
            el('dt', {}, 'Address'), el('dd', { class: 'mono' }, txt(p.client_address)))),
          card('Offer and progress',
            bar([['done', pct]], 100, 'download ' + pct + ' %'),
            el('p', {}, pct + ' % contiguous (' + bytes(p.contiguous) + ' of ' + bytes(o ? o.size : 0) + '), ' +
              bytes(p.bytes_served) + ' served, ' + p.resumes + ' resumes' +
              (p.device_percent !== undefined ? ', module says ' + p.device_percent + ' %' : '')),
            el('dl', { class: 'kv' },
              el('dt', {}, 'State'), el('dd', {}, d.state + (d.reason ? ': ' + d.reason : '')),
              el('dt', {}, 'Rollout'), el('dd', {}, d.rollout ? link('#/rollouts/' + enc(d.rollout), d.rollout) : '—'),
              el('dt', {}, 'Offer'), el('dd', { class: 'mono' }, o ? o.from + ' → ' + o.to + ' (' + o.package + ', ' + bytes(o.size) + ')' : '—'),
              el('dt', {}, 'Attempts'), el('dd', {}, d.attempts),
              el('dt', {}, 'Last result'), el('dd', {}, d.last_result
                ? d.last_result.stage + (d.last_result.code !== null ? ' ' + d.last_result.code + ' (' + (d.last_result.meaning || '') + ')' : '')
                : '—'))),
          lwm2mCard(d)));
    };
    viewEl.replaceChildren(head, card('Event timeline (newest first)', timeline));
    const again = debounce(() => Promise.all([draw(), loadEvents()]).catch(() => {}), 400);
    me.refresh = again;
    me.onEvent = (e) => { if (e.device === id) again(); };
    await Promise.all([draw(), loadEvents()]);
  }

  /* ---- packages ---------------------------------------------------------- */

  async function packages(me, _id, query) {
    const list = el('tbody'), graphEl = el('div'), pathInfo = el('p', { class: 'muted' });
    const modelSel = el('select', { name: 'graph-model' }), fromSel = el('select', { name: 'graph-from' }), toSel = el('select', { name: 'graph-to' });
    let all = [];
    const upload = (() => {
      const f = {};
      for (const k of ['model', 'from', 'to', 'name']) f[k] = el('input', { name: 'up-' + k, type: 'text', required: k !== 'name' });
      f.file = el('input', { name: 'up-file', type: 'file', required: true });
      const prog = el('progress', { max: 100, value: 0, hidden: true });
      const msg = el('p', { class: 'error', role: 'alert' });
      const form = el('form', { class: 'form' },
        el('label', {}, 'File', f.file), el('label', {}, 'Model', f.model), el('label', {}, 'From version', f.from),
        el('label', {}, 'To version', f.to), el('label', {}, 'Name (optional)', f.name),
        el('div', { class: 'wide' }, prog, msg), el('div', { class: 'actions wide' }, el('button', { type: 'submit' }, 'Upload')));
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        msg.textContent = '';
        const file = f.file.files[0];
        if (!file) { msg.textContent = 'Choose a file.'; return; }
        const q = new URLSearchParams({ model: f.model.value.trim(), from: f.from.value.trim(), to: f.to.value.trim() });
        if (f.name.value.trim()) q.set('name', f.name.value.trim());
        /* XMLHttpRequest: fetch() reports no upload progress */
        const x = new XMLHttpRequest();
        x.open('POST', '/api/v1/packages?' + q);
        x.setRequestHeader('Authorization', 'Bearer ' + token);
        x.setRequestHeader('Content-Type', 'application/octet-stream');
        prog.hidden = false;
        prog.value = 0;
        x.upload.addEventListener('progress', (ev) => { if (ev.lengthComputable) prog.value = Math.round(100 * ev.loaded / ev.total); });
        x.addEventListener('load', () => {
          let b = null;
          try { b = JSON.parse(x.responseText); } catch (err) { b = null; }
          if (x.status === 201) { prog.value = 100; msg.className = 'muted'; msg.textContent = 'Stored as ' + b.id + '.'; if (models) models.add(b.model); draw(); }
          else { msg.className = 'error'; msg.textContent = b && b.error ? b.error.message : 'HTTP ' + x.status; }
        });
        x.addEventListener('error', () => { msg.className = 'error'; msg.textContent = 'The upload failed (connection).'; });
        x.send(file);
      });
      return form;
    })();
    const drawGraph = async () => {
      const m = modelSel.value;
      /* one model's packages (as many as its versions make): not the whole catalogue */
      const pk = m ? (await api('GET', '/api/v1/packages?limit=1000&model=' + enc(m))).packages.filter((p) => p.status === 'ok') : [];
      if (current !== me) return;
      const versions = [...new Set(pk.flatMap((p) => [p.from, p.to]))].sort();
      for (const [sel, keep] of [[fromSel, fromSel.value], [toSel, toSel.value]]) {
        sel.replaceChildren(el('option', { value: '' }, '(version)'), ...versions.map((v) => el('option', { value: v }, v)));
        if (versions.includes(keep)) sel.value = keep;
      }
      const hl = { packages: new Set(), versions: new Set() };
      pathInfo.textContent = 'Pick a version and a target to see the path a device takes.';
      if (fromSel.value && toSel.value) {
        const r = await api('GET', '/api/v1/paths?model=' + enc(m) + '&from=' + enc(fromSel.value) + '&to=' + enc(toSel.value));
        if (r.hops === null) pathInfo.textContent = 'No chain of packages from ' + r.from + ' to ' + r.to + '.';
        else {
          for (const h of r.hops) { hl.packages.add(h.package); hl.versions.add(h.from); hl.versions.add(h.to); }
          hl.versions.add(r.from);
          pathInfo.textContent = r.hops.length + ' hop(s), ' + bytes(r.bytes) + ': ' + [r.from, ...r.hops.map((h) => h.to)].join(' → ');
        }
      }
      if (current !== me) return;
      graphEl.replaceChildren(pk.length ? window.PathGraph.draw(pk, hl) : el('p', { class: 'muted' }, 'No package for this model.'));
    };
    /* the table: a page at a time, as the server pages it */
    const info = el('span', { class: 'muted' });
    const prev = el('button', { type: 'button', class: 'quiet', disabled: true }, 'Previous');
    const next = el('button', { type: 'button', class: 'quiet', disabled: true }, 'Next');
    const pages = [null];
    let page = 0, nextAfter = null, models = null;
    const draw = async () => {
      let l;
      try {
        l = await api('GET', '/api/v1/packages?limit=' + PAGE + (pages[page] ? '&after=' + enc(pages[page]) : ''));
      } catch (e) {
        /* the package this page starts after was deleted since: a 400
         * (the API has no place for it any more); from the first page again */
        if (!page || e.status !== 400) throw e;
        pages.length = 1;
        page = 0;
        return draw();
      }
      if (current !== me) return;
      all = l.packages;
      nextAfter = l.next;
      prev.disabled = page === 0;
      next.disabled = !nextAfter;
      info.textContent = 'page ' + (page + 1);
      list.replaceChildren(...all.map((p) => el('tr', {},
        el('td', { class: 'mono' }, p.id), el('td', { class: 'mono' }, p.model),
        el('td', { class: 'mono' }, p.from + ' → ' + p.to), el('td', { class: 'hide-narrow' }, p.name),
        el('td', { class: 'num' }, bytes(p.size)), el('td', {}, pill(p.status)),
        el('td', { class: 'num' }, p.stats.downloads), el('td', { class: 'num' }, p.stats.requests),
        el('td', { class: 'num' }, bytes(p.stats.bytes_sent)))));
      if (!all.length) list.replaceChildren(el('tr', {}, el('td', { colspan: 9, class: 'muted' }, page ? 'No more packages.' : 'No package yet.')));
      /* the models for the graph: the fleet's (the overview's count) and this page's */
      if (!models) models = new Set(Object.keys((await api('GET', '/api/v1/overview')).models).filter((m) => m !== 'other'));
      for (const p of all) models.add(p.model);
      const keep = modelSel.value || query.get('model') || (all[0] && all[0].model);
      const ms = [...models].sort();
      modelSel.replaceChildren(...ms.map((m) => el('option', { value: m }, m)));
      if (ms.includes(keep)) modelSel.value = keep;
      await drawGraph();
    };
    prev.addEventListener('click', () => { if (page > 0) { page--; draw().catch(() => {}); } });
    next.addEventListener('click', () => { if (nextAfter) { pages[page + 1] = nextAfter; page++; draw().catch(() => {}); } });
    for (const s of [modelSel, fromSel, toSel]) s.addEventListener('change', () => drawGraph().catch(() => {}));
    viewEl.replaceChildren(el('h1', {}, 'Packages'), card('Upload a package', upload),
      card(null, table(['Id', 'Model', 'Delta', 'Name', '#Size', 'Status', '#Downloads', '#Requests', '#Sent'], list),
        el('div', { class: 'pager' }, prev, next, info)),
      card('Upgrade paths', el('div', { class: 'form' }, el('label', {}, 'Model', modelSel),
        el('label', {}, 'Device at version', fromSel), el('label', {}, 'Target version', toSel)), pathInfo, graphEl));
    const again = debounce(() => draw().catch(() => {}), 1000);
    me.refresh = again;
    me.onEvent = (e) => { if (e.kind.startsWith('package')) again(); };
    await draw();
  }

  /* ---- start ------------------------------------------------------------- */

  if (token) login(token);
  else logout('');
})();

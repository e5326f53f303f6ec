/* openapi.js: api/openapi.json against the running daemon (run by
 * tests/integration/openapi.sh).
 *   1. The document is valid OpenAPI 3.1 (@seriousme/openapi-schema-validator)
 *      and the daemon serves exactly the file in the tree.
 *   2. Every described operation answers: each is called for real (in an
 *      order that makes the ids it needs), and each answer's status must be
 *      one the document lists and its JSON body must validate against the
 *      schema given for that status (ajv, JSON Schema 2020-12), the event
 *      stream's events included.
 *   3. Every route the server answers is described: every path literal in
 *      the server's sources (api/*.c), with an id and each known sub-name
 *      after it, with and without a trailing slash, is tried with each
 *      method; any answer but 405 or 404 "no such endpoint" must belong to
 *      a described path and method.
 * Environment: ADMIN_URL, DEV_URL, TOKEN, SRC (the source tree), PKG_FILE,
 * MODEL, FROM, TO. */
'use strict';
const fs = require('fs');
const path = require('path');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');
const { Validator } = require('@seriousme/openapi-schema-validator');

const env = (k) => { if (!process.env[k]) throw new Error('missing ' + k); return process.env[k]; };
const A = env('ADMIN_URL'), SRC = env('SRC'), TOKEN = env('TOKEN');
const doc = JSON.parse(fs.readFileSync(path.join(SRC, 'api/openapi.json'), 'utf8'));
let failed = 0, n = 0;
function ok(cond, name, detail) {
  n++;
  if (cond) console.log('ok ' + n + ' - ' + name);
  else { failed++; console.log('not ok ' + n + ' - ' + name + (detail ? '\n#   ' + String(detail).replace(/\n/g, '\n#   ') : '')); }
  return cond;
}

/* ---- the document's operations, and matching a URL to one ------------- */
const METHODS = ['get', 'put', 'post', 'delete', 'head', 'patch', 'options'];
const ops = [];
for (const p of Object.keys(doc.paths))
  for (const m of METHODS)
    if (doc.paths[p][m])
      ops.push({ path: p, method: m, op: doc.paths[p][m],
        re: new RegExp('^' + p.replace(/[.*+?^${}()|[\]\\]/g, (c) => (c === '{' || c === '}' ? c : '\\' + c))
          .replace(/\{[^}]+\}/g, '[^/]+') + '$') });
const findPath = (url) => {
  const u = url.split('?')[0];
  /* a literal path wins over a template */
  const all = Object.keys(doc.paths).filter((p) => ops.find((o) => o.path === p && o.re.test(u)));
  return all.sort((a, b) => (a.match(/\{/g) || []).length - (b.match(/\{/g) || []).length)[0];
};
const findOp = (method, url) => {
  const p = findPath(url);
  return p ? ops.find((o) => o.path === p && o.method === method.toLowerCase()) : undefined;
};

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(doc, 'oas');
const ptr = (...parts) => parts.map((s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
function validate(schemaPointer, data) {
  const v = ajv.getSchema('oas#/' + schemaPointer) || ajv.compile({ $ref: 'oas#/' + schemaPointer });
  return v(data) ? null : ajv.errorsText(v.errors, { separator: '; ' });
}

/* ---- calls ---------------------------------------------------------------- */
const covered = new Set();
async function call(method, url, opts = {}) {
  const h = Object.assign({}, opts.headers);
  if (opts.auth !== false) h.Authorization = 'Bearer ' + (opts.token || TOKEN);
  let body = opts.body;
  if (body !== undefined && !(body instanceof Buffer) && typeof body !== 'string') {
    body = JSON.stringify(body);
    h['Content-Type'] = 'application/json';
  }
  const r = await fetch(A + url, { method: method, headers: h, body: body });
  const text = await r.text();
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch (e) { json = undefined; }
  return { status: r.status, type: (r.headers.get('content-type') || '').split(';')[0], text: text, json: json, headers: r.headers };
}
/* a real call, its answer checked against the document */
async function check(method, url, expect, opts) {
  const r = await call(method, url, opts);
  const o = findOp(method, url);
  const name = method + ' ' + url.split('?')[0] + ' -> ' + r.status;
  if (!ok(o !== undefined, name + ': described', 'no operation in the document')) return r;
  const resp = o.op.responses[String(r.status)];
  ok(resp !== undefined && (expect === undefined || r.status === expect), name + ': a documented status' + (expect ? ' (' + expect + ')' : ''),
    'documented: ' + Object.keys(o.op.responses).join(', ') + '; body ' + r.text.slice(0, 300));
  if (resp && resp.content) {
    ok(resp.content[r.type] !== undefined, name + ': type ' + r.type + ' documented', Object.keys(resp.content).join(', '));
    if (r.type === 'application/json' && resp.content[r.type]) {
      const err = validate(ptr('paths', o.path, o.method, 'responses', String(r.status), 'content', 'application/json', 'schema'), r.json);
      ok(err === null, name + ': body validates against its schema', err);
    }
  } else if (resp && r.status !== 204 && method !== 'HEAD') {
    ok(false, name + ': the document gives a body schema', 'none for ' + r.status);
  }
  for (const [h, spec] of Object.entries((resp && resp.headers) || {}))
    if (spec.required) ok(r.headers.has(h), name + ': header ' + h + ' present', 'missing');
  if (r.status >= 200 && r.status < 300) covered.add(o.method + ' ' + o.path);
  return r;
}

async function events(url, want, headers) {
  let ctrl, r;
  for (let tries = 0; ; tries++) { /* 503: streams closed just before are not let go yet */
    ctrl = new AbortController();
    r = await fetch(A + url, { headers: Object.assign({ Authorization: 'Bearer ' + TOKEN }, headers), signal: ctrl.signal });
    if (r.status !== 503 || tries === 30) break;
    await r.text();
    await new Promise((res) => setTimeout(res, 200));
  }
  const o = findOp('GET', url);
  ok(r.status === 200 && (r.headers.get('content-type') || '').startsWith('text/event-stream'), 'GET ' + url + ': 200 text/event-stream', r.status);
  covered.add('get ' + o.path);
  const got = [];
  const reader = r.body.getReader(), dec = new TextDecoder();
  let buf = '';
  const deadline = Date.now() + 8000;
  while (got.length < want && Date.now() < deadline) {
    const t = new Promise((res) => setTimeout(() => res({ timeout: true }), deadline - Date.now()));
    const x = await Promise.race([reader.read(), t]);
    if (x.timeout || x.done) break;
    buf += dec.decode(x.value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i); buf = buf.slice(i + 2);
      const ev = { event: 'message', data: '', id: null };
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const c = line.indexOf(':'), f = line.slice(0, c), v = line.slice(c + 1).replace(/^ /, '');
        if (f === 'event') ev.event = v; else if (f === 'data') ev.data += v; else if (f === 'id') ev.id = v;
      }
      if (ev.data) got.push(ev);
    }
  }
  ctrl.abort();
  return got;
}

async function main() {
  /* 1 */
  const res = await new Validator().validate(doc);
  ok(res.valid, 'api/openapi.json is valid OpenAPI ' + doc.openapi, String(JSON.stringify(res.errors)).slice(0, 1500));
  const served = await call('GET', '/api/v1/openapi.json');
  ok(JSON.stringify(served.json) === JSON.stringify(doc), 'the daemon serves api/openapi.json as it is in the tree');
  covered.add('get /api/v1/openapi.json');

  /* 2: every operation, for real */
  const M = env('MODEL'), FROM = env('FROM'), TO = env('TO');
  await check('GET', '/', 200);
  await check('HEAD', '/', 200);
  for (const a of ['app.js', 'graph.js', 'app.css']) { await check('GET', '/console/' + a, 200); await check('HEAD', '/console/' + a, 200); }
  await check('GET', '/console/nothing.js', 404);
  await check('GET', '/healthz', 200, { auth: false });
  await check('HEAD', '/healthz', 200, { auth: false });
  await check('GET', '/metrics', 200, { auth: false });
  await check('HEAD', '/metrics', 200, { auth: false });
  /* the event stream from here on, to check what it says afterwards */
  const last = (await events('/api/v1/events?kind=stats', 1)).length;
  ok(last === 1, 'a stats event arrives within 8 s');
  const pkgBody = fs.readFileSync(env('PKG_FILE'));
  const qs = (o) => '?' + new URLSearchParams(o);
  const up = await check('POST', '/api/v1/packages' + qs({ model: M, from: FROM, to: TO, name: 'fw.bin' }), 201,
    { body: pkgBody, headers: { 'Content-Type': 'application/octet-stream' } });
  const pid = up.json && up.json.id;
  await check('POST', '/api/v1/packages' + qs({ model: M, from: FROM, to: TO }), 409, { body: pkgBody, headers: { 'Content-Type': 'application/octet-stream' } });
  await check('POST', '/api/v1/packages' + qs({ model: M }), 400, { body: 'x' });
  await check('GET', '/api/v1/packages', 200);
  await check('GET', '/api/v1/packages' + qs({ model: M }), 200);
  await check('GET', '/api/v1/packages/' + pid, 200);
  const pk1 = await check('GET', '/api/v1/packages?limit=1', 200);
  ok(pk1.json && pk1.json.packages.length === 1 && pk1.json.next === null, 'packages: one page of one, no next');
  const pk2 = await check('GET', '/api/v1/packages?after=' + pid, 200);
  ok(pk2.json && pk2.json.packages.length === 0 && pk2.json.next === null, 'packages: nothing after the last');
  await check('GET', '/api/v1/packages?limit=0', 400);
  await check('GET', '/api/v1/packages?after=nosuchpkg', 400);
  await check('GET', '/api/v1/packages/nosuchpkg', 404);
  await check('GET', '/api/v1/paths' + qs({ model: M, from: FROM, to: TO }), 200);
  await check('GET', '/api/v1/paths' + qs({ model: M, from: 'nowhere', to: TO }), 200);
  await check('GET', '/api/v1/paths' + qs({ model: M }), 400);
  const put = await check('PUT', '/api/v1/devices/oa1', 201, { body: { model: M, version: FROM, group: 'g1', tags: ['t'] } });
  const secret = put.json && put.json.secret;
  await check('PUT', '/api/v1/devices/oa1', 200, { body: { group: 'g2' } });
  await check('PUT', '/api/v1/devices/oa1', 400, { body: { modle: 'typo' } });
  await check('POST', '/api/v1/devices', 200, { body: [{ id: 'oa2', model: M, version: FROM }, { id: 'oa3', model: M, version: '<svg/onload=alert(1)>' }] });
  await check('POST', '/api/v1/devices', 400, { body: [{ id: 'bad id!' }] });
  const page1 = await check('GET', '/api/v1/devices?limit=1', 200);
  ok(page1.json && typeof page1.json.next === 'string', 'a full page names the next');
  await check('GET', '/api/v1/devices?after=' + encodeURIComponent(page1.json.next) + '&model=' + M + '&q=oa', 200);
  await check('GET', '/api/v1/devices?state=bogus', 400);
  await check('GET', '/api/v1/devices/oa1', 200);
  await check('GET', '/api/v1/devices/nosuch', 404);
  await check('GET', '/api/v1/devices/oa1/events?limit=2', 200);
  await check('GET', '/api/v1/devices/oa1/events?limit=0', 400);
  {
    /* newest first, paged with the same cursor: the oldest-first list reversed */
    const all = (await check('GET', '/api/v1/devices/oa1/events?limit=1000', 200)).json.events.map((e) => e.id);
    const got = [];
    let next = 0;
    for (let i = 0; i <= all.length && next !== null; i++) {
      const d = await check('GET', '/api/v1/devices/oa1/events?order=desc&limit=1' + (next ? '&after=' + next : ''), 200);
      if (!d.json) break;
      got.push(...d.json.events.map((e) => e.id));
      next = d.json.next;
    }
    ok(all.length >= 1 && JSON.stringify(got) === JSON.stringify(all.slice().reverse()),
      'events newest first, paged, are the oldest-first list reversed', 'asc ' + all + '; desc ' + got);
    await check('GET', '/api/v1/devices/oa1/events?order=asc&limit=2', 200);
    await check('GET', '/api/v1/devices/oa1/events?order=up', 400);
  }
  await check('GET', '/api/v1/devices/nosuch/events', 404);
  await check('GET', '/api/v1/rollouts', 200);
  /* one wave: both devices are offered whatever their order (a hash of the rollout's id) */
  const spec = { name: 'openapi', model: M, target_version: TO, waves: [100], selector: { devices: ['oa1', 'oa3'] },
    max_failure_rate: 100, success_threshold: 1, window: null, start_at: null, transport: null };
  ok(validate(ptr('components', 'schemas', 'RolloutSpec'), spec) === null, 'the request body used validates against RolloutSpec');
  const ro = await check('POST', '/api/v1/rollouts', 201, { body: spec });
  await check('POST', '/api/v1/rollouts', 400, { body: Object.assign({}, spec, { waves: [50, 20] }) });
  const rid = ro.json && ro.json.id;
  await check('GET', '/api/v1/rollouts/' + rid, 200);
  /* the rollouts' listing pages: two rollouts, one a page */
  const ro2 = await check('POST', '/api/v1/rollouts', 201, { body: Object.assign({}, spec, { name: 'openapi2' }) });
  const rp1 = await check('GET', '/api/v1/rollouts?limit=1', 200);
  ok(rp1.json && rp1.json.rollouts.length === 1 && rp1.json.next === rid, 'rollouts: the first page of one names the next', JSON.stringify(rp1.json && rp1.json.next));
  const rp2 = await check('GET', '/api/v1/rollouts?limit=1&after=' + rid, 200);
  ok(rp2.json && rp2.json.rollouts.length === 1 && rp2.json.rollouts[0].id === (ro2.json && ro2.json.id) && rp2.json.next === null,
    'rollouts: the second page holds the second, no next');
  await check('GET', '/api/v1/rollouts?limit=1001', 400);
  await check('GET', '/api/v1/rollouts?after=nosuch', 400);
  await check('POST', '/api/v1/rollouts/' + (ro2.json && ro2.json.id) + '/cancel', 200);
  await check('GET', '/api/v1/rollouts/nosuch', 404);
  await check('GET', '/api/v1/rollouts/' + rid + '/waves', 200);
  await check('GET', '/api/v1/rollouts/nosuch/waves', 404);
  await check('POST', '/api/v1/rollouts/' + rid + '/pause', 409);
  await check('POST', '/api/v1/rollouts/' + rid + '/start', 200);
  /* a device checks in: an offer, then a no-path one: fuller answers */
  const ci = await fetch(env('DEV_URL') + '/v1/update?device=oa1&version=' + encodeURIComponent(FROM), { headers: { 'X-Device-Token': secret } });
  ok(ci.status === 200, 'oa1 checks in and gets an offer', ci.status);
  await ci.arrayBuffer();
  await check('GET', '/api/v1/devices/oa1', 200);
  await check('GET', '/api/v1/rollouts/' + rid + '/waves', 200);
  await check('GET', '/api/v1/overview', 200);
  await check('POST', '/api/v1/rollouts/' + rid + '/start', 409);
  await check('POST', '/api/v1/rollouts/' + rid + '/pause', 200);
  await check('GET', '/api/v1/overview', 200);
  await check('POST', '/api/v1/rollouts/' + rid + '/resume', 200);
  await check('POST', '/api/v1/rollouts/' + rid + '/cancel', 200);
  await check('POST', '/api/v1/rollouts/' + rid + '/cancel', 409);
  await check('POST', '/api/v1/rollouts/nosuch/start', 404);
  await check('GET', '/api/v1/rollouts', 200);
  await check('DELETE', '/api/v1/devices/oa2', 204);
  await check('DELETE', '/api/v1/devices/oa2', 404);

  /* the stream, resumed from the start: every event validates */
  const evs = await events('/api/v1/events', 12, { 'Last-Event-ID': '0' });
  const kinds = new Set(evs.map((e) => e.event));
  let bad = null;
  for (const e of evs) {
    const d = JSON.parse(e.data);
    const err = validate(ptr('components', 'schemas', e.event === 'stats' ? 'Stats' : 'Event'), d);
    if (err) bad = e.event + ': ' + err;
    if (e.event !== 'stats' && e.event !== 'gap' && String(d.id) !== e.id) bad = 'id: line ' + e.id + ' != data.id ' + d.id;
  }
  ok(evs.length >= 12 && bad === null, 'events resumed from Last-Event-ID 0 validate (' + [...kinds].join(', ') + ')', bad);
  ok(kinds.has('rollout') && kinds.has('device.state') && kinds.has('package.uploaded'), 'rollout, device and upload events are in the stream');
  const only = await events('/api/v1/events?device=oa1&kind=device.state', 2, { 'Last-Event-ID': '0' });
  ok(only.length >= 1 && only.every((e) => e.event === 'device.state' && JSON.parse(e.data).device === 'oa1'), 'filters device= and kind= hold', only.map((e) => e.event + ' ' + e.data).join('\n'));
  /* at most 16 streams: the 17th is refused, and a place frees when one ends */
  const held = [];
  for (let i = 0, tries = 0; i < 16; i++) {
    const c = new AbortController();
    const r = await fetch(A + '/api/v1/events?kind=alarm', { headers: { Authorization: 'Bearer ' + TOKEN }, signal: c.signal });
    if (r.status === 503 && tries++ < 30) { /* the streams read above are still being let go */
      await r.text();
      await new Promise((res) => setTimeout(res, 200));
      i--;
      continue;
    }
    const rd = r.body.getReader();
    await rd.read(); /* the first keep-alive: the stream is open */
    held.push({ c: c, rd: rd, status: r.status });
  }
  ok(held.every((h) => h.status === 200), '16 streams open at once');
  await check('GET', '/api/v1/events', 503);
  held.pop().c.abort();
  let reopened = 0;
  for (let i = 0; i < 50 && reopened !== 200; i++) { /* the server notices the close at its next write */
    await new Promise((res) => setTimeout(res, 100));
    const c = new AbortController();
    const r = await fetch(A + '/api/v1/events?kind=alarm', { headers: { Authorization: 'Bearer ' + TOKEN }, signal: c.signal });
    reopened = r.status;
    if (r.status === 200) held.push({ c: c }); else await r.text();
  }
  ok(reopened === 200, 'a stream closed by its client frees its place');
  for (const h of held) h.c.abort();

  await check('GET', '/api/v1/events?kind=Bad!', 400);
  /* a typo never drops a filter silently: an unknown parameter, an empty
   * or repeated one, an unknown kind are each a 400 */
  for (const q of ['rolout=' + rid, 'rollout=', 'device=oa1&device=oa2', 'kind=devcie', 'kind=device.stat',
    'kind=package.upload', 'kind=rollout.x', 'Kind=alarm'])
    await check('GET', '/api/v1/events?' + q, 400);
  /* every kind the sources publish is a kind the filter takes */
  const srcKinds = new Set(['rollout', 'alarm', 'stats', 'device', 'package']);
  for (const dir of ['fleet', 'api', 'server/coap']) {
    for (const f of fs.readdirSync(path.join(SRC, dir)).filter((x) => x.endsWith('.c'))) {
      const t = fs.readFileSync(path.join(SRC, dir, f), 'utf8');
      for (const m of t.matchAll(/device_event\(\s*f,\s*d,\s*"([a-z0-9_]+)"/g)) srcKinds.add('device.' + m[1]);
      for (const m of t.matchAll(/(?:delivery_lwm2m_event|reg_drop)\([^;"]*"([a-z0-9_]+)"/g)) srcKinds.add('device.' + m[1]);
      for (const m of t.matchAll(/feed_publish\(\s*"([a-z0-9_.]+)"/g)) srcKinds.add(m[1]);
    }
  }
  /* eight kinds a request (kind='s most); a 503 (the streams above not let
   * go yet: the server notices a close within half a second) is tried again */
  const refused = [], all = [...srcKinds];
  for (let i = 0; i < all.length; i += 8) {
    const ks = all.slice(i, i + 8).join(',');
    for (let tries = 0; ; tries++) {
      const c = new AbortController();
      const r = await fetch(A + '/api/v1/events?kind=' + ks, { headers: { Authorization: 'Bearer ' + TOKEN }, signal: c.signal });
      if (r.status === 503 && tries < 30) {
        await r.text();
        await new Promise((res) => setTimeout(res, 200));
        continue;
      }
      if (r.status !== 200) refused.push(ks + ': ' + r.status + ' ' + (await r.text()));
      c.abort();
      break;
    }
  }
  ok(srcKinds.size > 15 && refused.length === 0, 'kind= takes each of the ' + srcKinds.size + ' kinds the sources publish', refused.join('\n'));
  const ofRollout = await events('/api/v1/events?rollout=' + rid, 3, { 'Last-Event-ID': '0' });
  ok(ofRollout.length >= 3 && ofRollout.every((e) => e.event === 'stats' || JSON.parse(e.data).rollout === rid),
    'filter rollout= holds (the stats ticks, of no rollout, go to every stream that asks for them)',
    ofRollout.map((e) => e.event + ' ' + e.data).join('\n'));
  await check('GET', '/api/v1/events', 400, { headers: { 'Last-Event-ID': 'x' } });
  await check('DELETE', '/api/v1/packages/' + pid, 204);
  await check('DELETE', '/api/v1/packages/' + pid, 404);

  /* 401 on every /api/ operation without the right token */
  for (const o of ops) {
    if (!o.path.startsWith('/api/')) continue;
    const url = o.path.replace(/\{[^}]+\}/g, 'x');
    const r = await call(o.method.toUpperCase(), url, { token: 'wrong' });
    const e = o.op.responses['401'] ? validate(ptr('components', 'responses', 'Unauthorized', 'content', 'application/json', 'schema'), r.json) : 'not documented';
    ok(r.status === 401 && e === null, o.method.toUpperCase() + ' ' + o.path + ' with a wrong token: 401, documented', r.status + ' ' + e);
  }

  const missing = ops.filter((o) => !covered.has(o.method + ' ' + o.path)).map((o) => o.method + ' ' + o.path);
  ok(missing.length === 0, 'every described operation answered 2xx (' + covered.size + ' of ' + ops.length + ')', missing.join(', '));

  /* 3: the server answers nothing undescribed */
  let src = '';
  for (const f of fs.readdirSync(path.join(SRC, 'api')).filter((f) => f.endsWith('.c')))
    src += fs.readFileSync(path.join(SRC, 'api', f), 'utf8');
  const literals = new Set([...src.matchAll(/"(\/[A-Za-z0-9_./-]*)"/g)].map((m) => m[1]));
  const words = new Set([...src.matchAll(/strcmp\((?:rest|url|action), "([a-z]+)"\)/g)].map((m) => m[1]));
  for (const w of ['events', 'waves', 'start', 'pause', 'resume', 'cancel', 'stats', 'x']) words.add(w);
  for (const f of fs.readdirSync(path.join(SRC, 'api/console'))) literals.add('/console/' + f);
  const urls = new Set();
  for (const l of literals) {
    urls.add(l); urls.add(l.replace(/\/$/, '')); urls.add(l + '/');
    if (l.startsWith('/api/')) {
      urls.add(l + '/probe-id');
      for (const w of words) { urls.add(l + '/probe-id/' + w); urls.add(l + '/' + w); urls.add(l + '/probe-id/' + w + '/'); }
    }
  }
  urls.delete('');
  const undescribed = [];
  let tried = 0;
  for (const u of urls) {
    for (const m of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      if (u.endsWith('/events') && m === 'GET' && u === '/api/v1/events') continue; /* a stream: done above */
      tried++;
      const r = await call(m, u, { body: m === 'POST' || m === 'PUT' ? '' : undefined });
      const notARoute = r.status === 405 || (r.status === 404 && (!r.json || r.json.error.message === 'no such endpoint')) ||
        (m === 'HEAD' && r.status === 404);
      if (notARoute) continue;
      if (!findOp(m, u)) undescribed.push(m + ' ' + u + ' -> ' + r.status + ' ' + r.text.slice(0, 80));
    }
  }
  ok(undescribed.length === 0, 'no undescribed route answers (' + tried + ' tries of ' + urls.size + ' paths)', undescribed.join('\n'));
  console.log('1..' + n);
  process.exit(failed ? 1 : 0);
}
main().catch((e) => { console.log('not ok - ' + e.stack); process.exit(1); });

/* browser.js: the console in Debian's chromium, headless, driven by
 * puppeteer-core (run by tests/integration/console.sh, which starts the
 * daemon and registers the devices). It signs in, uploads a package, is
 * refused a bad rollout at the field, creates and starts a good one, runs
 * the device simulator, watches the wave bars reach 100 % from the event
 * stream, opens a failed device's timeline, checks that device-made
 * strings show as text and run nothing, and saves screenshots.
 *
 * Fails on any console error or warning, uncaught exception, CSP violation,
 * dialog (alert) or failed request. Environment: ADMIN_URL, TOKEN, PKG_FILE,
 * MODEL, FROM, TO, SIM_CMD (JSON array: the simulator's command line; the
 * rollout id is appended after --rollout), OUT (screenshots), CHROMIUM. */
'use strict';
const puppeteer = require('puppeteer-core');
const { spawn } = require('child_process');

const env = (k) => {
  if (!process.env[k]) throw new Error('missing ' + k);
  return process.env[k];
};
const A = env('ADMIN_URL'), OUT = env('OUT');
const problems = [];
let step = 'start';
const t0 = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function ok(name) { console.log('ok - ' + name + ' (' + ((Date.now() - t0) / 1000).toFixed(1) + ' s)'); }
function must(cond, name, detail) {
  if (!cond) throw new Error(name + (detail ? ': ' + detail : ''));
  ok(name);
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions'],
  });
  const timer = setTimeout(() => { console.error('not ok - over 90 s at step ' + step); process.exit(1); }, 90000);
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    let expectViolation = false, violations = 0;
    let allowed = null; /* the browser's own log line of an HTTP error the step expects */
    await page.exposeFunction('__cspViolation', (d) => {
      if (expectViolation) violations++;
      else problems.push('CSP violation at ' + step + ': ' + d);
    });
    /* runs before the page's scripts, outside its CSP */
    await page.evaluateOnNewDocument(() => {
      document.addEventListener('securitypolicyviolation', (e) =>
        window.__cspViolation(e.violatedDirective + ' ' + e.blockedURI));
    });
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warn' || m.type() === 'warning') {
        if (expectViolation && /Content Security Policy/.test(m.text())) return;
        if (allowed && allowed.test(m.text())) return;
        problems.push('console ' + m.type() + ' at ' + step + ': ' + m.text());
      }
    });
    page.on('pageerror', (e) => problems.push('uncaught at ' + step + ': ' + e.message));
    page.on('dialog', async (d) => { problems.push('a dialog opened at ' + step + ': ' + d.message()); await d.dismiss(); });
    page.on('requestfailed', (r) => {
      const why = r.failure() ? r.failure().errorText : '';
      /* the event stream is aborted on purpose when the page goes */
      if (why === 'net::ERR_ABORTED' && r.url().includes('/api/v1/events')) return;
      problems.push('request failed at ' + step + ': ' + r.url() + ' ' + why);
    });
    /* every listing the console asks for is a page (limit=), never the
     * whole fleet or catalogue; and nothing is asked for on a timer */
    const lists = [];
    let apiCalls = 0;
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (!u.pathname.startsWith('/api/v1/') || u.pathname === '/api/v1/events') return;
      apiCalls++;
      if (r.method() === 'GET' && /^\/api\/v1\/(devices|packages|rollouts|devices\/[^/]+\/events)$/.test(u.pathname))
        lists.push(u.pathname + u.search);
    });
    const noProblems = () => must(problems.length === 0, 'no console error, CSP violation or dialog so far', problems.join('; '));
    const text = (sel) => page.$eval(sel, (e) => e.textContent);
    const go = async (hash, sel) => {
      await page.evaluate((h) => { location.hash = h; }, hash);
      if (sel) await page.waitForSelector(sel, { timeout: 10000 });
    };

    /* ---- sign in */
    step = 'login';
    const resp = await page.goto(A + '/', { waitUntil: 'load' });
    const csp = resp.headers()['content-security-policy'] || '';
    must(/script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp), 'the page comes with a strict CSP', csp);
    await page.waitForSelector('#login:not([hidden])');
    allowed = /status of 401/;
    await page.type('#token', 'wrong-token');
    await page.click('#login button');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
    ok('a wrong token is refused on the login form');
    allowed = null;
    await page.type('#token', env('TOKEN'));
    await page.click('#login button');
    await page.waitForSelector('#nav:not([hidden])');
    await page.waitForSelector('#live:not(.off)', { timeout: 10000 });
    must(await page.evaluate(() => sessionStorage.getItem('dfotad.token') !== null && document.cookie === ''),
      'signed in: the token is in sessionStorage, no cookie');
    await page.waitForSelector('#view h1');
    must((await text('#view h1')) === 'Overview', 'the overview shows');

    /* ---- the CSP is in force: an injected inline script is refused */
    step = 'csp';
    expectViolation = true;
    await page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.__inlineRan = true';
      document.body.appendChild(s);
    });
    await sleep(300);
    expectViolation = false;
    must(!(await page.evaluate(() => window.__inlineRan)) && violations > 0, 'an inline script is blocked by the CSP');

    /* ---- upload */
    step = 'upload';
    await go('#/packages', 'input[name="up-file"]');
    const file = await page.$('input[name="up-file"]');
    await file.uploadFile(env('PKG_FILE'));
    await page.type('input[name="up-model"]', env('MODEL'));
    await page.type('input[name="up-from"]', env('FROM'));
    await page.type('input[name="up-to"]', env('TO'));
    await page.click('#view form button[type="submit"]');
    await page.waitForFunction(() => /Stored as/.test(document.querySelector('progress + p').textContent), { timeout: 15000 });
    must((await page.$eval('progress', (p) => p.value)) === 100, 'upload: progress bar at 100 % and the package stored');
    await page.waitForSelector('svg.paths .edge');
    await page.select('select[name="graph-from"]', env('FROM'));
    await page.select('select[name="graph-to"]', env('TO'));
    await page.waitForSelector('svg.paths .edge.on', { timeout: 10000 });
    ok('the upgrade-path graph highlights the path');
    await page.screenshot({ path: OUT + '/packages.png', fullPage: true });

    /* ---- paging: the package a page starts after is deleted meanwhile;
     * the table starts again from the first page (never a stale page) */
    step = 'paging';
    await page.evaluate(async (t) => {
      for (let i = 0; i < 50; i++) {
        const q = 'model=PG-1&from=P' + String(i).padStart(3, '0') + '&to=P' + String(i + 1).padStart(3, '0');
        const r = await fetch('/api/v1/packages?' + q, { method: 'POST', headers: { Authorization: 'Bearer ' + t }, body: 'pg' + i });
        if (r.status !== 201) throw new Error('upload ' + i + ': HTTP ' + r.status);
      }
    }, env('TOKEN'));
    await page.waitForSelector('.pager button:nth-of-type(2):not([disabled])', { timeout: 10000 });
    const cursor = await page.$eval('.pager', (p) => p.closest('.card').querySelector('tbody tr:last-child td').textContent);
    await page.click('.pager button:nth-of-type(2)');
    await page.waitForFunction(() => document.querySelector('.pager span').textContent === 'page 2', { timeout: 10000 });
    allowed = /status of 400/;
    const del = await fetch(A + '/api/v1/packages/' + encodeURIComponent(cursor), { method: 'DELETE', headers: { Authorization: 'Bearer ' + env('TOKEN') } });
    must(del.status === 204, 'the package before page 2 is deleted', 'HTTP ' + del.status);
    await page.waitForFunction((id) => document.querySelector('.pager span').textContent === 'page 1' &&
      ![...document.querySelectorAll('.pager')].some((p) => p.closest('.card').textContent.includes(id)), { timeout: 10000 }, cursor);
    allowed = null;
    ok('a page whose first package\'s predecessor is deleted starts again from the first');

    /* ---- a bad rollout: the error is shown at its field */
    step = 'create';
    await go('#/rollouts', 'input[name="name"]');
    const fill = async (name, v) => {
      await page.$eval('[name="' + name + '"]', (e) => { e.value = ''; });
      await page.type('[name="' + name + '"]', v);
    };
    await fill('name', 'console test');
    await fill('model', env('MODEL'));
    await fill('target_version', env('TO'));
    await fill('waves', '50,20');
    allowed = /status of 400/;
    await page.click('#view form button[type="submit"]');
    await page.waitForSelector('input[name="waves"][aria-invalid="true"]', { timeout: 10000 });
    allowed = null;
    must((await text('#err-waves')).length > 0, 'a bad waves list is refused at the waves field', await text('#err-waves'));
    await fill('waves', '50,100');
    await fill('success_threshold', '50');
    await fill('max_failure_rate', '60');
    await fill('retry_backoff', '1');
    await fill('max_attempts', '1');
    await page.click('#view form button[type="submit"]');
    await page.waitForFunction(() => /^#\/rollouts\/r/.test(location.hash), { timeout: 10000 });
    const rid = await page.evaluate(() => decodeURIComponent(location.hash.split('/')[2]));
    await page.waitForSelector('button[data-action="start"]:not([disabled])');
    ok('rollout ' + rid + ' created (a draft)');

    /* ---- start, run the simulator, watch the waves through the stream */
    step = 'run';
    let waveRequests = 0;
    page.on('request', (r) => { if (r.url().endsWith('/waves')) waveRequests++; });
    await page.click('button[data-action="start"]');
    await page.waitForSelector('.pill.s-running', { timeout: 10000 });
    ok('started');
    const cmd = JSON.parse(env('SIM_CMD')).concat(['--rollout', rid]);
    const sim = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let simErr = '';
    sim.stderr.on('data', (d) => { simErr += d; });
    const simDone = new Promise((r) => sim.on('exit', (code) => r(code)));
    await page.waitForFunction(() => {
      const w = [...document.querySelectorAll('.wave')];
      return w.some((x) => Number(x.dataset.done) > 0 && Number(x.dataset.done) < 100);
    }, { timeout: 30000, polling: 50 }).then(() => page.screenshot({ path: OUT + '/rollout-running.png' })).catch(() => {});
    await page.waitForFunction(() => {
      const w = [...document.querySelectorAll('.wave')];
      return w.length === 2 && w.every((x) => x.dataset.done === '100') &&
        document.querySelector('#view h1 .pill').textContent === 'completed';
    }, { timeout: 45000 });
    must(waveRequests > 1, 'the wave bars reached 100 % and the rollout completed, refreshed ' + waveRequests + ' times from the event stream');
    const simCode = await simDone;
    if (simCode !== 0) console.log('# simulator exit ' + simCode + ': ' + simErr.slice(-400));
    await page.waitForSelector('.card table td.mono a[href^="#/devices/"]');
    const codes = await page.$$eval('.card table tr td.mono', (tds) => tds.map((t) => t.textContent));
    must(codes.includes('506'), 'failures grouped by Quectel code (506 listed)', codes.join(','));
    await page.screenshot({ path: OUT + '/rollout.png', fullPage: true });
    /* the README's picture: small */
    await page.setViewport({ width: 1000, height: 700 });
    await sleep(300);
    await page.screenshot({ path: OUT + '/rollout-readme.png' });
    await page.setViewport({ width: 1280, height: 900 });

    /* ---- the failed device's timeline */
    step = 'failed device';
    const failedId = await page.$$eval('a[href^="#/devices/"]', (as) =>
      as.map((a) => a.textContent).find((t) => !t.startsWith('xss')));
    await go('#/devices/' + encodeURIComponent(failedId), '.timeline li');
    await page.waitForFunction(() => [...document.querySelectorAll('.timeline li')].some((li) =>
      li.dataset.kind === 'state' && /"?to"?: failed/.test(li.textContent)), { timeout: 10000 });
    must(true, 'device ' + failedId + ': its timeline shows the move to failed');
    must(lists.some((u) => u.startsWith('/api/v1/devices/' + encodeURIComponent(failedId) + '/events?') && /[?&]order=desc(&|$)/.test(u)),
      'the timeline asks for the newest events first (order=desc)', lists.filter((u) => u.includes('/events')).join(', '));
    must((await page.$eval('.timeline li', (li) => li.dataset.kind)) === 'state' &&
      /"?to"?: failed/.test(await text('.timeline li')), 'the timeline starts with the newest event (the move to failed)', await text('.timeline li'));
    await page.screenshot({ path: OUT + '/device-failed.png', fullPage: true });

    /* ---- device-made strings are text */
    step = 'xss';
    await go('#/devices/xss1', '#device-version');
    must((await text('#device-version')) === '<svg/onload=alert(1)>', 'xss1: the version shows literally');
    await page.waitForSelector('.timeline li');
    await go('#/devices/xss2', '#device-version');
    await page.waitForFunction(() => [...document.querySelectorAll('.timeline li')].some((li) => li.textContent.includes('<script>alert(2)</script>')), { timeout: 10000 });
    must((await text('#device-version')) === '<script>alert(2)</script>', 'xss2: the version it checked in with, and its timeline, show <script> as text');
    await go('#/devices?q=xss', 'tbody tr td.mono a');
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 2);
    const shown = await page.$$eval('tbody tr', (trs) => trs.map((t) => t.textContent).join(' '));
    must(shown.includes('<svg/onload=alert(1)>') && shown.includes('<script>alert(2)</script>'), 'the device table (q=xss) shows both as text');
    await go('#/rollouts/' + rid, '.wave');
    await page.waitForFunction(() => document.body.textContent.includes('<svg/onload=alert(1)>'), { timeout: 10000 });
    ok('the rollout page shows the no-path reason with the version as text');
    const injected = await page.evaluate(() => ({
      svg: document.querySelectorAll('main svg:not(.paths)').length,
      script: document.querySelectorAll('main script').length,
      onload: document.querySelectorAll('[onload]').length,
      ran: window.alert.toString().includes('[native code]'),
    }));
    must(injected.svg === 0 && injected.script === 0 && injected.onload === 0 && injected.ran,
      'no element or handler was made from a device string', JSON.stringify(injected));

    /* ---- an LwM2M device's registration */
    step = 'lwm2m';
    await go('#/devices/lw1', '#lwm2m');
    const reg = await text('#lwm2m');
    must(/urn:dev:lw1/.test(reg) && /Registeredyes/.test(reg) && reg.includes('</5/0>') &&
      (await page.$$('#lwm2m dd *')).length === 0,
    'the device page shows the LwM2M registration (its object links as text)', reg);
    await go('#/overview', '.card');
    await sleep(500);
    await page.screenshot({ path: OUT + '/overview.png', fullPage: true });
    const unpaged = lists.filter((u) => !/[?&]limit=\d+/.test(u));
    must(lists.length > 5 && unpaged.length === 0, 'every listing asked for was a page (' + lists.length + ' asked, limit= on each)', unpaged.join(', '));
    /* the rollout is over: with nothing happening, the page asks nothing
     * (the stats ticks of the stream still arrive every 2 s) */
    const callsBefore = apiCalls;
    await sleep(5000);
    must(apiCalls === callsBefore, 'no polling: no API request in 5 s on the overview, the event stream only', (apiCalls - callsBefore) + ' requests');

    /* ---- a phone */
    step = 'phone';
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    await go('#/rollouts/' + rid, '.wave');
    await sleep(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    must(overflow <= 1, 'the rollout page fits a phone\'s width', overflow + ' px too wide');
    await page.screenshot({ path: OUT + '/rollout-phone.png' });
    for (const [h, sel] of [['#/overview', '.card'], ['#/rollouts', 'input[name="name"]'], ['#/devices', 'form'],
      ['#/devices/' + encodeURIComponent(failedId), '#device-id'], ['#/devices/lw1', '#lwm2m'], ['#/packages', 'input[name="up-file"]']]) {
      await go(h, sel);
      await sleep(300);
      const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      must(over <= 1, h + ' fits a phone\'s width', over + ' px too wide');
    }

    step = 'end';
    noProblems();
  } finally {
    clearTimeout(timer);
    await browser.close();
  }
}

main().then(() => {
  console.log('# browser steps took ' + ((Date.now() - t0) / 1000).toFixed(1) + ' s');
}).catch((e) => {
  console.error('not ok - ' + step + ': ' + e.message);
  if (problems.length) console.error('# problems: ' + problems.join('\n#   '));
  process.exit(1);
});

// lwm2m_node.js: an LwM2M client that shares no code with dfotad: the npm
// package lwm2m-node-lib (plain CoAP, LwM2M 1.0), given a /3 and a /5
// object. It registers, lets dfotad read /3/0/3, observe /5/0/3 and
// /5/0/5, write Package URI (it downloads that over HTTP), and execute
// Update; then it runs the new version and registers again.
//   node lwm2m_node.js HOST PORT ENDPOINT VERSION NEXT_VERSION LISTEN_PORT SECONDS
// Prints one JSON line; exit 0 when it ended on NEXT_VERSION.
'use strict';
const lw = require('lwm2m-node-lib').client;
const http = require('http');
const [host, port, ep, version, next, listen, secs] = process.argv.slice(2);
const log = [];
let current = version, registration = null, done = false;

function set(uri, res, v) {
  return new Promise((ok, ko) => lw.registry.setResource(uri, res, v, (e) => (e ? ko(e) : ok())));
}
function create(uri) {
  return new Promise((ok, ko) => lw.registry.create(uri, (e) => (e ? ko(e) : ok())));
}
function register() {
  return new Promise((ok, ko) => lw.register(host, port, '', ep, (e, info) => (e ? ko(e) : ok(info))));
}
function finish(code) {
  console.log(JSON.stringify({ version: current, log }));
  process.exit(code);
}

function handlers(info) {
  lw.setHandler(info.serverInfo, 'write', (type, id, res, value, cb) => {
    log.push('write /' + type + '/' + id + '/' + res);
    cb(null);
    if (String(type) !== '5' || String(res) !== '1' || !value) return;
    set('/5/0', 3, 1).then(() => {
      http.get(String(value), (r) => {
        let n = 0;
        r.on('data', (d) => { n += d.length; });
        r.on('end', () => {
          log.push('downloaded ' + n + ' bytes, HTTP ' + r.statusCode);
          set('/5/0', 3, r.statusCode === 200 ? 2 : 0).then(() =>
            r.statusCode === 200 ? null : set('/5/0', 5, 4));
        });
      }).on('error', () => set('/5/0', 5, 4).then(() => set('/5/0', 3, 0)));
    });
  });
  lw.setHandler(info.serverInfo, 'execute', (type, id, res, args, cb) => {
    log.push('execute /' + type + '/' + id + '/' + res);
    cb(null);
    if (String(type) !== '5' || String(res) !== '2') return;
    set('/5/0', 3, 3).then(() => setTimeout(async () => {
      current = next;
      await set('/3/0', 3, next);
      await set('/5/0', 5, 1);
      await set('/5/0', 3, 0);
      // a reboot onto the new firmware: registered again
      lw.unregister(registration, async () => {
        registration = await register();
        handlers(registration);
        log.push('registered again');
        done = true;
        // dfotad reads the new version (a loaded machine may take seconds)
        setTimeout(() => finish(0), 8000);
      });
    }, 300));
  });
}

(async () => {
  setTimeout(() => finish(current === next && done ? 0 : 1), Number(secs) * 1000);
  lw.init({ client: { lifetime: '60', version: '1.0', port: Number(listen), ipProtocol: 'udp4',
    observe: { period: 3000 }, logLevel: 'FATAL' } });
  await create('/3/0');
  await set('/3/0', 3, version);
  await create('/5/0');
  await set('/5/0', 1, '');
  await set('/5/0', 3, 0);
  await set('/5/0', 5, 0);
  registration = await register();
  log.push('registered');
  handlers(registration);
})().catch((e) => { log.push('error: ' + e); finish(1); });

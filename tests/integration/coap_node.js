// coap_node.js: downloads with implementations that are not libcoap, for
// the CoAP front's tests. Run with NODE_PATH pointing at an npm cache
// holding "coap" (plain CoAP) and "node-coap-client" (DTLS PSK).
//   node coap_node.js get  coap://HOST:PORT/PATH OUT [BLOCKSIZE]
//   node coap_node.js psk  coaps://HOST:PORT/PATH OUT IDENTITY KEY
'use strict';
const fs = require('fs');
const [mode, url, out, a, b] = process.argv.slice(2);
const u = new URL(url);

function done(buf) {
  fs.writeFileSync(out, buf);
  console.log('ok ' + buf.length + ' bytes');
  process.exit(0);
}
function fail(e) {
  console.log('FAIL ' + e);
  process.exit(1);
}
setTimeout(() => fail('timeout'), 120000).unref();

if (mode === 'get') {
  const coap = require('coap');
  const size = parseInt(a || '1024', 10);
  const req = coap.request({
    hostname: u.hostname, port: parseInt(u.port, 10), pathname: u.pathname,
    method: 'GET', confirmable: true,
  });
  // ask for the block size from the first request on (szx = log2(size) - 4)
  req.setOption('Block2', Buffer.from([Math.log2(size) - 4]));
  req.on('response', (res) => {
    if (res.code !== '2.05') fail('code ' + res.code);
    const parts = [];
    res.on('data', (d) => parts.push(d));
    res.on('end', () => done(Buffer.concat(parts)));
    if (res.payload && res.payload.length && !res.readable) done(res.payload);
  });
  req.on('error', fail);
  req.end();
} else if (mode === 'psk') {
  const { CoapClient } = require('node-coap-client');
  CoapClient.setSecurityParams(u.hostname, { psk: { [a]: b } });
  // node-coap-client follows Block2 by itself
  CoapClient.request(url, 'get', undefined, { keepAlive: false, confirmable: true })
    .then((res) => {
      if (res.code.toString() !== '2.05') fail('code ' + res.code.toString());
      CoapClient.reset();
      done(res.payload);
    })
    .catch(fail);
} else {
  fail('usage');
}

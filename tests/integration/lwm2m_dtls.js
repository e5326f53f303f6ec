// lwm2m_dtls.js: an LwM2M registration over DTLS-PSK by a client that
// shares no code with dfotad or libcoap: the npm package node-coap-client
// (its DTLS is node-dtls-client, TypeScript). Used by lwm2m_dtls.sh.
//
//   node lwm2m_dtls.js HOST PORT IDENTITY KEY EP [OTHER_EP]
//
// Registers EP (POST /rd?ep=EP), updates the registration at the location
// the server gave (POST /rd/LOC), registers OTHER_EP with the same
// identity when given (which the server must refuse), de-registers
// (DELETE /rd/LOC). Prints one line per step: "NAME CODE [LOCATION]".
// Exit 0 when every request got an answer.
"use strict";
const { CoapClient } = require("node-coap-client");
const { Message } = require("node-coap-client/build/Message");

const [host, port, identity, key, ep, other] = process.argv.slice(2);

// node-coap-client hands back code, format and payload only: the
// registration's Location-Path is taken from the parsed message
let lastLocation = null;
const parse = Message.parse;
Message.parse = function (buf) {
  const m = parse.call(this, buf);
  const loc = (m.options || []).filter((o) => o.name === "Location-Path").map((o) => o.value);
  if (loc.length) lastLocation = loc.join("/");
  return m;
};

function withTimeout(p, ms) {
  return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error("timeout")), ms))]);
}

async function ask(name, path, method, payload) {
  const r = await withTimeout(
    CoapClient.request(`coaps://${host}:${port}/${path}`, method, payload || Buffer.alloc(0), {
      keepAlive: true,
      confirmable: true,
    }),
    20000,
  );
  const code = r.code.toString();
  console.log(name + " " + code + (name === "register" ? " " + lastLocation : ""));
  return code;
}

async function main() {
  CoapClient.setSecurityParams(host, { psk: { [identity]: key } });
  const links = Buffer.from("</1/0>,</3/0>,</5/0>");
  if ((await ask("register", `rd?ep=${ep}&lt=60&lwm2m=1.1&b=U`, "post", links)) !== "2.01") return 1;
  const loc = lastLocation;
  await ask("update", `${loc}?lt=90`, "post");
  if (other) await ask("other", `rd?ep=${other}&lt=60&lwm2m=1.1&b=U`, "post", links);
  await ask("delete", loc, "delete");
  return 0;
}

main()
  .then((rc) => {
    CoapClient.reset();
    process.exit(rc);
  })
  .catch((e) => {
    console.log("error " + (e && e.message ? e.message : e));
    CoapClient.reset();
    process.exit(1);
  });

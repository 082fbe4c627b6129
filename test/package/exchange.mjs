// Two users exchange a message through a running server, with the
// JavaScript client library; then GET /healthz. Used by check-deb (the
// unpacked package) and scripts/fresh-check (the package installed with dpkg).
//
//   node exchange.mjs PORT
import { createRequire } from 'node:module';
import http from 'node:http';

import { SwitchboardClient } from '../../clients/js/switchboard-client.js';

// ws lives in clients/js/node_modules (a devDependency there).
const WebSocket = createRequire(new URL('../../clients/js/package.json', import.meta.url))('ws');

const port = Number(process.argv[2]);
if (!port) {
  console.error('usage: node exchange.mjs PORT');
  process.exit(2);
}
const timer = setTimeout(() => { console.error('exchange: timed out'); process.exit(1); }, 15_000);

const url = `ws://127.0.0.1:${port}`;
const alice = new SwitchboardClient({ url, user: 1, WebSocket });
const bob = new SwitchboardClient({ url, user: 2, WebSocket });
const received = new Promise((resolve) => bob.on('message', resolve));
const welcomed = new Promise((resolve) => bob.on('welcome', resolve));
alice.connect();
bob.connect();
await welcomed;
const text = `hello from 1 at ${Date.now()}`;
const receipt = await alice.send(2, text);
const message = await received;
if (message.content !== text || message.sender !== '1' || message.seq !== receipt.seq) {
  console.error('exchange: wrong message', message, receipt);
  process.exit(1);
}
alice.close();
bob.close();

const health = await new Promise((resolve, reject) => {
  http.get(`http://127.0.0.1:${port}/healthz`, (res) => {
    let body = '';
    res.on('data', (d) => { body += d; });
    res.on('end', () => resolve({ status: res.statusCode, body }));
  }).on('error', reject);
});
if (health.status !== 200 || JSON.parse(health.body).status !== 'ok') {
  console.error('exchange: /healthz answered', health);
  process.exit(1);
}
clearTimeout(timer);
console.log(`exchange: user 1 -> user 2, seq ${message.seq}; /healthz ok`);

// End-to-end test of the browser chat client served at GET /, in a real
// headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core).
//
//   node chat.test.mjs SERVER_BINARY ARTIFACT_DIR
//
// Two users talk through the page; the server is stopped and started again on
// the same port and SQLite file; the first page must reconnect by itself, and
// the second, kept away meanwhile behind a TCP proxy that refuses
// connections, must come back by itself and show what was sent while it was
// away exactly once. Then three users in a group (joined through the
// membership API) see a group message by group, and a direct message gets
// its delivered tick, then its read tick once the receiver opens the
// conversation. Then a second server with --tls-cert/--tls-key (a
// certificate made by the openssl command): the page over https talks over
// wss. Last, a cluster: two servers on one private redis-server, user 1's
// page on one and user 2's on the other, each seeing the other's messages.
// Screenshots land in ARTIFACT_DIR. The last line says
// `browser: N passed, N failed`; the exit code is 0 only when all passed.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const [serverBinary, artifactDir] = process.argv.slice(2);
if (!serverBinary || !artifactDir) {
  console.error('usage: node chat.test.mjs SERVER_BINARY ARTIFACT_DIR');
  process.exit(2);
}
const chromiumPath = process.env.SWITCHBOARD_CHROMIUM || '/usr/bin/chromium';
const stepTimeoutMs = 20_000;  // any single wait
const wholeTestMs = 150_000;   // the whole scenario, whatever hangs

if (!existsSync(chromiumPath)) {
  console.error(`browser: no Chromium at ${chromiumPath}; scripts/deps --test installs Debian's chromium`);
  console.log('browser: 0 passed, 1 failed');
  process.exit(1);
}
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error(`browser: cannot load playwright-core (${e.message}); run scripts/deps --test, or npm ci in test/browser`);
  console.log('browser: 0 passed, 1 failed');
  process.exit(1);
}

// ---- the server under test -------------------------------------------------

class Server {
  // `store` is a --store URI: sqlite:PATH, redis://HOST:PORT...
  constructor(binary, store, extraArgs = []) {
    this.binary = binary;
    this.store = store;
    this.extraArgs = extraArgs;
    this.child = null;
    this.port = 0;
    this.log = '';
  }

  // Starts it on this.port (0 the first time: a free port) and waits for its
  // `listening on ADDR:PORT` line.
  async start() {
    const args = ['--listen', `127.0.0.1:${this.port}`, '--store', this.store,
                  '--threads', '2', '--drain-timeout', '3', '--log-level', 'warn', ...this.extraArgs];
    const child = spawn(this.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr.on('data', (d) => { this.log += d; });
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', () => resolve({ code: null, signal: null }));
    });
    const port = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`server did not print its listening line in 10 s; stderr:\n${this.log}`)), 10_000);
      child.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/^listening on 127\.0\.0\.1:(\d+)\n/);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      });
      child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code} before listening; stderr:\n${this.log}`)); });
      child.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start ${this.binary}: ${e.message}`)); });
    });
    this.port = port;
  }

  // SIGTERM, as an operator would; PROTOCOL.md promises exit code 0.
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return null;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const result = await this.exited;
    clearTimeout(timer);
    this.child = null;
    return result;
  }

  kill() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

// ---- a TCP proxy that can refuse connections ------------------------------
// The second page is loaded through it, so its WebSocket is too: pausing it
// keeps that page away from the server (every reconnect attempt is refused)
// while the other page goes on.

class Proxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.port = 0;
    this.sockets = new Set();
    this.server = null;
  }

  async listen() {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => { client.destroy(); upstream.destroy(); });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', resolve);
    });
    this.port = this.server.address().port;
  }

  async pause() {
    const closed = new Promise((resolve) => this.server.close(resolve));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  async close() {
    if (this.server && this.server.listening) await this.pause();
  }
}

// ---- a private redis-server for the cluster case ---------------------------
// Its own free port and directory, no persistence; killed by pid (never the
// system's Redis).

class Redis {
  constructor(dir) {
    this.dir = dir;
    this.port = 0;
    this.child = null;
  }

  async start() {
    this.port = await new Promise((resolve, reject) => {
      const probe = net.createServer();
      probe.once('error', reject);
      probe.listen(0, '127.0.0.1', () => {
        const { port } = probe.address();
        probe.close(() => resolve(port));
      });
    });
    mkdirSync(this.dir, { recursive: true });
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '',
                                         '--appendonly', 'no', '--dir', this.dir],
                        { stdio: 'ignore' });
    this.child = child;
    const failed = new Promise((resolve) => {
      child.on('error', (e) => resolve(`cannot start redis-server: ${e.message}`));
      child.on('exit', (code) => resolve(`redis-server exited with ${code} at start`));
    });
    // Ready once it answers PING.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ready = await Promise.race([failed, this.ping()]);
      if (typeof ready === 'string') throw new Error(ready);
      if (ready) return;
      if (Date.now() > deadline) throw new Error(`redis-server does not answer PING on port ${this.port}`);
      await sleep(50);
    }
  }

  ping() {
    return new Promise((resolve) => {
      const socket = net.connect(this.port, '127.0.0.1');
      const done = (ok) => { socket.destroy(); resolve(ok); };
      socket.setTimeout(500, () => done(false));
      socket.on('error', () => done(false));
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (d) => done(d.toString().startsWith('+PONG')));
    });
  }

  kill() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

// ---- helpers ---------------------------------------------------------------

const passed = [];
function step(text) {
  passed.push(text);
  console.log(`ok ${passed.length} - ${text}`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Opens the page at `origin` in its own browser context (its own tab, its
// own storage) and collects what would show a broken page: uncaught errors
// and console errors other than the expected failed WebSocket attempts
// while the server is down (a CSP violation is a console error).
async function openPage(browser, origin, name, problems, viewport = { width: 960, height: 720 },
                        contextOptions = {}) {
  const context = await browser.newContext({ viewport, ...contextOptions });
  const page = await context.newPage();
  page.setDefaultTimeout(stepTimeoutMs);
  page.on('pageerror', (e) => problems.push(`${name}: uncaught ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (/WebSocket connection to .* failed/.test(m.text())) return;
    problems.push(`${name}: console error: ${m.text()}`);
  });
  const response = await page.goto(origin + '/');
  check(response.status() === 200, `${name}: GET / answered ${response.status()}`);
  return page;
}

// Keyboard only: type the user id, Enter connects.
async function signIn(page, user) {
  await page.focus('#user');
  await page.keyboard.type(String(user));
  await page.keyboard.press('Enter');
  await waitConnected(page);
}

async function waitConnected(page) {
  await page.locator('#status[data-state="connected"]').waitFor();
}

// Keyboard only: receiver, Tab to the message box, type, Enter sends. `kind`
// is the "To" choice: a user or a group.
async function say(page, receiver, text, kind = 'user') {
  await page.selectOption('#to-kind', kind);
  await page.fill('#receiver', String(receiver));
  await page.focus('#receiver');
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.id) === 'message',
        'Tab from the receiver field does not lead to the message box');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
  check(await page.inputValue('#message') === '', 'the message box was not cleared after Enter');
}

// Every message a test sends has a text of its own. The seqs are the
// server's: STATUS entries (the ticks) take seqs of the sender's inbox too,
// so the test reads them off the page instead of predicting them.
const received = (page, text) => page.locator('#conversation li.in', { has: page.locator('.content', { hasText: text }) });
const mine = (page, text) => page.locator('#conversation li.out', { has: page.locator('.content', { hasText: text }) });

// Waits for the received message `text`, then checks it is on the page
// exactly once (after a moment in which a duplicate could still come), with
// its sender and seq, acknowledged. Returns its seq.
async function expectReceivedOnce(page, text, sender, { visible = true } = {}) {
  const item = received(page, text);
  await item.first().waitFor({ state: visible ? 'visible' : 'attached' });
  await sleep(500);
  const count = await item.count();
  check(count === 1, `"${text}" is shown ${count} times, not once`);
  check(await item.locator('.content').textContent() === text, `"${text}" is not shown as it was sent`);
  check(await item.getAttribute('data-sender') === String(sender), `"${text}" does not show sender ${sender}`);
  const seq = await item.getAttribute('data-seq');
  check(/^[1-9][0-9]*$/.test(seq || ''), `"${text}" has no seq`);
  check((await item.locator('.meta').textContent()).includes(`seq ${seq}`), `seq ${seq} is not written on "${text}"`);
  check(await page.locator(`#conversation li.in[data-seq="${seq}"]`).count() === 1, `seq ${seq} is shown twice`);
  await page.locator(`#conversation li.in[data-seq="${seq}"][data-state="acknowledged"]`).waitFor({ state: 'attached' });
  return seq;
}

// The sender's own copy gets the receipt: the receiver's seq, which must be
// the one the receiver's page shows (`seq`, when given).
async function expectStored(page, text, seq) {
  const item = mine(page, text);
  await page.locator('#conversation li.out[data-seq]', { has: page.locator('.content', { hasText: text }) }).waitFor({ state: 'attached' });
  const state = await item.getAttribute('data-state');
  check(['stored', 'delivered', 'read'].includes(state), `"${text}" is ${state}, not stored`);
  const got = await item.getAttribute('data-seq');
  if (seq !== undefined) check(got === String(seq), `"${text}" was receipted with seq ${got}, the receiver shows ${seq}`);
  return got;
}

// The reconnect notice names the `since` asked for; the page asked for at
// least the last seq it showed.
async function expectResumed(page, user, atLeast) {
  const text = await page.locator('#conversation li.notice', { hasText: `Reconnected as user ${user} on device` }).last().textContent();
  const m = text.match(/asked for everything after seq (\d+)\./);
  check(m && BigInt(m[1]) >= BigInt(atLeast), `page of user ${user} resumed with "${text}", not since >= ${atLeast}`);
}

// ---- the scenario ----------------------------------------------------------

async function scenario(ctx) {
  const { server, problems } = ctx;
  await server.start();
  const origin = `http://127.0.0.1:${server.port}`;
  step(`server listening on 127.0.0.1:${server.port}`);

  // The page's HTTP answers: type, CSP, caching.
  const page1 = await fetch(origin + '/');
  check(page1.headers.get('content-type') === 'text/html; charset=utf-8', 'GET / Content-Type');
  const csp = page1.headers.get('content-security-policy') || '';
  check(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), `CSP allows more than the page's own script: ${csp}`);
  check(csp.includes(`connect-src 'self' ws://127.0.0.1:${server.port} wss://127.0.0.1:${server.port}`), `CSP connect-src: ${csp}`);
  const etag = page1.headers.get('etag');
  check(etag && page1.headers.get('cache-control') === 'no-cache', 'GET / has no ETag or no Cache-Control: no-cache');
  const again = await fetch(origin + '/', { headers: { 'If-None-Match': etag } });
  check(again.status === 304, `GET / with If-None-Match answered ${again.status}, not 304`);
  const script = await fetch(origin + '/app.js');
  check(script.headers.get('content-type') === 'text/javascript; charset=utf-8', 'GET /app.js Content-Type');
  step('GET / and its files: Content-Type, CSP without inline code, ETag and 304');

  const proxy = new Proxy(server.port);
  ctx.proxy = proxy;
  await proxy.listen();

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30_000,
  });
  ctx.browser = browser;
  const one = await openPage(browser, origin, 'user 1', problems);
  const two = await openPage(browser, `http://127.0.0.1:${proxy.port}`, 'user 2', problems);
  await signIn(one, 1);
  await signIn(two, 2);
  step('two pages connected as users 1 and 2, by keyboard');

  await say(one, 2, 'Hello 2, this is 1.');
  const first = await expectReceivedOnce(two, 'Hello 2, this is 1.', 1);
  check(first === '1', `user 2's first message has seq ${first}, not 1`);
  await expectStored(one, 'Hello 2, this is 1.', first);
  await say(two, 1, 'Hi 1! Loud and clear.');
  const reply = await expectReceivedOnce(one, 'Hi 1! Loud and clear.', 2);
  await expectStored(two, 'Hi 1! Loud and clear.', reply);
  step('each page sees the other\'s message with its seq, and its own receipted');

  const stopped = await server.stop();
  check(stopped && stopped.code === 0, `SIGTERM: the server exited with ${JSON.stringify(stopped)}, not 0`);
  for (const page of [one, two]) {
    await page.locator('#conversation li.notice', { hasText: 'The server is shutting down or restarting.' }).waitFor();
    await page.locator('#status[data-state="waiting"]').waitFor();
  }
  step('server stopped: both pages say so in plain words and wait to reconnect');

  await proxy.pause();  // user 2 stays away until resume
  await server.start();
  await waitConnected(one);
  await expectResumed(one, 1, reply);
  step('server restarted on the same port and store: page 1 reconnected by itself with since');

  await say(one, 2, 'Sent while you were away.');
  const away = await expectStored(one, 'Sent while you were away.');
  check(BigInt(away) > BigInt(first), `the message sent while away has seq ${away}`);
  check(await two.locator('#status').getAttribute('data-state') !== 'connected', 'page 2 was not away');
  check(await received(two, 'Sent while you were away.').count() === 0, 'page 2 got it while away');
  step(`a message to user 2 stored (seq ${away}) while page 2 is disconnected`);

  await proxy.listen();
  await waitConnected(two);
  await expectResumed(two, 2, first);
  check(await expectReceivedOnce(two, 'Sent while you were away.', 1) === away, 'page 2 shows the missed message with another seq');
  step('page 2 reconnected by itself and shows the missed message exactly once');

  await say(one, 2, 'And one more, live.');
  await expectStored(one, 'And one more, live.', await expectReceivedOnce(two, 'And one more, live.', 1));
  await say(two, 1, 'Got all three.');
  await expectStored(two, 'Got all three.', await expectReceivedOnce(one, 'Got all three.', 2));
  check(await two.locator('#conversation li.in').count() === 3, 'page 2 does not show exactly three messages');
  check(await one.locator('#conversation li.in').count() === 2, 'page 1 does not show exactly two messages');
  step('after the reconnects, live messages flow both ways with no duplicate');

  // ack=manual: everything page 2 showed was acknowledged, so a new tab of
  // user 2 on the same device (the device keeps the place in the inbox),
  // which asks for no `since`, is replayed nothing.
  await sleep(300);
  const device = await two.inputValue('#device');
  check(/^web-[0-9a-f]{8}$/.test(device), `page 2's device is "${device}", not a made-up web-XXXXXXXX`);
  const three = await openPage(browser, origin, 'user 2, second tab', problems);
  check(await three.inputValue('#device') !== device, 'a new browser (context) got the same device name');
  await three.fill('#device', device);
  await signIn(three, 2);
  await three.locator('#conversation li.notice', { hasText: `Connected as user 2 on device ${device}.` }).waitFor();
  await sleep(500);
  check(await three.locator('#conversation li.in').count() === 0, 'a new tab of user 2 was replayed messages page 2 had acknowledged');
  await three.context().close();
  step('page 2 acknowledged what it showed: a new tab of user 2 on its device gets no replay');

  mkdirSync(artifactDir, { recursive: true });
  const shot = path.join(artifactDir, 'browser-conversation.png');
  await two.screenshot({ path: shot });
  await one.screenshot({ path: path.join(artifactDir, 'browser-conversation-user1.png') });
  await two.setViewportSize({ width: 390, height: 780 });
  await two.screenshot({ path: path.join(artifactDir, 'browser-conversation-phone.png') });
  step(`screenshots saved: ${shot} (and -user1, -phone)`);

  await two.setViewportSize({ width: 960, height: 720 });
  await scenarioGroup(ctx, browser, origin, one, two);
  await scenarioTls(ctx, browser);
  await scenarioCluster(ctx, browser);

  check(problems.length === 0, `the pages reported problems:\n  ${problems.join('\n  ')}`);
  step('no uncaught error and no console error (no CSP violation) in any page');
}

// Groups and ticks on the first server (started with --api-key-file), with
// pages 1 and 2 of the first case and one more page, user 3: the test joins
// users 1, 2 and 3 to group 5 through the membership API, as an
// application's backend would. User 1 writes to the group; user 3's page,
// with no conversation yet, opens the group's; user 2's, which has user 1's
// open, counts it unread until the group is opened. Then 1 writes to 2
// directly while 2 has the group open: the message gets ✓ (2's page
// acknowledged it) but not ✓✓ until 2 opens the conversation with 1.
async function scenarioGroup(ctx, browser, origin, one, two) {
  const { problems } = ctx;
  for (const user of [1, 2, 3]) {
    const r = await fetch(`${origin}/api/groups/5/members/${user}`,
                          { method: 'PUT', headers: { Authorization: `Bearer ${ctx.apiKey}` } });
    check(r.status === 204, `PUT /api/groups/5/members/${user} answered ${r.status}`);
  }
  const three = await openPage(browser, origin, 'group user 3', problems);
  await signIn(three, 3);
  step('users 1, 2 and 3 joined to group 5 through the API; a page for user 3');

  const text = 'Hello, group 5.';
  await say(one, 5, text, 'group');
  await Promise.all([expectReceivedOnce(three, text, 1), expectReceivedOnce(two, text, 1, { visible: false })]);
  await two.locator('#conversation-list button[data-conv="g:5"] .unread', { hasText: '1' }).waitFor();
  await two.click('#conversation-list button[data-conv="g:5"]');
  for (const page of [two, three]) {
    const item = received(page, text);
    await item.waitFor();
    check(await item.getAttribute('data-group') === '5' && await item.getAttribute('data-gseq') === '1',
          'the group message does not show group 5, #1');
    check((await item.locator('.who').textContent()) === '1 → group 5', 'the group message does not name its sender and group');
    check(await page.locator('#conversation-list button[data-conv="g:5"][aria-current="true"]').count() === 1,
          'the group\'s conversation is not the open one');
  }
  await one.locator('#conversation li.out[data-gseq="1"][data-state="stored"]', { hasText: text }).waitFor();
  await say(one, 6, 'Not my group.', 'group');
  await one.locator('#conversation li.out[data-state="failed"]', { hasText: 'not a member' }).waitFor();
  step('a group message shows on both other members\' pages, by group, with its sender; a non-member send is refused');

  await say(one, 2, 'Just between us.');
  await expectReceivedOnce(two, 'Just between us.', 1, { visible: false });
  check(!(await received(two, 'Just between us.').isVisible()), 'the direct message shows while the group is open');
  await two.locator('#conversation-list button[data-conv="u:1"] .unread', { hasText: '1' }).waitFor();
  const tick = mine(one, 'Just between us.');
  await one.locator('#conversation li.out[data-state="delivered"]', { hasText: 'Just between us.' }).waitFor();
  check((await tick.locator('.state').textContent()).startsWith('✓ delivered'), 'the delivered tick is not ✓');
  await sleep(300);
  check(await tick.getAttribute('data-state') === 'delivered', 'read before user 2 opened the conversation');
  await one.screenshot({ path: path.join(artifactDir, 'browser-ticks-delivered.png') });
  step('a direct message shows ✓ delivered on the sender\'s page while the receiver has another conversation open');

  await two.click('#conversation-list button[data-conv="u:1"]');
  await received(two, 'Just between us.').waitFor();
  await one.locator('#conversation li.out[data-state="read"]', { hasText: 'Just between us.' }).waitFor();
  check((await tick.locator('.state').textContent()).startsWith('✓✓ read'), 'the read tick is not ✓✓');
  check(await two.locator('#conversation-list button[data-conv="u:1"] .unread').isHidden(), 'the unread count stayed');
  await one.screenshot({ path: path.join(artifactDir, 'browser-ticks-read.png') });
  await three.screenshot({ path: path.join(artifactDir, 'browser-group.png') });
  await three.context().close();
  step('✓✓ read once user 2 opened the conversation; screenshots browser-group.png, browser-ticks-*.png');
}

// The same page from a server that speaks TLS only: https for the page, wss
// for its WebSocket (the page picks wss itself when it came over https).
async function scenarioTls(ctx, browser) {
  const { problems } = ctx;
  const cert = path.join(ctx.dir, 'cert.pem');
  const key = path.join(ctx.dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                           '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
                           '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert],
               { stdio: 'ignore' });
  const server = new Server(serverBinary, `sqlite:${path.join(ctx.dir, 'tls.db')}`,
                            ['--tls-cert', cert, '--tls-key', key]);
  ctx.tlsServer = server;
  await server.start();
  const origin = `https://127.0.0.1:${server.port}`;
  // The certificate is self-signed: trust it for these pages only.
  const trust = { ignoreHTTPSErrors: true };
  const a = await openPage(browser, origin, 'wss user 11', problems, undefined, trust);
  const b = await openPage(browser, origin, 'wss user 12', problems, undefined, trust);
  await signIn(a, 11);
  await signIn(b, 12);
  await say(a, 12, 'Over TLS, end to end.');
  await expectStored(a, 'Over TLS, end to end.', await expectReceivedOnce(b, 'Over TLS, end to end.', 11));
  await say(b, 11, 'Encrypted on the wire.');
  await expectReceivedOnce(a, 'Encrypted on the wire.', 12);
  check(await a.evaluate(() => location.protocol) === 'https:', 'the TLS page was not served over https');
  await b.screenshot({ path: path.join(artifactDir, 'browser-conversation-wss.png') });
  await a.context().close();
  await b.context().close();
  const stopped = await server.stop();
  check(stopped && stopped.code === 0, `SIGTERM: the TLS server exited with ${JSON.stringify(stopped)}, not 0`);
  step(`with --tls-cert/--tls-key: the page over ${origin}, two users talk over wss`);
}

// A cluster (PROTOCOL.md section 7): two servers on one Redis, user 1's page
// on node A and user 2's on node B; each message crosses from one node to the
// other through Redis, with the receiver's seq.
async function scenarioCluster(ctx, browser) {
  const { problems } = ctx;
  const redis = new Redis(path.join(ctx.dir, 'redis'));
  ctx.redis = redis;
  await redis.start();
  const store = `redis://127.0.0.1:${redis.port}`;
  const a = new Server(serverBinary, store, ['--node-id', 'node-a']);
  const b = new Server(serverBinary, store, ['--node-id', 'node-b']);
  ctx.clusterServers = [a, b];
  await a.start();
  await b.start();
  step(`cluster: nodes on 127.0.0.1:${a.port} and 127.0.0.1:${b.port}, one redis-server on ${redis.port}`);

  const one = await openPage(browser, `http://127.0.0.1:${a.port}`, 'cluster user 1 on node A', problems);
  const two = await openPage(browser, `http://127.0.0.1:${b.port}`, 'cluster user 2 on node B', problems);
  await signIn(one, 1);
  await signIn(two, 2);
  await say(one, 2, 'From node A to node B.');
  await expectStored(one, 'From node A to node B.', await expectReceivedOnce(two, 'From node A to node B.', 1));
  await say(two, 1, 'And back from node B.');
  await expectStored(two, 'And back from node B.', await expectReceivedOnce(one, 'And back from node B.', 2));
  step('cluster: user 1 on node A and user 2 on node B see each other\'s messages with their seqs');

  await one.screenshot({ path: path.join(artifactDir, 'browser-cluster-node-a.png') });
  await two.screenshot({ path: path.join(artifactDir, 'browser-cluster-node-b.png') });
  await one.context().close();
  await two.context().close();
  for (const [name, server] of [['A', a], ['B', b]]) {
    const stopped = await server.stop();
    check(stopped && stopped.code === 0, `SIGTERM: node ${name} exited with ${JSON.stringify(stopped)}, not 0`);
  }
  redis.kill();
  step(`cluster: screenshots saved (browser-cluster-node-a.png, -node-b.png), nodes stopped`);
}

// ---- run it, always cleaning up --------------------------------------------

const dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-browser-'));
// The membership API (PROTOCOL.md section 10) is on for the first server:
// the group case joins its users through it.
const apiKey = 'browser-test-key';
writeFileSync(path.join(dir, 'api-key'), `${apiKey}\n`);
const ctx = {
  server: new Server(serverBinary, `sqlite:${path.join(dir, 'switchboard.db')}`,
                     ['--api-key-file', path.join(dir, 'api-key')]),
  problems: [],
  dir,
  apiKey,
};
// Never leave a server or the Redis running.
const killAll = () => {
  ctx.server.kill();
  ctx.tlsServer?.kill();
  for (const s of ctx.clusterServers ?? []) s.kill();
  ctx.redis?.kill();
};
process.on('exit', killAll);
let failure = null;
const deadline = setTimeout(() => {
  console.error(`browser: the scenario took over ${wholeTestMs / 1000} s`);
  killAll();
  console.log(`browser: 0 passed, 1 failed`);
  process.exit(1);
}, wholeTestMs);
try {
  await scenario(ctx);
} catch (e) {
  failure = e;
} finally {
  clearTimeout(deadline);
  await ctx.browser?.close().catch(() => {});
  await ctx.proxy?.close().catch(() => {});
  await ctx.server.stop().catch(() => {});
  killAll();
  rmSync(dir, { recursive: true, force: true });
}
if (failure) {
  console.error(`FAILED after step ${passed.length}: ${failure.stack || failure}`);
  if (ctx.server.log) console.error(`server stderr:\n${ctx.server.log}`);
  for (const s of ctx.clusterServers ?? []) if (s.log) console.error(`cluster node stderr:\n${s.log}`);
  console.log('browser: 0 passed, 1 failed');
  process.exit(1);
}
console.log('browser: 1 passed, 0 failed');

// switchboard-client against the real server binary (test/server.mjs),
// with the ws package as the WebSocket (Node.js 18 has none of its own).
//
//   SWITCHBOARD_BINARY=build/release/switchboard node --test clients/js/test/
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import WebSocket from 'ws';

import { SwitchboardClient, SwitchboardError, canonicalUserId, parseFrame } from '../switchboard-client.js';
import { Server, next, tempDir, until } from './support.mjs';

// Quick retries: the tests stop and start servers.
function client(server, user, options = {}) {
  return new SwitchboardClient({
    url: server.url, user, WebSocket, initialRetryMs: 50, maxRetryMs: 400, ...options,
  });
}

// Collects what `c` hands to the application.
function inbox(c) {
  const messages = [];
  c.on('message', (m) => messages.push(m));
  return messages;
}

async function connected(c) {
  const welcome = next(c, 'welcome');
  c.connect();
  return welcome;
}

test('pure helpers keep 64-bit ids exact', () => {
  assert.equal(canonicalUserId('18446744073709551615'), '18446744073709551615');
  assert.equal(canonicalUserId('18446744073709551616'), null);
  assert.equal(canonicalUserId('07'), null);
  assert.equal(canonicalUserId(0), null);
  const f = parseFrame('{"type":1,"sender":18446744073709551615,"receiver":2,"seq":9007199254740993,"content":"\\"seq\\":5"}');
  assert.equal(f.sender, '18446744073709551615');
  assert.equal(f.seq, 9007199254740993n);
  assert.equal(f.content, '"seq":5');
  assert.throws(() => parseFrame('[1]'));
  assert.throws(() => new SwitchboardClient({ url: 'ws://x', user: '1' }), /WebSocket/);
});

test('send resolves on the receipt; the receiver gets it once, with its seq', async (t) => {
  const server = await new Server().start();
  t.after(() => server.stop());
  const alice = client(server, 1);
  const bob = client(server, 2);
  const got = inbox(bob);
  await connected(alice);
  await connected(bob);
  const receipt = await alice.send(2, 'hello', { id: 'm1' });
  assert.deepEqual({ id: receipt.id, receiver: receipt.receiver, seq: receipt.seq }, { id: 'm1', receiver: '2', seq: 1n });
  assert.equal(typeof receipt.ts, 'number');
  await until(() => got.length === 1, 5000, 'the message');
  assert.equal(got[0].content, 'hello');
  assert.equal(got[0].sender, '1');
  assert.equal(got[0].seq, 1n);
  assert.equal(got[0].id, 'm1');
  assert.equal(bob.lastSeq, 1n);
  // The same id again: the server's de-duplication gives the first receipt.
  const again = await alice.send(2, 'hello again', { id: 'm1' });
  assert.equal(again.seq, 1n);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(got.length, 1);
  alice.close();
  bob.close();
});

test('sends made before the welcome are written after it, in order', async (t) => {
  const server = await new Server().start();
  t.after(() => server.stop());
  const alice = client(server, 1);
  const bob = client(server, 2);
  const got = inbox(bob);
  const receipts = [1, 2, 3].map((i) => alice.send('2', `early ${i}`));
  alice.connect();
  await connected(bob);
  const seqs = (await Promise.all(receipts)).map((r) => r.seq);
  assert.deepEqual(seqs, [1n, 2n, 3n]);
  await until(() => got.length === 3, 5000, 'three messages');
  assert.deepEqual(got.map((m) => m.content), ['early 1', 'early 2', 'early 3']);
  alice.close();
  bob.close();
});

test('a server restart in the middle of a stream of sends: every send resolved once, each message seen once, in order', async (t) => {
  const { dir, remove } = tempDir();
  t.after(remove);
  const server = await new Server(['--store', `sqlite:${path.join(dir, 'db.sqlite')}`]).start();
  t.after(() => server.stop());
  const alice = client(server, 1);
  // ack=manual with an ack per message: what the kernel took but the
  // client never read when the server died comes again.
  const bob = client(server, 2, { ack: 'manual' });
  const got = [];
  bob.on('message', (m) => { got.push(m); bob.ack(m.seq); });
  await connected(alice);
  await connected(bob);

  const total = 400;
  const resolved = new Map();  // index -> times resolved
  const sends = [];
  let killed = false;
  for (let i = 0; i < total; i += 1) {
    sends.push(alice.send(2, `m${i}`).then((receipt) => {
      resolved.set(i, (resolved.get(i) || 0) + 1);
      return receipt;
    }));
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
    if (i === 150) {
      // A crash, not a drain: whatever was written and not receipted is
      // resent after the reconnect and stored once.
      await server.stop('SIGKILL');
      killed = true;
      await server.start();
    }
  }
  assert.ok(killed);
  const receipts = await Promise.all(sends);
  assert.equal(resolved.size, total);
  assert.ok([...resolved.values()].every((n) => n === 1));
  // Every send has its own seq, 1..total: nothing stored twice.
  assert.deepEqual(receipts.map((r) => r.seq).sort((a, b) => (a < b ? -1 : 1)),
    Array.from({ length: total }, (_, i) => BigInt(i + 1)));
  await until(() => got.length >= total, 20_000, `${total} messages (have ${got.length})`);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(got.length, total);
  assert.deepEqual(got.map((m) => m.seq), Array.from({ length: total }, (_, i) => BigInt(i + 1)));
  // In the order sent: resends go in the order the sends were made.
  assert.deepEqual(got.map((m) => m.content), Array.from({ length: total }, (_, i) => `m${i}`));
  alice.close();
  bob.close();
});

test('ack=manual: a new client resumes above the acknowledged seq; since skips what the app has', async (t) => {
  const { dir, remove } = tempDir();
  t.after(remove);
  const server = await new Server(['--store', `sqlite:${path.join(dir, 'db.sqlite')}`]).start();
  t.after(() => server.stop());
  const alice = client(server, 1);
  await connected(alice);
  for (let i = 1; i <= 5; i += 1) await alice.send(2, `n${i}`);

  const first = client(server, 2, { ack: 'manual' });
  const got1 = inbox(first);
  await connected(first);
  await until(() => got1.length === 5, 5000, 'five messages');
  first.ack(3n);
  await new Promise((r) => setTimeout(r, 100));  // the RECEIVE reaches the server
  first.close();
  await next(first, 'close');

  // The application kept nothing: the server replays above its cursor, 3.
  const second = client(server, 2, { ack: 'manual' });
  const got2 = inbox(second);
  await connected(second);
  await until(() => got2.length === 2, 5000, 'the two unacknowledged messages');
  assert.deepEqual(got2.map((m) => m.content), ['n4', 'n5']);
  second.close();
  await next(second, 'close');

  // The application kept lastSeq 5: nothing comes twice; the next one comes once.
  const third = client(server, 2, { ack: 'manual', since: 5n });
  const got3 = inbox(third);
  const welcome = await connected(third);
  assert.equal(welcome.seq, 5n);
  await alice.send(2, 'n6');
  await until(() => got3.length === 1, 5000, 'the new message');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(got3.map((m) => [m.seq, m.content]), [[6n, 'n6']]);
  alice.close();
  third.close();
});

test('reconnect with capped, jittered backoff, resuming with since', async (t) => {
  const server = await new Server(['--store', 'memory:']).start();
  t.after(() => server.stop());
  const port = server.port;
  const alice = client(server, 1);
  const bob = client(server, 2, { initialRetryMs: 40, maxRetryMs: 160 });
  const got = inbox(bob);
  const delays = [];
  bob.on('state', (s) => { if (s.state === 'waiting') delays.push(s.delayMs); });
  await connected(alice);
  await connected(bob);
  await alice.send(2, 'before');
  await until(() => got.length === 1, 5000, 'the first message');

  await server.stop();
  await new Promise((r) => setTimeout(r, 1200));  // several failed attempts
  assert.ok(delays.length >= 4, `attempts: ${delays.length}`);
  delays.forEach((d, i) => {
    const ceiling = Math.min(160, 40 * 2 ** i);
    assert.ok(d >= ceiling / 2 && d <= ceiling, `delay ${i}: ${d} not in [${ceiling / 2}, ${ceiling}]`);
  });
  server.port = port;
  await server.start();
  await next(bob, 'welcome', 5000);
  // A memory store forgot everything: the welcome's seq 0 is below the
  // client's 1, reported as a reset; counting starts again.
  assert.equal(bob.lastSeq, 0n);
  await until(() => alice.state === 'open', 5000, 'alice back');
  await alice.send(2, 'after');
  await until(() => got.length === 2, 5000, 'the message after the restart');
  assert.equal(got[1].content, 'after');
  assert.equal(got[1].seq, 1n);
  alice.close();
  bob.close();
});

test('a gap in seqs is reported: the server evicted those messages', async (t) => {
  const server = await new Server(['--inbox-limit', '3']).start();
  t.after(() => server.stop());
  const alice = client(server, 1);
  await connected(alice);
  for (let i = 1; i <= 6; i += 1) await alice.send(2, `g${i}`);
  const bob = client(server, 2, { since: 1n });
  const got = inbox(bob);
  const gap = next(bob, 'gap');
  await connected(bob);
  assert.deepEqual(await gap, { from: 2n, to: 3n });
  await until(() => got.length === 3, 5000, 'the held messages');
  assert.deepEqual(got.map((m) => m.seq), [4n, 5n, 6n]);
  alice.close();
  bob.close();
});

test('ERROR frames: a refused send rejects with its code; others are error events', async (t) => {
  const server = await new Server(['--rate-limit', '2']).start();
  t.after(() => server.stop());
  const alice = client(server, 1);
  await connected(alice);
  const results = await Promise.allSettled([1, 2, 3, 4, 5].map((i) => alice.send(2, `r${i}`)));
  const refused = results.filter((r) => r.status === 'rejected');
  assert.ok(refused.length >= 1, 'some sends over the rate limit');
  for (const r of refused) {
    assert.ok(r.reason instanceof SwitchboardError);
    assert.equal(r.reason.code, 'rate_limited');
  }
  assert.equal(alice.pending().length, 0);
  const error = next(alice, 'error');
  alice.ws.send('not json');
  assert.equal((await error).code, 'bad_json');
  await assert.rejects(alice.send('0', 'x'), TypeError);
  alice.close();
});

test('CLOSE replaced: the older session stops and does not come back; close() says bye', async (t) => {
  const server = await new Server(['--max-sessions-per-user', '1']).start();
  t.after(() => server.stop());
  const older = client(server, 7);
  await connected(older);
  const closed = next(older, 'close');
  const newer = client(server, 7);
  await connected(newer);
  const info = await closed;
  assert.equal(info.code, 'replaced');
  assert.equal(info.wsCode, 4001);
  assert.equal(info.reconnecting, false);
  assert.equal(older.state, 'closed');
  await assert.rejects(older.send(2, 'x'), (e) => e.code === 'closed');

  // A send without its receipt when close() is called is rejected, not lost silently.
  const bye = next(newer, 'close');
  newer.close();
  const last = await bye;
  assert.equal(last.code, 'bye');
  assert.equal(last.wsCode, 1000);
  assert.equal(newer.state, 'closed');
});

test('a token, asked for before each connection; a refused one keeps retrying', async (t) => {
  const { dir, remove } = tempDir();
  t.after(remove);
  const secretFile = path.join(dir, 'secret');
  writeFileSync(secretFile, 'test secret\n');
  const server = await new Server(['--jwt-secret-file', secretFile]).start();
  t.after(() => server.stop());
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const jwt = (sub) => {
    const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub })}`;
    return `${body}.${createHmac('sha256', 'test secret').update(body).digest('base64url')}`;
  };
  let asked = 0;
  const alice = client(server, 1, { token: async () => { asked += 1; return jwt('1'); } });
  await connected(alice);
  assert.equal(asked, 1);
  const receipt = await alice.send(1, 'note to self');
  assert.equal(receipt.seq, 1n);

  const mallory = client(server, 2, { token: jwt('1') });
  mallory.connect();
  const info = await next(mallory, 'close');
  assert.equal(info.opened, false);
  assert.equal(info.reconnecting, true);
  mallory.close();
  alice.close();
});

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
  const g = parseFrame('{"type":1,"sender":1,"group":18446744073709551615,"receiver":2,"seq":3,"gseq":9007199254740993}');
  assert.deepEqual([g.group, g.gseq], ['18446744073709551615', 9007199254740993n]);
  const st = parseFrame('{"type":5,"receiver":2,"state":"read","upto":9007199254740993,"seq":7,"ts":1}');
  assert.deepEqual([st.receiver, st.upto, st.seq], ['2', 9007199254740993n, 7n]);
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

test('devices: each keeps its own place in the user\'s inbox; the welcome names it', async (t) => {
  assert.throws(() => client({ url: 'ws://x' }, 2, { device: '' }), /device/);
  assert.throws(() => client({ url: 'ws://x' }, 2, { device: 'a b' }), /device/);
  assert.throws(() => client({ url: 'ws://x' }, 2, { device: 'x'.repeat(65) }), /device/);
  const server = await new Server().start();
  t.after(() => server.stop());
  // The laptop was seen before: a message is held for every device seen
  // within --device-ttl (a device new to the server gets only what is held).
  const seen = client(server, 2, { device: 'laptop' });
  await connected(seen);
  seen.close();
  await next(seen, 'close');
  const alice = client(server, 1);
  await connected(alice);
  await alice.send(2, 'd1');
  await alice.send(2, 'd2');

  const phone = client(server, 2, { device: 'phone-1.a_b' });
  const gotPhone = inbox(phone);
  const welcome = await connected(phone);
  assert.equal(welcome.device, 'phone-1.a_b');
  assert.equal(phone.device, 'phone-1.a_b');
  await until(() => gotPhone.length === 2, 5000, 'the phone\'s two messages');
  phone.close();
  await next(phone, 'close');

  // ack=auto moved the phone's cursor only: the laptop is replayed both.
  const laptop = client(server, 2, { device: 'laptop' });
  const gotLaptop = inbox(laptop);
  await connected(laptop);
  await until(() => gotLaptop.length === 2, 5000, 'the laptop\'s two messages');
  assert.deepEqual(gotLaptop.map((m) => m.content), ['d1', 'd2']);

  // The phone again, with nothing kept by the application: nothing twice.
  const phoneAgain = client(server, 2, { device: 'phone-1.a_b' });
  const gotAgain = inbox(phoneAgain);
  await connected(phoneAgain);
  await alice.send(2, 'd3');
  await until(() => gotAgain.length === 1 && gotLaptop.length === 3, 5000, 'd3 on both devices');
  assert.deepEqual(gotAgain.map((m) => [m.seq, m.content]), [[3n, 'd3']]);

  // No device option: the default device, named ''.
  const plain = client(server, 2);
  assert.equal((await connected(plain)).device, '');
  for (const c of [alice, laptop, phoneAgain, plain]) c.close();
});

// A server with the membership API on (section 10), and a PUT of `users` into `group`.
async function apiServer(t, args = []) {
  const { dir, remove } = tempDir();
  t.after(remove);
  const keyFile = path.join(dir, 'api-key');
  writeFileSync(keyFile, 'api secret\n');
  const server = await new Server(['--api-key-file', keyFile, ...args]).start();
  t.after(() => server.stop());
  server.join = async (group, ...users) => {
    for (const user of users) {
      const r = await fetch(`http://127.0.0.1:${server.port}/api/groups/${group}/members/${user}`, {
        method: 'PUT', headers: { Authorization: 'Bearer api secret' },
      });
      assert.equal(r.status, 204, `PUT user ${user} into group ${group}`);
    }
  };
  return server;
}

test('groups: a send reaches every other member with its gseq; the group receipt resolves it; not_member', async (t) => {
  const server = await apiServer(t);
  await server.join(9, 1, 2, 3);
  const [alice, bob, carol, dave] = [1, 2, 3, 4].map((u) => client(server, u));
  const [gotAlice, gotBob, gotCarol] = [alice, bob, carol].map(inbox);
  for (const c of [alice, bob, carol, dave]) await connected(c);
  await alice.send(2, 'direct first');  // bob's seq 1: his group copy is his seq 2

  const receipt = await alice.sendToGroup('9', 'lunch?', { id: 'g-1' });
  assert.deepEqual({ ...receipt, ts: typeof receipt.ts }, { id: 'g-1', group: '9', gseq: 1n, ts: 'number' });
  const second = await alice.sendToGroup(9, 'at noon');
  assert.equal(second.gseq, 2n);
  await until(() => gotBob.length === 3 && gotCarol.length === 2, 5000, 'the group copies');
  const copy = gotBob[1];
  assert.deepEqual([copy.sender, copy.group, copy.receiver, copy.content, copy.seq, copy.gseq, copy.id],
    ['1', '9', '2', 'lunch?', 2n, 1n, 'g-1']);
  assert.deepEqual(gotCarol.map((m) => [m.group, m.seq, m.gseq, m.content]),
    [['9', 1n, 1n, 'lunch?'], ['9', 2n, 2n, 'at noon']]);
  assert.equal(gotBob[0].group, undefined);

  // A resend with the same id gets the original group receipt.
  const again = await alice.sendToGroup(9, 'lunch? (again)', { id: 'g-1' });
  assert.equal(again.gseq, 1n);

  // Not a member: refused, nothing stored.
  await assert.rejects(dave.sendToGroup(9, 'let me in', { id: 'x' }),
    (e) => e instanceof SwitchboardError && e.code === 'not_member' && e.id === 'x');
  await assert.rejects(dave.sendToGroup('0', 'x'), TypeError);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(gotAlice.length, 0, 'the sender gets no copy');
  assert.equal(gotCarol.length, 2);
  for (const c of [alice, bob, carol, dave]) c.close();
});

test('notify: delivered, then read after READ; STATUS entries take the sender\'s seqs and are acked and replayed', async (t) => {
  const server = await apiServer(t);
  const alice = client(server, 1, { ack: 'manual' });
  const statuses = [];
  alice.on('status', (s) => statuses.push(s));
  const bob = client(server, 2, { ack: 'manual' });
  const gotBob = inbox(bob);
  await connected(alice);
  await connected(bob);
  await assert.rejects(alice.send(2, 'x', { notify: 'yes' }), TypeError);

  await alice.send(2, 'quiet');  // no notify: no STATUS about it
  const receipt = await alice.send(2, 'lunch?', { notify: true });
  assert.equal(receipt.seq, 2n);
  await until(() => gotBob.length === 2, 5000, 'bob\'s messages');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(statuses.length, 0, 'nothing delivered before bob acknowledged');

  bob.ack(2n);
  await until(() => statuses.length === 1, 5000, 'the delivered STATUS');
  assert.deepEqual({ ...statuses[0], ts: typeof statuses[0].ts },
    { seq: 1n, receiver: '2', state: 'delivered', upto: 2n, ts: 'number' });
  assert.equal(alice.lastSeq, 1n, 'a STATUS is an entry of the sender\'s inbox');
  alice.ack(statuses[0].seq);

  bob.read(2n);
  await until(() => statuses.length === 2, 5000, 'the read STATUS');
  assert.deepEqual([statuses[1].state, statuses[1].upto, statuses[1].seq], ['read', 2n, 2n]);
  assert.equal(alice.lastSeq, 2n);
  await new Promise((r) => setTimeout(r, 100));  // alice's RECEIVE of seq 1 reaches the server
  alice.close();
  await next(alice, 'close');

  // A new session of alice's device replays what she did not acknowledge: the "read".
  const again = client(server, 1, { ack: 'manual' });
  const replayed = [];
  again.on('status', (s) => replayed.push(s));
  const welcome = await connected(again);
  assert.equal(welcome.seq, 2n);
  await until(() => replayed.length === 1, 5000, 'the replayed STATUS');
  assert.deepEqual([replayed[0].seq, replayed[0].state, replayed[0].upto], [2n, 'read', 2n]);
  // And with since = the last seq the application has, nothing again.
  const withSince = client(server, 1, { since: again.lastSeq });
  const none = [];
  withSince.on('status', (s) => none.push(s));
  await connected(withSince);
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(none.length, 0);
  for (const c of [bob, again, withSince]) c.close();
});

test('a READ made while disconnected goes after the next welcome; STATUS seqs leave no gap', async (t) => {
  const server = await new Server().start();
  t.after(() => server.stop());
  const alice = client(server, 1);
  const statuses = [];
  const gaps = [];
  const gotAlice = inbox(alice);
  alice.on('status', (s) => statuses.push(s));
  alice.on('gap', (g) => gaps.push(g));
  const bob = client(server, 2, { ack: 'manual' });
  const gotBob = inbox(bob);
  await connected(alice);
  await connected(bob);
  await alice.send(2, 'did you see this?', { notify: true });
  await until(() => gotBob.length === 1, 5000, 'bob\'s message');
  bob.ack(1n);
  await until(() => statuses.length === 1, 5000, 'delivered');

  // The connection drops; the application reads meanwhile.
  const back = next(bob, 'welcome');
  bob.ws.close();
  await until(() => bob.state !== 'open', 5000, 'bob\'s drop');
  bob.read(1n);
  await back;
  await until(() => statuses.length === 2, 5000, 'read, after the reconnect');
  assert.deepEqual(statuses.map((s) => [s.seq, s.state, s.upto]), [[1n, 'delivered', 1n], [2n, 'read', 1n]]);

  await bob.send(1, 'yes');
  await until(() => gotAlice.length === 1, 5000, 'bob\'s answer');
  assert.equal(gotAlice[0].seq, 3n);
  assert.deepEqual(gaps, []);
  alice.close();
  bob.close();
});

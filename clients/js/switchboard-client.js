// switchboard-client: the client side of Switchboard's protocol (PROTOCOL.md)
// as one dependency-free ES module, for browsers and Node.js.
//
// What it does for the application, and why (docs/clients.md has the rules
// any client must follow; this module is their reference):
// - one WebSocket to /ws/{user}, reopened after every drop with a capped,
//   jittered exponential backoff, asking with `since` for exactly what it
//   has not delivered yet;
// - messages handed to the application once each, in seq order: a replayed
//   seq at or below the last one delivered is dropped (ack=manual replays are
//   at least once); a jump in seqs is reported as a gap (the server evicted
//   those messages);
// - sends with a client id, each a promise resolved by the server's receipt;
//   a send without a receipt when the connection drops is written again,
//   with the same id, after the next welcome: the server's de-duplication
//   answers with the original receipt, so nothing is stored twice;
// - ack=auto (the server moves the cursor as it writes) or ack=manual (the
//   application calls ack(seq) once a message is safe on its side);
// - events for the server's ERROR frames and CLOSE notices with their codes;
// - a device name (`?device=`, PROTOCOL.md section 9): each device of a user
//   keeps its own place in the user's inbox;
// - group sends (section 10), whose receipts carry the group's `gseq`;
// - delivery and read notifications (section 11): `notify` on a send, READ
//   with read(seq), and the STATUS frames that answer them as `status`
//   events. A STATUS is an entry of the user's inbox like a message: it has
//   a seq of the user's own, so it counts for lastSeq, `since`, gaps and
//   acks exactly as a message does.
//
// User ids, group ids and seqs go up to 2^64-1, beyond what a JS number
// holds exactly: ids are decimal strings and seqs BigInts in everything
// this module hands out.

const maxUserId = 18446744073709551615n;

// The CLOSE codes after which reconnecting would only repeat the close:
// `replaced` (another session of this user took this one's place) and `bye`
// (this client asked).
const finalCloseCodes = new Set(['replaced', 'bye']);

// WebSocket readyState OPEN, the same in every implementation.
const OPEN = 1;

/** A refusal by the server (an ERROR frame's code) or by this client. */
export class SwitchboardError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'SwitchboardError';
    this.code = code;
  }
}

/** The canonical decimal form of a user id (1..2^64-1), or null. */
export function canonicalUserId(value) {
  const text = typeof value === 'string' ? value.trim() : String(value);
  if (!/^[1-9][0-9]{0,19}$/.test(text)) return null;
  return BigInt(text) <= maxUserId ? text : null;
}

/** Group ids are read exactly as user ids (their own namespace). */
export const canonicalGroupId = canonicalUserId;

/** A device name as PROTOCOL.md section 9 allows it (1 to 64 of A-Z a-z 0-9 . _ -), or null. */
export function validDevice(value) {
  return typeof value === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(value) ? value : null;
}

// Ids (text) and seqs (BigInt) of the server's frames, read as text before
// JSON.parse so that they stay exact.
const idKeys = ['sender', 'receiver', 'group'];
const seqKeys = ['seq', 'gseq', 'upto'];

// One frame from the server, with ids and seqs exact. Inside a JSON string
// every quote is escaped, so only real keys match.
export function parseFrame(text) {
  const quoted = String(text).replace(/"(sender|receiver|group|seq|gseq|upto)":(\d+)/g, '"$1":"$2"');
  const frame = JSON.parse(quoted);
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
    throw new Error('not a JSON object');
  }
  for (const key of seqKeys) if (frame[key] !== undefined) frame[key] = BigInt(frame[key]);
  for (const key of idKeys) if (typeof frame[key] === 'number') frame[key] = String(frame[key]);
  return frame;
}

function randomHex(bytes) {
  const a = new Uint8Array(bytes);
  if (globalThis.crypto && typeof globalThis.crypto.getRandomValues === 'function') {
    globalThis.crypto.getRandomValues(a);
  } else {
    for (let i = 0; i < bytes; i += 1) a[i] = Math.floor(Math.random() * 256);
  }
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class SwitchboardClient {
  /**
   * @param {object} options see switchboard-client.d.ts
   */
  constructor(options) {
    const o = options || {};
    const user = canonicalUserId(o.user ?? '');
    if (!user) throw new TypeError('user: a user id from 1 to 18446744073709551615');
    if (o.ack !== undefined && o.ack !== 'auto' && o.ack !== 'manual') {
      throw new TypeError("ack: 'auto' or 'manual'");
    }
    if (o.device !== undefined && o.device !== null && !validDevice(o.device)) {
      throw new TypeError('device: 1 to 64 of A-Z a-z 0-9 . _ -');
    }
    this.url = String(o.url || '').replace(/\/+$/, '').replace(/^http/, 'ws');
    if (!/^wss?:\/\//.test(this.url)) throw new TypeError('url: ws://HOST:PORT or wss://HOST:PORT');
    this.user = user;
    this.ackMode = o.ack || 'auto';
    this.token = o.token;
    /** The session's device: the option, then what the welcome says ('' is the default device). */
    this.device = o.device ?? '';
    this.requestedDevice = o.device ?? null;
    this.WebSocket = o.WebSocket || globalThis.WebSocket;
    if (typeof this.WebSocket !== 'function') {
      throw new TypeError('no WebSocket: pass options.WebSocket (Node.js before 22: the ws package)');
    }
    this.initialRetryMs = o.initialRetryMs ?? 500;  // 0.5 s, 1 s, 2 s ... with jitter
    this.maxRetryMs = o.maxRetryMs ?? 15000;        // and never more than 15 s between attempts
    this.idPrefix = o.idPrefix || randomHex(6);

    /** The highest seq handed to the application: `since` of the next session. */
    this.lastSeq = o.since !== undefined && o.since !== null ? BigInt(o.since) : 0n;
    /** ack=manual: the highest seq the application acknowledged. */
    this.ackedSeq = 0n;
    /** The highest seq the application said the user has seen (READ). */
    this.readSeq = 0n;
    /** 'idle' | 'connecting' | 'open' | 'waiting' | 'closed' */
    this.state = 'idle';
    /** The welcome of the current session, or null. */
    this.session = null;

    this.listeners = new Map();
    this.ws = null;
    this.opened = false;      // the current socket completed its handshake
    this.closeNotice = null;  // the CLOSE frame of the current socket, if one came
    this.wanted = false;      // connect() called and close() not: reconnect on drops
    this.reopen = false;      // the socket is closed to open a new one at once
    this.attempt = 0;         // failed attempts since the last welcome
    this.retryTimer = null;
    this.counter = 0;
    this.lastSentId = null;   // the newest SEND written, blamed for a 1009 close
    // Sends without a receipt, in the order they were made: id -> entry.
    this.outgoing = new Map();
  }

  // ---- events ---------------------------------------------------------------

  /** Adds a listener; returns a function that removes it. */
  on(event, listener) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(listener);
    return () => this.off(event, listener);
  }

  off(event, listener) {
    const set = this.listeners.get(event);
    if (set) set.delete(listener);
  }

  emit(event, value) {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(value);
      } catch (e) {
        // An application bug must not break the connection's bookkeeping.
        setTimeout(() => { throw e; });
      }
    }
  }

  setState(state, detail = {}) {
    this.state = state;
    this.emit('state', { state, ...detail });
  }

  // ---- the connection -------------------------------------------------------

  /** Opens the session (and keeps it open until close()). */
  connect() {
    this.wanted = true;
    if (this.ws) return;
    this.open();
  }

  /**
   * Ends the session: CLOSE, then the socket. Sends still waiting for their
   * receipt are rejected with code `closed` (send them again, with the same
   * ids, from a new client to keep them exactly once).
   */
  close() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    if (ws && ws.readyState === OPEN) {
      try { ws.send('{"type":3}'); } catch { /* closing anyway */ }
      // A server that does not answer CLOSE is left anyway.
      setTimeout(() => { if (this.ws === ws) ws.close(); }, 3000);
    } else if (ws) {
      ws.close();
    } else if (this.state !== 'closed') {
      // Between attempts: no socket to close.
      this.emit('close', { code: null, wsCode: 1005, reason: '', opened: false, reconnecting: false });
      this.finish();
    }
  }

  finish() {
    for (const [id, out] of this.outgoing) {
      this.outgoing.delete(id);
      out.reject(new SwitchboardError('closed', 'the client was closed before the receipt came'));
    }
    this.setState('closed');
  }

  sessionUrl(token) {
    const query = [`ack=${this.ackMode}`];
    if (this.requestedDevice !== null) query.push(`device=${encodeURIComponent(this.requestedDevice)}`);
    if (this.lastSeq > 0n) query.push(`since=${this.lastSeq}`);
    if (token) query.push(`token=${encodeURIComponent(token)}`);
    return `${this.url}/ws/${this.user}?${query.join('&')}`;
  }

  async open() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.ws || !this.wanted) return;
    this.setState('connecting', { attempt: this.attempt });
    let token = this.token;
    if (typeof token === 'function') {
      try {
        token = await token();
      } catch (e) {
        this.emit('error', new SwitchboardError('token', `the token function failed: ${e.message}`));
        this.scheduleRetry();
        return;
      }
      if (this.ws || !this.wanted) return;
    }
    let ws;
    try {
      ws = new this.WebSocket(this.sessionUrl(token));
    } catch (e) {
      this.emit('error', new SwitchboardError('connect', e.message));
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.opened = false;
    this.closeNotice = null;
    this.session = null;
    ws.onopen = () => { if (ws === this.ws) this.opened = true; };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = parseFrame(event.data);
      } catch (e) {
        this.emit('error', new SwitchboardError('bad_frame', `unreadable frame from the server: ${e.message}`));
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => { if (ws === this.ws) this.onClosed(event); };
    ws.onerror = () => { /* onclose follows and says what to do */ };
  }

  transmit(text) {
    if (!this.ws || this.ws.readyState !== OPEN || !this.session) return false;
    this.ws.send(text);
    return true;
  }

  onFrame(frame) {
    switch (frame.type) {
      case 0: return this.onWelcome(frame);
      case 1: return this.onMessage(frame);
      case 2: return this.onReceipt(frame);
      case 3: return this.onCloseNotice(frame);
      case 4: return this.onError(frame);
      case 5: return this.onStatus(frame);
      default: return undefined;  // frame types this client does not know are not its business
    }
  }

  onWelcome(frame) {
    const high = frame.seq ?? 0n;
    if (high < this.lastSeq) {
      // The server holds fewer seqs for this user than were delivered: its
      // store was reset (a memory store restarted) and its seqs start again.
      // It would hold back the new seqs up to `since`: open again from `high`.
      const was = this.lastSeq;
      this.lastSeq = high;
      this.ackedSeq = high;
      if (this.readSeq > high) this.readSeq = high;
      this.emit('reset', { lastSeq: was, serverSeq: high });
      this.reopen = true;
      this.ws.close();
      return;
    }
    if (typeof frame.device === 'string') this.device = frame.device;
    this.session = { session: frame.session, seq: high, receiver: frame.receiver, device: this.device };
    this.attempt = 0;
    this.setState('open', { session: frame.session, seq: high });
    this.emit('welcome', { session: frame.session, seq: high, device: this.device });
    // ack=manual: a RECEIVE of the last session may have been lost with it;
    // so may a READ (both are cumulative: sending one again is harmless).
    if (this.ackMode === 'manual' && this.ackedSeq > 0n) this.transmit(`{"type":2,"seq":${this.ackedSeq}}`);
    if (this.readSeq > 0n) this.transmit(`{"type":6,"seq":${this.readSeq}}`);
    // Every send without a receipt goes (again) in the order it was made;
    // a resend keeps its id, so the server stores it once.
    for (const out of this.outgoing.values()) this.write(out);
  }

  // An inbox entry (a message or a STATUS) with its seq: true when it is new
  // to the application, which then gets it; lastSeq moves to it.
  takeSeq(seq) {
    if (seq <= this.lastSeq) {
      // A replay of what the application already has (ack=manual is at
      // least once): not delivered again. Acknowledged again if it was, so
      // that the server's cursor catches up.
      if (this.ackMode === 'manual' && this.ackedSeq >= seq) this.transmit(`{"type":2,"seq":${this.ackedSeq}}`);
      return false;
    }
    if (this.lastSeq > 0n && seq > this.lastSeq + 1n) {
      // Seqs have no gaps: these were evicted (retention, inbox limit) or,
      // with ack=auto, written to another session of this user.
      this.emit('gap', { from: this.lastSeq + 1n, to: seq - 1n });
    }
    this.lastSeq = seq;
    return true;
  }

  onMessage(frame) {
    if (frame.seq === undefined || !this.takeSeq(frame.seq)) return;
    const seq = frame.seq;
    const message = {
      seq,
      sender: frame.sender,
      receiver: frame.receiver,
      content: frame.content,
      ts: frame.ts,
    };
    if (frame.id !== undefined) message.id = frame.id;
    for (const [key, value] of Object.entries(frame)) {
      if (!(key in message) && key !== 'type') message[key] = value;
    }
    this.emit('message', message);
  }

  onReceipt(frame) {
    if (frame.id === undefined) return;
    const id = String(frame.id);
    const out = this.outgoing.get(id);
    if (!out) return;  // a second receipt for a resend: resolved already
    this.outgoing.delete(id);
    const receipt = { id, seq: frame.seq, ts: frame.ts };
    if (frame.receiver !== undefined) receipt.receiver = frame.receiver;
    if (frame.group !== undefined) {
      // A group receipt: every member's copy is stored; no receiver, no seq.
      receipt.group = frame.group;
      receipt.gseq = frame.gseq;
      delete receipt.seq;
    }
    out.resolve(receipt);
  }

  // A delivery or read notification about this user's own notify-messages
  // to `receiver` (PROTOCOL.md section 11): an inbox entry with its own seq.
  onStatus(frame) {
    if (frame.seq === undefined || !this.takeSeq(frame.seq)) return;
    this.emit('status', {
      seq: frame.seq,
      receiver: frame.receiver,
      state: frame.state,
      upto: frame.upto,
      ts: frame.ts,
    });
  }

  onCloseNotice(frame) {
    this.closeNotice = frame;
  }

  onError(frame) {
    const error = new SwitchboardError(frame.code, frame.content);
    if (frame.id !== undefined) {
      error.id = String(frame.id);
      const out = this.outgoing.get(error.id);
      if (out) {
        // Nothing of that SEND was stored: the promise says why, and the
        // application decides whether to send it again (same id is safe).
        this.outgoing.delete(error.id);
        out.reject(error);
        return;
      }
    }
    this.emit('error', error);
  }

  onClosed(event) {
    const notice = this.closeNotice;
    const opened = this.opened;
    this.ws = null;
    this.session = null;
    this.closeNotice = null;
    // A message that made the server close with 1009 (too large) would only
    // do it again: it is refused instead of resent.
    if (event.code === 1009 && this.lastSentId && this.outgoing.has(this.lastSentId)) {
      const out = this.outgoing.get(this.lastSentId);
      this.outgoing.delete(this.lastSentId);
      out.reject(new SwitchboardError('too_large', 'over the server\'s --max-message-bytes'));
    }
    let code = notice ? notice.code : null;
    if (!code && event.code === 4001) code = 'replaced';
    const final = !this.wanted || finalCloseCodes.has(code);
    const info = {
      code,                              // the CLOSE notice's code, if one came
      wsCode: event.code,                // the WebSocket close code (1006: dropped)
      reason: notice ? notice.content : event.reason || '',
      opened,                            // false: the connection or upgrade failed
      reconnecting: !final || this.reopen,
    };
    if (this.reopen && this.wanted) {
      this.reopen = false;
      this.emit('close', info);
      this.open();
      return;
    }
    this.reopen = false;
    if (final) {
      this.wanted = false;
      this.emit('close', info);
      this.finish();
      return;
    }
    info.delayMs = this.scheduleRetry();
    this.emit('close', info);
  }

  // Exponential backoff with jitter, so that the clients of a server that
  // went away do not all come back in the same instant. Returns the delay.
  scheduleRetry() {
    const ceiling = Math.min(this.maxRetryMs, this.initialRetryMs * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.open(), delay);
    this.setState('waiting', { delayMs: delay, attempt: this.attempt });
    return delay;
  }

  /** Stops waiting for the backoff and reconnects now (the network is back). */
  reconnectNow() {
    if (this.wanted && this.retryTimer) this.open();
  }

  // ---- sending and acknowledging ---------------------------------------------

  /**
   * Sends `content` to user `receiver`. Resolves with the receipt once the
   * server stored it; rejects with a SwitchboardError for an ERROR frame
   * about it, a 1009 close (`too_large`) or close() (`closed`). Written now
   * when the session is open, otherwise after the next welcome.
   */
  send(receiver, content, options = {}) {
    const to = canonicalUserId(receiver);
    if (!to) return Promise.reject(new TypeError('receiver: a user id from 1 to 18446744073709551615'));
    if (options.notify !== undefined && typeof options.notify !== 'boolean') {
      return Promise.reject(new TypeError('notify: true or false'));
    }
    return this.enqueue({ receiver: to, notify: options.notify === true }, content, options);
  }

  /**
   * Sends `content` to every other member of group `group` (PROTOCOL.md
   * section 10). Resolves with the group receipt `{id, group, gseq, ts}`
   * once every copy is stored; rejects like send(), and with code
   * `not_member` when this user is not in the group.
   */
  sendToGroup(group, content, options = {}) {
    const to = canonicalGroupId(group);
    if (!to) return Promise.reject(new TypeError('group: a group id from 1 to 18446744073709551615'));
    return this.enqueue({ group: to }, content, options);
  }

  enqueue(target, content, options) {
    if (typeof content !== 'string') return Promise.reject(new TypeError('content: a string'));
    const id = options.id !== undefined ? String(options.id) : `${this.idPrefix}-${++this.counter}`;
    if (this.outgoing.has(id)) return this.outgoing.get(id).promise;
    if (!this.wanted && this.state === 'closed') {
      return Promise.reject(new SwitchboardError('closed', 'the client is closed'));
    }
    const out = { id, ...target, content };
    out.promise = new Promise((resolve, reject) => { out.resolve = resolve; out.reject = reject; });
    this.outgoing.set(id, out);
    if (this.session) this.write(out);
    return out.promise;
  }

  write(out) {
    // Built as text: the receiver or group may be above 2^53 and must stay exact.
    const to = out.group !== undefined ? `"group":${out.group}` : `"receiver":${out.receiver}`;
    const notify = out.notify ? ',"notify":true' : '';
    const frame = `{"type":1,${to},"content":${JSON.stringify(out.content)},"id":${JSON.stringify(out.id)}${notify}}`;
    if (this.transmit(frame)) {
      this.lastSentId = out.id;
      this.emit('sent', out.group !== undefined ? { id: out.id, group: out.group } : { id: out.id, receiver: out.receiver });
    }
  }

  /** The sends still waiting for their receipt: persist these to resend after a restart. */
  pending() {
    return [...this.outgoing.values()].map(({ id, receiver, group, notify, content }) => (
      group !== undefined ? { id, group, content } : { id, receiver, content, ...(notify ? { notify } : {}) }));
  }

  /**
   * ack=manual: everything up to `seq` is safe on the application's side;
   * the server may drop it. Cumulative. Sent now, or after the next welcome.
   */
  ack(seq) {
    const n = BigInt(seq);
    if (n <= this.ackedSeq) return;
    this.ackedSeq = n;
    if (this.ackMode === 'manual') this.transmit(`{"type":2,"seq":${n}}`);
  }

  /**
   * The user has seen everything up to `seq` (READ, PROTOCOL.md section
   * 11): the senders who asked are told "read". Cumulative; it moves no
   * cursor. Sent now, and again after the next welcome.
   */
  read(seq) {
    const n = BigInt(seq);
    if (n <= this.readSeq) return;
    this.readSeq = n;
    this.transmit(`{"type":6,"seq":${n}}`);
  }
}

export default SwitchboardClient;

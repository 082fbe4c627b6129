// Switchboard's browser chat client. The wire contract is PROTOCOL.md:
// one WebSocket per tab at /ws/{userId}?ack=manual[&since=N][&token=T],
// JSON text frames of type 0 CONNECT, 1 SEND, 2 RECEIVE, 3 CLOSE, 4 ERROR.
//
// What the page keeps, and why:
// - lastSeq, the highest seq of this user it has shown: the `since` of the
//   next session after a drop, so a reconnect asks for exactly what it missed;
// - shown, the seqs on screen: replays are at least once (ack=manual), so a
//   seq seen again is acknowledged again but not shown twice;
// - outgoing, its own messages by client id: a message without a receipt when
//   the connection drops is sent again with the same id after the reconnect,
//   and the server's de-duplication answers with the original receipt.
'use strict';

(() => {
  const maxUserId = 18446744073709551615n;
  const firstRetryMs = 500;  // backoff: 0.5 s, 1 s, 2 s ... with jitter
  const maxRetryMs = 15000;  // and never more than 15 s between attempts

  const $ = (id) => document.getElementById(id);
  const ui = {
    signIn: $('sign-in'), user: $('user'), token: $('token'),
    connect: $('connect'), disconnect: $('disconnect'), status: $('status'),
    main: document.querySelector('main'), conversation: $('conversation'),
    compose: $('compose'), receiver: $('receiver'), message: $('message'),
  };

  const state = {
    me: null,             // this tab's user id, canonical decimal text
    token: '',            // sent as ?token= when not empty
    ws: null,             // the current socket, null between sessions
    opened: false,        // the current socket completed its handshake
    live: false,          // the current socket got its welcome
    wanted: false,        // the person wants a connection: reconnect on drops
    attempt: 0,           // failed attempts since the last welcome
    retryTimer: null,     // the pending reconnect
    countdown: null,      // the status line's once-a-second update while waiting
    closeNotice: null,    // the CLOSE frame of the current socket, if one came
    reopen: false,        // the page closed the socket to open a new one at once
    lastSeq: 0n,          // highest seq shown: `since` of the next session
    epoch: 0,             // bumped when the server's seqs start again (store reset)
    shown: new Map(),     // `${epoch}:${seq}` -> its <li>: de-duplication by seq
    outgoing: new Map(),  // client id -> { li, receiver, content, state }
    lastSentId: null,     // the newest SEND written, blamed for a 1009 close
    idPrefix: randomHex(6),
    counter: 0,
  };

  // ---- small helpers -------------------------------------------------------

  function randomHex(bytes) {
    const a = new Uint8Array(bytes);
    crypto.getRandomValues(a);  // available without a secure context, unlike randomUUID
    return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // PROTOCOL.md: a user id is the canonical decimal form of 1..2^64-1.
  function canonicalUserId(text) {
    const t = text.trim();
    if (!/^[1-9][0-9]{0,19}$/.test(t)) return null;
    return BigInt(t) <= maxUserId ? t : null;
  }

  // User ids and seqs go up to 2^64-1, beyond what a JS number holds exactly:
  // they are read as text before JSON.parse. Inside a JSON string every quote
  // is escaped, so only real keys match.
  function parseFrame(text) {
    const quoted = text.replace(/"(sender|receiver|seq)":(\d+)/g, '"$1":"$2"');
    const frame = JSON.parse(quoted);
    if (typeof frame !== 'object' || frame === null) throw new Error('not an object');
    return frame;
  }

  function timeOf(ms) {
    const date = Number.isFinite(ms) ? new Date(ms) : new Date();
    const t = document.createElement('time');
    t.dateTime = date.toISOString();
    t.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    return t;
  }

  function span(cls, text) {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    return s;
  }

  function para(cls, ...children) {
    const p = document.createElement('p');
    p.className = cls;
    p.append(...children);
    return p;
  }

  function append(li) {
    const m = ui.main;
    const atBottom = m.scrollHeight - m.scrollTop - m.clientHeight < 40;
    ui.conversation.append(li);
    if (atBottom) m.scrollTop = m.scrollHeight;
  }

  function notice(text, bad = false) {
    const li = document.createElement('li');
    li.className = bad ? 'notice bad' : 'notice';
    li.dataset.dir = 'notice';
    li.append(timeOf(Date.now()), ' ', text);
    append(li);
  }

  // Per tab, so that two tabs keep two users; storage may be refused
  // (privacy settings), and the page works without it.
  function remember(key, value) {
    try { sessionStorage.setItem(`switchboard.${key}`, value); } catch { /* not kept */ }
  }
  function recall(key) {
    try { return sessionStorage.getItem(`switchboard.${key}`) || ''; } catch { return ''; }
  }

  function setStatus(kind, text) {
    ui.status.dataset.state = kind;
    ui.status.textContent = text;
  }

  // ---- what the server says, in plain words --------------------------------

  const errorWords = {
    bad_json: 'The server could not read what this page sent.',
    binary: 'The server only takes text frames.',
    unknown_type: 'The server does not accept that kind of frame from a client.',
    bad_field: 'The server refused the message: a field was missing or wrong (is the receiver a valid user id?).',
    sender_mismatch: 'The server refused the message: it claimed to come from another user.',
    rate_limited: 'Sending too fast: the server refused this message. Wait a moment and retry.',
    unavailable: 'The server cannot store messages right now, so this one was not sent. Retry in a moment.',
  };

  const closeWords = {
    replaced: 'This user opened too many sessions elsewhere, so the server closed this one.',
    slow_consumer: 'This page fell too far behind reading, so the server closed the connection.',
    idle: 'The server closed the connection after a long silence.',
    shutdown: 'The server is shutting down or restarting.',
    bye: 'Disconnected, as asked.',
  };

  function closeCodeWords(code, opened) {
    switch (code) {
      case 1000: return 'The server closed the connection.';
      case 1001: return 'The server went away (restarting, or the connection was idle).';
      case 1008: return 'The server closed the connection: this page fell behind reading.';
      case 1009: return 'The server closed the connection: the last message was too large.';
      case 4001: return closeWords.replaced;
      default:
        return opened
          ? 'The connection dropped.'
          : 'Could not connect: the server is unreachable or refused (check the user id'
            + (state.token ? ' and the token' : ', and whether the server needs a token') + ').';
    }
  }

  // ---- the connection ------------------------------------------------------

  function sessionUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = ['ack=manual'];
    if (state.lastSeq > 0n) query.push('since=' + state.lastSeq);
    if (state.token) query.push('token=' + encodeURIComponent(state.token));
    return `${scheme}//${location.host}/ws/${state.me}?${query.join('&')}`;
  }

  function open() {
    clearRetry();
    if (state.ws) return;
    const ws = new WebSocket(sessionUrl());
    state.ws = ws;
    state.opened = false;
    state.live = false;
    state.closeNotice = null;
    setStatus('connecting', state.attempt ? `Reconnecting as user ${state.me}…` : `Connecting as user ${state.me}…`);
    updateControls();
    ws.onopen = () => { state.opened = true; };
    ws.onmessage = (event) => {
      if (ws !== state.ws) return;
      let frame;
      try {
        frame = parseFrame(event.data);
      } catch {
        notice('The server sent something this page cannot read; it was ignored.', true);
        return;
      }
      onFrame(frame);
    };
    ws.onclose = (event) => { if (ws === state.ws) onClosed(event); };
  }

  function transmit(text) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(text);
    return true;
  }

  function onFrame(frame) {
    switch (frame.type) {
      case 0: return onWelcome(frame);
      case 1: return onMessage(frame);
      case 2: return onReceipt(frame);
      case 3: return onCloseNotice(frame);
      case 4: return onError(frame);
      default: return;  // unknown types are not this page's business
    }
  }

  function onWelcome(frame) {
    const high = BigInt(frame.seq ?? 0);
    const resumed = state.lastSeq;
    state.live = true;
    state.attempt = 0;
    if (high < state.lastSeq) {
      // The server has fewer messages for this user than the page has shown:
      // its store was reset (a memory store restarted). Its seqs start again.
      // This session asked for seqs above the old lastSeq, and the server
      // would hold back the new seqs up to it: start over with since = high.
      notice(`The server no longer knows messages up to seq ${state.lastSeq} (its store was reset); counting again from seq ${high}.`, true);
      state.epoch += 1;
      state.lastSeq = high;
      state.reopen = true;
      state.ws.close();
      return;
    }
    setStatus('connected', `Connected as user ${state.me}.`);
    notice(resumed > 0n
      ? `Reconnected as user ${state.me}: asked for everything after seq ${resumed}.`
      : `Connected as user ${state.me}. Highest seq for you on the server: ${high}.`);
    updateControls();
    // Everything not yet receipted goes (again) in the order it was written;
    // a resend keeps its id, so the server stores it once.
    for (const [id, out] of state.outgoing) if (out.state === 'waiting') send(id, out);
    // Keyboard flow: after Connect, straight on to writing; a reconnect
    // while the person is typing leaves the focus where it is.
    const focus = document.activeElement;
    if (!focus || focus === document.body || ui.signIn.contains(focus))
      (ui.receiver.value ? ui.message : ui.receiver).focus();
  }

  function onMessage(frame) {
    if (frame.seq === undefined) return;
    const seq = BigInt(frame.seq);
    const key = `${state.epoch}:${seq}`;
    if (!state.shown.has(key)) {
      if (state.lastSeq > 0n && seq > state.lastSeq + 1n)
        notice(`Messages ${state.lastSeq + 1n} to ${seq - 1n} are no longer held by the server (expired, over its inbox limit, or acknowledged by another tab of this user).`, true);
      const own = frame.sender === state.me && frame.id !== undefined ? state.outgoing.get(String(frame.id)) : null;
      if (own) {
        // A note to oneself came back: that one message is known delivered.
        own.li.dataset.seq = String(seq);
        setOutState(own, 'delivered');
        state.shown.set(key, own.li);
      } else {
        const li = document.createElement('li');
        li.className = 'in';
        li.dataset.dir = 'in';
        li.dataset.seq = String(seq);
        li.dataset.sender = String(frame.sender);
        li.append(
          para('meta', span('who', `${frame.sender} → you`), timeOf(frame.ts), span('seq', `seq ${seq}`)),
          para('content', String(frame.content ?? '')),
          para('state', 'received'));
        append(li);
        state.shown.set(key, li);
      }
    }
    if (seq > state.lastSeq) state.lastSeq = seq;
    // ack=manual: the server moves this user's cursor only on RECEIVE, and
    // only what is on screen is acknowledged (cumulative: up to this seq).
    if (transmit(`{"type":2,"seq":${seq}}`)) {
      const li = state.shown.get(key);
      if (li.dataset.dir === 'in') {
        li.dataset.state = 'acknowledged';
        li.querySelector('.state').textContent = 'received · acknowledged';
      }
    }
  }

  function onReceipt(frame) {
    const out = frame.id === undefined ? null : state.outgoing.get(String(frame.id));
    if (!out) return;
    if (out.state !== 'delivered') {
      out.li.dataset.seq = String(frame.seq);
      out.li.querySelector('.seq').textContent = `seq ${frame.seq}`;
      out.li.querySelector('time').replaceWith(timeOf(frame.ts));
      setOutState(out, 'stored');
    }
  }

  function onCloseNotice(frame) {
    state.closeNotice = frame;
    const words = closeWords[frame.code] || 'The server is closing the connection.';
    notice(words, frame.code !== 'bye' && frame.code !== 'shutdown');
  }

  function onError(frame) {
    const words = errorWords[frame.code] || `The server refused the last frame (${frame.code}).`;
    const out = frame.id === undefined ? null : state.outgoing.get(String(frame.id));
    if (out && out.state !== 'stored' && out.state !== 'delivered') setOutState(out, 'failed', words);
    else notice(words, true);
  }

  function onClosed(event) {
    const notified = state.closeNotice;
    const opened = state.opened;
    state.ws = null;
    state.live = false;
    state.closeNotice = null;
    // What was written but not receipted is sent again after the reconnect;
    // a message that made the server close with 1009 would only do it again.
    for (const [id, out] of state.outgoing) {
      if (out.state !== 'sent') continue;
      if (event.code === 1009 && id === state.lastSentId)
        setOutState(out, 'failed', 'Too large for this server; not sent.');
      else
        setOutState(out, 'waiting');
    }
    const code = notified ? notified.code : null;
    if (state.reopen && state.wanted) {
      state.reopen = false;
      open();
      return;
    }
    state.reopen = false;
    if (!state.wanted || code === 'bye') {
      stop('offline', 'Disconnected.');
      return;
    }
    if (code === 'replaced' || event.code === 4001) {
      stop('stopped', 'Disconnected: this user has too many sessions open elsewhere. Connect to take this one back.');
      return;
    }
    const why = notified ? (closeWords[code] || 'The server closed the connection.') : closeCodeWords(event.code, opened);
    // One notice per outage, not one per failed attempt.
    if (!notified && (opened || state.attempt === 0)) notice(why, true);
    scheduleRetry(why);
  }

  function scheduleRetry(why) {
    // Exponential backoff with jitter: many tabs that lost the same server do
    // not all come back in the same instant.
    const ceiling = Math.min(maxRetryMs, firstRetryMs * 2 ** state.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    state.attempt += 1;
    const at = Date.now() + delay;
    const tick = () => {
      const s = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      setStatus('waiting', `${why} Reconnecting in ${s} s (attempt ${state.attempt}).`);
    };
    tick();
    state.countdown = setInterval(tick, 1000);
    state.retryTimer = setTimeout(open, delay);
    updateControls();
  }

  function clearRetry() {
    clearTimeout(state.retryTimer);
    clearInterval(state.countdown);
    state.retryTimer = null;
    state.countdown = null;
  }

  function stop(kind, text) {
    clearRetry();
    state.wanted = false;
    state.attempt = 0;
    setStatus(kind, text);
    updateControls();
  }

  function updateControls() {
    const busy = state.wanted && (state.ws !== null);
    ui.connect.disabled = busy;
    ui.connect.textContent = state.retryTimer ? 'Retry now' : 'Connect';
    ui.disconnect.disabled = !state.wanted;
    ui.user.readOnly = state.wanted;
    ui.token.readOnly = state.wanted;
  }

  // ---- sending -------------------------------------------------------------

  function setOutState(out, s, why) {
    out.state = s;
    out.li.dataset.state = s;
    const line = out.li.querySelector('.state');
    const words = { waiting: 'waiting for the connection', sent: 'sent', stored: 'stored', delivered: 'delivered', failed: 'not sent' };
    line.textContent = why ? `${words[s]}: ${why}` : words[s];
    if (s === 'failed') {
      const retry = document.createElement('button');
      retry.type = 'button';
      retry.textContent = 'Retry';
      retry.addEventListener('click', () => {
        setOutState(out, 'waiting');
        if (state.live) send(out.id, out);
        ui.message.focus();
      });
      line.append(retry);
    }
  }

  function send(id, out) {
    // Built as text: the receiver may be above 2^53 and must stay exact.
    const frame = `{"type":1,"receiver":${out.receiver},"content":${JSON.stringify(out.content)},"id":${JSON.stringify(id)}}`;
    if (transmit(frame)) {
      state.lastSentId = id;
      setOutState(out, 'sent');
    }
  }

  ui.compose.addEventListener('submit', (event) => {
    event.preventDefault();
    const receiver = canonicalUserId(ui.receiver.value);
    if (!receiver) {
      ui.receiver.setCustomValidity('A user id: a whole number from 1 to 18446744073709551615.');
      ui.receiver.reportValidity();
      ui.receiver.focus();
      return;
    }
    ui.receiver.setCustomValidity('');
    const content = ui.message.value;
    if (content.trim() === '') { ui.message.focus(); return; }
    if (!state.me || !state.wanted) {
      notice('Connect first: enter your user id at the top and press Connect.', true);
      ui.user.focus();
      return;
    }
    remember('receiver', receiver);
    const id = `${state.idPrefix}-${++state.counter}`;
    const li = document.createElement('li');
    li.className = 'out';
    li.dataset.dir = 'out';
    li.dataset.id = id;
    li.append(
      para('meta', span('who', `you → ${receiver}`), timeOf(Date.now()), span('seq', 'seq …')),
      para('content', content),
      para('state', ''));
    const out = { id, li, receiver, content, state: 'waiting' };
    state.outgoing.set(id, out);
    setOutState(out, 'waiting');
    append(li);
    ui.main.scrollTop = ui.main.scrollHeight;
    if (state.live) send(id, out);
    ui.message.value = '';
    ui.message.focus();
  });

  ui.message.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.compose.requestSubmit();
    }
  });
  ui.receiver.addEventListener('input', () => ui.receiver.setCustomValidity(''));
  ui.user.addEventListener('input', () => ui.user.setCustomValidity(''));

  // ---- signing in and out --------------------------------------------------

  ui.signIn.addEventListener('submit', (event) => {
    event.preventDefault();
    if (state.wanted && !state.retryTimer) return;  // already connected or connecting
    if (state.wanted) { open(); return; }          // "Retry now"
    const me = canonicalUserId(ui.user.value);
    if (!me) {
      ui.user.setCustomValidity('A user id: a whole number from 1 to 18446744073709551615.');
      ui.user.reportValidity();
      ui.user.focus();
      return;
    }
    if (me !== state.me) {
      // Another user: another inbox, its own seqs. Start a new conversation.
      state.me = me;
      state.lastSeq = 0n;
      state.shown.clear();
      state.outgoing.clear();
      ui.conversation.replaceChildren();
    }
    remember('user', me);
    state.token = ui.token.value.trim();
    state.wanted = true;
    state.attempt = 0;
    open();
  });

  ui.disconnect.addEventListener('click', () => {
    state.wanted = false;
    clearRetry();
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      // The server answers CLOSE bye and closes; a server that does not
      // answer is left anyway.
      const ws = state.ws;
      transmit('{"type":3}');
      setTimeout(() => ws.close(), 3000);
    } else if (state.ws) {
      state.ws.close();
    } else {
      stop('offline', 'Disconnected.');
    }
    updateControls();
    ui.connect.focus();
  });

  // Back online, or back on the tab: do not wait for the backoff to run out.
  window.addEventListener('online', () => { if (state.wanted && state.retryTimer) open(); });

  ui.user.value = recall('user');
  ui.receiver.value = recall('receiver');
  updateControls();
})();

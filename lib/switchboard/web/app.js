// Switchboard's browser chat client: the user interface around the
// switchboard-client module (clients/js in the repository, served beside this
// page as /switchboard-client.js), which holds all of the protocol's client
// side: the session at /ws/{userId}?ack=manual&device=D[&since=N][&token=T],
// the reconnects with backoff that resume with `since`, seq de-duplication
// and gaps, and the resends of unreceipted messages with their ids.
//
// What the page keeps itself:
// - lastSeq, the highest seq of this user it has handled (messages and
//   STATUS entries): the `since` of the next client after Disconnect and
//   Connect;
// - outgoing, its own messages by client id: what has no receipt when the
//   person disconnects is sent again, with the same id, after the next
//   Connect, and the server's de-duplication answers with the original
//   receipt;
// - conversations, one per other user and per group: one is open (shown)
//   at a time. READ is cumulative over the whole inbox, so the page reads
//   up to just below the oldest message that is not yet seen (in a closed
//   conversation, or while the tab is hidden);
// - per receiver, the highest `upto` of its "delivered" and "read" STATUS
//   frames: a direct message's receipt seq at or below it gets its ticks.
import { SwitchboardClient, canonicalGroupId, canonicalUserId, validDevice } from './switchboard-client.js';

const $ = (id) => document.getElementById(id);
const ui = {
  signIn: $('sign-in'), user: $('user'), device: $('device'), token: $('token'),
  connect: $('connect'), disconnect: $('disconnect'), status: $('status'),
  main: document.querySelector('main'), conversation: $('conversation'),
  conversations: $('conversation-list'),
  compose: $('compose'), toKind: $('to-kind'), receiver: $('receiver'), message: $('message'),
};

const state = {
  me: null,             // this tab's user id, canonical decimal text
  client: null,         // the SwitchboardClient while the person wants a connection
  countdown: null,      // the status line's once-a-second update while waiting
  outage: false,        // a drop was already reported: one notice per outage
  lastWhy: '',          // why the connection is down, for the status line
  lastSeq: 0n,          // highest seq shown: `since` of the next client
  outgoing: new Map(),  // client id -> { li, receiver | group, content, state, seq }
  idPrefix: null,       // this tab's message ids: `${idPrefix}-${counter}`
  counter: 0,
  convs: new Map(),     // 'u:ID' | 'g:ID' -> { key, kind, id, button, badge, unread }
  open: null,           // the key of the conversation shown, or null
  unseen: [],           // { seq, key } of received messages not seen yet, in seq order
  ticks: new Map(),     // receiver -> { delivered: upto, read: upto } (BigInts)
};

function randomHex(bytes) {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);  // available without a secure context, unlike randomUUID
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

// ---- small helpers -------------------------------------------------------

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

// The device name is the browser's, not the tab's: localStorage, made up
// once. Tabs of one browser are then one device, sharing its place in the
// inbox, and a reload resumes that place instead of starting a new device.
function deviceName() {
  let name = '';
  try { name = localStorage.getItem('switchboard.device') || ''; } catch { /* not kept */ }
  if (!validDevice(name)) {
    name = `web-${randomHex(4)}`;
    rememberDevice(name);
  }
  return name;
}
function rememberDevice(name) {
  try { localStorage.setItem('switchboard.device', name); } catch { /* not kept */ }
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
  not_member: 'You are not a member of that group, so the message was not sent.',
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
          + (state.client && state.client.token ? ' and the token' : ', and whether the server needs a token') + ').';
  }
}

// ---- the connection: a SwitchboardClient and its events --------------------

function connect(token, device) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const client = new SwitchboardClient({
    url: `${scheme}//${location.host}`,
    user: state.me,
    token: token || undefined,
    ack: 'manual',
    since: state.lastSeq,
    device,
  });
  state.client = client;
  state.outage = false;
  client.on('state', (s) => { if (client === state.client) onState(s); });
  client.on('welcome', (w) => { if (client === state.client) onWelcome(w); });
  client.on('message', (m) => { if (client === state.client) onMessage(m); });
  client.on('status', (st) => { if (client === state.client) onStatus(st); });
  client.on('gap', (g) => {
    notice(`Messages ${g.from} to ${g.to} are no longer held by the server (expired, over its inbox limit, or acknowledged by another tab of this user).`, true);
  });
  client.on('reset', (r) => {
    state.lastSeq = r.serverSeq;
    // The old seqs mean nothing now: neither the unseen ones nor the ticks' upto.
    state.unseen = [];
    state.ticks.clear();
    for (const out of state.outgoing.values()) out.seq = undefined;
    for (const conv of state.convs.values()) { conv.unread = 0; drawConversation(conv); }
    notice(`The server no longer knows messages up to seq ${r.lastSeq} (its store was reset); counting again from seq ${r.serverSeq}.`, true);
  });
  client.on('sent', ({ id }) => {
    const out = state.outgoing.get(id);
    if (out && out.state === 'waiting') setOutState(out, 'sent');
  });
  client.on('error', (e) => notice(errorWords[e.code] || `The server refused the last frame (${e.code}).`, true));
  client.on('close', (info) => { if (client === state.client) onClosed(info); });
  // What this tab wrote before and has no receipt for goes again, with its id.
  for (const [id, out] of state.outgoing) if (out.state === 'waiting' || out.state === 'sent') send(id, out);
  client.connect();
  updateControls();
}

function onState(s) {
  clearInterval(state.countdown);
  state.countdown = null;
  if (s.state === 'connecting') {
    setStatus('connecting', s.attempt ? `Reconnecting as user ${state.me}…` : `Connecting as user ${state.me}…`);
  } else if (s.state === 'waiting') {
    const at = Date.now() + s.delayMs;
    const why = state.lastWhy || 'The connection dropped.';
    const tick = () => {
      const left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      setStatus('waiting', `${why} Reconnecting in ${left} s (attempt ${s.attempt}).`);
    };
    tick();
    state.countdown = setInterval(tick, 1000);
  }
  updateControls();
}

function onWelcome(w) {
  const resumed = state.lastSeq;
  state.outage = false;
  setStatus('connected', `Connected as user ${state.me}.`);
  const on = w.device ? ` on device ${w.device}` : '';
  notice(resumed > 0n
    ? `Reconnected as user ${state.me}${on}: asked for everything after seq ${resumed}.`
    : `Connected as user ${state.me}${on}. Highest seq for you on the server: ${w.seq}.`);
  updateControls();
  // Keyboard flow: after Connect, straight on to writing; a reconnect
  // while the person is typing leaves the focus where it is.
  const focus = document.activeElement;
  if (!focus || focus === document.body || ui.signIn.contains(focus))
    (ui.receiver.value ? ui.message : ui.receiver).focus();
}

function onMessage(m) {
  state.lastSeq = m.seq;
  const own = m.sender === state.me && m.group === undefined && m.id !== undefined
    ? state.outgoing.get(String(m.id)) : null;
  if (own) {
    // A note to oneself came back: that one message is known delivered.
    own.seq = m.seq;
    own.li.dataset.seq = String(m.seq);
    if (own.state !== 'read') setOutState(own, 'delivered');
  } else {
    const key = m.group !== undefined ? `g:${m.group}` : `u:${m.sender}`;
    const conv = conversation(key);
    if (state.open === null) openConversation(key, false, false);
    const li = document.createElement('li');
    li.className = 'in';
    li.dataset.dir = 'in';
    li.dataset.conv = key;
    li.dataset.seq = String(m.seq);
    li.dataset.sender = String(m.sender);
    const who = m.group !== undefined ? `${m.sender} → group ${m.group}` : `${m.sender} → you`;
    const seq = m.group !== undefined ? `seq ${m.seq} · #${m.gseq}` : `seq ${m.seq}`;
    if (m.group !== undefined) {
      li.dataset.group = String(m.group);
      li.dataset.gseq = String(m.gseq);
    }
    li.append(
      para('meta', span('who', who), timeOf(m.ts), span('seq', seq)),
      para('content', String(m.content ?? '')),
      para('state', 'received'));
    li.hidden = key !== state.open;
    append(li);
    // ack=manual: the server moves this user's cursor only on RECEIVE, and
    // only what is on the page is acknowledged (cumulative: up to this seq).
    li.dataset.state = 'acknowledged';
    li.querySelector('.state').textContent = 'received · acknowledged';
    if (key !== state.open || !pageVisible()) {
      state.unseen.push({ seq: m.seq, key });
      conv.unread += 1;
      drawConversation(conv);
    }
  }
  state.client.ack(m.seq);
  markRead();
}

// A STATUS (PROTOCOL.md section 11): this user's direct messages to
// `receiver` with a receipt seq at most `upto` are delivered, or read. It is
// an entry of this user's own inbox: acknowledged like a message.
function onStatus(st) {
  state.lastSeq = st.seq;
  const t = state.ticks.get(st.receiver) || { delivered: 0n, read: 0n };
  if (st.upto > t[st.state]) t[st.state] = st.upto;
  if (t.read > t.delivered) t.delivered = t.read;  // read implies delivered
  state.ticks.set(st.receiver, t);
  for (const out of state.outgoing.values()) if (out.receiver === st.receiver) tick(out);
  state.client.ack(st.seq);
  markRead();
}

// Moves a direct message with a receipt to delivered or read when a STATUS
// covered its seq (which may have come before the receipt, after a reconnect).
function tick(out) {
  if (out.seq === undefined || out.receiver === undefined) return;
  const t = state.ticks.get(out.receiver);
  if (!t) return;
  if (t.read >= out.seq) setOutState(out, 'read');
  else if (t.delivered >= out.seq && out.state !== 'read') setOutState(out, 'delivered');
}

// ---- conversations and READ ---------------------------------------------

function pageVisible() {
  return document.visibilityState === 'visible';
}

// The conversation of `key`, made (with its button) on first use.
function conversation(key) {
  let conv = state.convs.get(key);
  if (conv) return conv;
  const [kind, id] = key.split(':');
  conv = { key, kind: kind === 'g' ? 'group' : 'user', id, unread: 0 };
  const li = document.createElement('li');
  const button = document.createElement('button');
  button.type = 'button';
  button.dataset.conv = key;
  button.append(span('name', kind === 'g' ? `Group ${id}` : `User ${id}`));
  conv.badge = span('unread', '');
  button.append(conv.badge);
  button.addEventListener('click', () => {
    openConversation(key, true);
    ui.message.focus();
  });
  li.append(button);
  ui.conversations.append(li);
  conv.button = button;
  state.convs.set(key, conv);
  drawConversation(conv);
  return conv;
}

function drawConversation(conv) {
  conv.badge.textContent = conv.unread > 0 ? String(conv.unread) : '';
  conv.badge.hidden = conv.unread === 0;
  conv.button.setAttribute('aria-label', `${conv.kind === 'group' ? 'Group' : 'User'} ${conv.id}`
    + (conv.unread > 0 ? `, ${conv.unread} unread` : ''));
  if (conv.key === state.open) conv.button.setAttribute('aria-current', 'true');
  else conv.button.removeAttribute('aria-current');
}

// Shows the conversation of `key` (and only it), fills "To" with it when
// asked, and reads what it shows (unless the caller does it after its ack).
function openConversation(key, fillTo, read = true) {
  const conv = conversation(key);
  const was = state.open;
  state.open = key;
  if (was !== key) {
    for (const li of ui.conversation.querySelectorAll('li[data-conv]')) li.hidden = li.dataset.conv !== key;
    if (was && state.convs.has(was)) drawConversation(state.convs.get(was));
    drawConversation(conv);
    ui.main.scrollTop = ui.main.scrollHeight;
  }
  if (fillTo) {
    ui.toKind.value = conv.kind;
    ui.receiver.value = conv.id;
    ui.receiver.setCustomValidity('');
  }
  if (read) markRead();
}

// What is shown while the tab is visible is seen; READ goes up to just below
// the oldest message not seen yet (the whole inbox is one sequence).
function markRead() {
  if (pageVisible() && state.open !== null && state.unseen.length > 0) {
    const conv = state.convs.get(state.open);
    const left = state.unseen.filter((u) => u.key !== state.open);
    if (left.length !== state.unseen.length) {
      state.unseen = left;
      conv.unread = 0;
      drawConversation(conv);
    }
  }
  if (!state.client) return;
  const upto = state.unseen.length > 0 ? state.unseen[0].seq - 1n : state.lastSeq;
  if (upto > 0n) state.client.read(upto);
}

document.addEventListener('visibilitychange', markRead);

function onClosed(info) {
  if (info.code && closeWords[info.code]) {
    notice(closeWords[info.code], info.code !== 'bye' && info.code !== 'shutdown');
  } else if (info.code) {
    notice('The server is closing the connection.', true);
  }
  // What was written but not receipted is written again after the
  // reconnect, by the client, with its id.
  for (const out of state.outgoing.values()) if (out.state === 'sent') setOutState(out, 'waiting');
  if (info.reconnecting) {
    state.lastWhy = info.code ? (closeWords[info.code] || 'The server closed the connection.') : closeCodeWords(info.wsCode, info.opened);
    // One notice per outage, not one per failed attempt.
    if (!info.code && !state.outage) notice(state.lastWhy, true);
    state.outage = true;
    onState({ state: 'waiting', delayMs: info.delayMs, attempt: state.client.attempt });
    return;
  }
  const replaced = info.code === 'replaced';
  state.client = null;
  if (replaced) {
    stop('stopped', 'Disconnected: this user has too many sessions open elsewhere. Connect to take this one back.');
  } else {
    stop('offline', 'Disconnected.');
  }
}

function stop(kind, text) {
  clearInterval(state.countdown);
  state.countdown = null;
  setStatus(kind, text);
  updateControls();
}

function updateControls() {
  const client = state.client;
  const waiting = client !== null && client.state === 'waiting';
  ui.connect.disabled = client !== null && !waiting;
  ui.connect.textContent = waiting ? 'Retry now' : 'Connect';
  ui.disconnect.disabled = client === null;
  ui.user.readOnly = client !== null;
  ui.device.readOnly = client !== null;
  ui.token.readOnly = client !== null;
}

// ---- sending -------------------------------------------------------------

function setOutState(out, s, why) {
  out.state = s;
  out.li.dataset.state = s;
  const line = out.li.querySelector('.state');
  const words = {
    waiting: 'waiting for the connection', sent: 'sent', stored: 'stored',
    delivered: '✓ delivered', read: '✓✓ read', failed: 'not sent',
  };
  line.textContent = why ? `${words[s]}: ${why}` : words[s];
  if (s === 'failed') {
    const retry = document.createElement('button');
    retry.type = 'button';
    retry.textContent = 'Retry';
    retry.addEventListener('click', () => {
      setOutState(out, 'waiting');
      if (state.client) send(out.id, out);
      ui.message.focus();
    });
    line.append(retry);
  }
}

// Hands the message to the client, which writes it now or after the next
// welcome, and again after every reconnect until its receipt comes.
// Direct messages ask for STATUS notifications (the ticks).
function send(id, out) {
  const client = state.client;
  const sent = out.group !== undefined
    ? client.sendToGroup(out.group, out.content, { id })
    : client.send(out.receiver, out.content, { id, notify: true });
  sent.then((receipt) => {
    if (out.state === 'delivered' || out.state === 'read') return;
    out.li.querySelector('time').replaceWith(timeOf(receipt.ts));
    if (out.group !== undefined) {
      out.li.dataset.gseq = String(receipt.gseq);
      out.li.querySelector('.seq').textContent = `#${receipt.gseq}`;
      setOutState(out, 'stored');
      return;
    }
    out.seq = receipt.seq;
    out.li.dataset.seq = String(receipt.seq);
    out.li.querySelector('.seq').textContent = `seq ${receipt.seq}`;
    setOutState(out, 'stored');
    tick(out);
  }, (error) => {
    if (error.code === 'closed') {
      // Disconnect: sent again after the next Connect.
      if (out.state === 'sent') setOutState(out, 'waiting');
    } else if (error.code === 'too_large') {
      setOutState(out, 'failed', 'Too large for this server; not sent.');
    } else {
      setOutState(out, 'failed', errorWords[error.code] || `refused (${error.code})`);
    }
  });
}

ui.compose.addEventListener('submit', (event) => {
  event.preventDefault();
  const toGroup = ui.toKind.value === 'group';
  const receiver = toGroup ? canonicalGroupId(ui.receiver.value) : canonicalUserId(ui.receiver.value);
  if (!receiver) {
    ui.receiver.setCustomValidity(`A ${toGroup ? 'group' : 'user'} id: a whole number from 1 to 18446744073709551615.`);
    ui.receiver.reportValidity();
    ui.receiver.focus();
    return;
  }
  ui.receiver.setCustomValidity('');
  const content = ui.message.value;
  if (content.trim() === '') { ui.message.focus(); return; }
  if (!state.me || !state.client) {
    notice('Connect first: enter your user id at the top and press Connect.', true);
    ui.user.focus();
    return;
  }
  remember('receiver', receiver);
  remember('to', ui.toKind.value);
  const key = `${toGroup ? 'g' : 'u'}:${receiver}`;
  openConversation(key, false);
  // The tab's own ids, kept across Disconnect and Connect: the server
  // remembers (sender, id) for --dedup-window, so an id is never reused.
  const id = `${state.idPrefix}-${++state.counter}`;
  const li = document.createElement('li');
  li.className = 'out';
  li.dataset.dir = 'out';
  li.dataset.id = id;
  li.dataset.conv = key;
  li.append(
    para('meta', span('who', toGroup ? `you → group ${receiver}` : `you → ${receiver}`), timeOf(Date.now()),
      span('seq', 'seq …')),
    para('content', content),
    para('state', ''));
  const out = toGroup
    ? { id, li, group: receiver, content, state: 'waiting' }
    : { id, li, receiver, content, state: 'waiting' };
  state.outgoing.set(id, out);
  setOutState(out, 'waiting');
  append(li);
  ui.main.scrollTop = ui.main.scrollHeight;
  send(id, out);
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
// A receiver typed and left (Tab, Enter) opens its conversation.
function openTyped() {
  const group = ui.toKind.value === 'group';
  const id = group ? canonicalGroupId(ui.receiver.value) : canonicalUserId(ui.receiver.value);
  if (id && state.me) openConversation(`${group ? 'g' : 'u'}:${id}`, false);
}
ui.receiver.addEventListener('change', openTyped);
ui.device.addEventListener('input', () => ui.device.setCustomValidity(''));
ui.user.addEventListener('input', () => ui.user.setCustomValidity(''));

// ---- signing in and out --------------------------------------------------

ui.signIn.addEventListener('submit', (event) => {
  event.preventDefault();
  if (state.client && state.client.state === 'waiting') {  // "Retry now"
    state.client.reconnectNow();
    return;
  }
  if (state.client) return;  // already connected or connecting
  const me = canonicalUserId(ui.user.value);
  if (!me) {
    ui.user.setCustomValidity('A user id: a whole number from 1 to 18446744073709551615.');
    ui.user.reportValidity();
    ui.user.focus();
    return;
  }
  const device = ui.device.value.trim();
  if (!validDevice(device)) {
    ui.device.setCustomValidity('A device name: 1 to 64 letters, digits, dots, dashes or underscores.');
    ui.device.reportValidity();
    ui.device.focus();
    return;
  }
  if (me !== state.me) {
    // Another user: another inbox, its own seqs. Start a new conversation.
    state.me = me;
    state.lastSeq = 0n;
    state.outgoing.clear();
    state.convs.clear();
    state.open = null;
    state.unseen = [];
    state.ticks.clear();
    ui.conversation.replaceChildren();
    ui.conversations.replaceChildren();
  }
  remember('user', me);
  rememberDevice(device);
  connect(ui.token.value.trim(), device);
});

ui.disconnect.addEventListener('click', () => {
  // The client sends CLOSE and the server answers bye; the close event
  // then says "Disconnected."
  if (state.client) state.client.close();
  updateControls();
  ui.connect.focus();
});

// Back online, or back on the tab: do not wait for the backoff to run out.
window.addEventListener('online', () => { if (state.client) state.client.reconnectNow(); });

state.idPrefix = randomHex(6);
ui.user.value = recall('user');
ui.device.value = deviceName();
ui.receiver.value = recall('receiver');
if (recall('to') === 'group') ui.toKind.value = 'group';
updateControls();

// Type declarations for switchboard-client (switchboard-client.js).
// User ids and group ids are canonical decimal strings and seqs (seq, gseq,
// upto) BigInts: all go up to 2^64-1, beyond what a JS number holds exactly.

export type AckMode = 'auto' | 'manual';
export type ClientState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

/** The codes of the server's ERROR frames (PROTOCOL.md section 2), and this client's own. */
export type ErrorCode =
  | 'bad_json' | 'binary' | 'unknown_type' | 'bad_field' | 'sender_mismatch'
  | 'rate_limited' | 'unavailable' | 'not_member'
  | 'too_large' | 'closed' | 'token' | 'connect' | 'bad_frame'
  | (string & {});

/** The codes of the server's CLOSE notices. */
export type CloseCode = 'replaced' | 'slow_consumer' | 'idle' | 'shutdown' | 'bye' | (string & {});

/** Any constructor with the browser's WebSocket interface (the ws package's WebSocket, for one). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** ws://HOST:PORT or wss://HOST:PORT (http(s):// is read as ws(s)://); /ws/{user} is appended. */
  url: string;
  /** This client's user id, 1..18446744073709551615. */
  user: string | number | bigint;
  /** A JWT (HS256, `sub` = the user id) when the server needs one; a function is asked before every connection. */
  token?: string | (() => string | Promise<string>);
  /** Default 'auto'. */
  ack?: AckMode;
  /** This client's device (`?device=`, PROTOCOL.md section 9): 1 to 64 of A-Z a-z 0-9 . _ -. Default: the user's default device (''). */
  device?: string;
  /** The last seq the application has (persisted from lastSeq): the session replays above it. */
  since?: bigint | number | string;
  /** Default globalThis.WebSocket (browsers, Node.js 22 and later). */
  WebSocket?: WebSocketConstructor;
  /** Backoff: the first retry waits 0.5 to 1 times this (default 500 ms), doubling per failure... */
  initialRetryMs?: number;
  /** ...up to this ceiling (default 15000 ms). */
  maxRetryMs?: number;
  /** Prefix of generated message ids (default: 12 random hex digits, new per client). */
  idPrefix?: string;
}

export interface Message {
  seq: bigint;
  sender: string;
  receiver: string;
  content: string;
  /** The server's receive time, ms since the epoch. */
  ts: number;
  /** The sender's message id, when it gave one. */
  id?: string | number;
  /** A group message's group (section 10); `receiver` is then this user. */
  group?: string;
  /** A group message's number in its group. */
  gseq?: bigint;
  [field: string]: unknown;
}

/** The receipt of a direct send: stored in the receiver's inbox at `seq`. */
export interface DirectReceipt {
  id: string;
  receiver?: string;
  /** The receiver's seq of the message: what a STATUS's `upto` is compared with. */
  seq: bigint;
  ts: number;
}

/** The receipt of a group send: every member's copy is stored. */
export interface GroupReceipt {
  id: string;
  group: string;
  /** The message's number in its group. */
  gseq: bigint;
  ts: number;
}

export type Receipt = DirectReceipt | GroupReceipt;

/**
 * A STATUS (PROTOCOL.md section 11): every notify-message of this user to
 * `receiver` whose receipt seq is at most `upto` is now delivered (or read).
 * An inbox entry of this user's own: `seq` counts like a message's (lastSeq,
 * since, ack).
 */
export interface Status {
  seq: bigint;
  receiver: string;
  state: 'delivered' | 'read';
  upto: bigint;
  ts: number;
}

export interface CloseInfo {
  /** The CLOSE notice's code, when the server sent one (or 'replaced' for close code 4001). */
  code: CloseCode | null;
  /** The WebSocket close code (1006: the connection dropped). */
  wsCode: number;
  reason: string;
  /** false when the connection or the upgrade failed. */
  opened: boolean;
  reconnecting: boolean;
  /** When reconnecting after a backoff: its delay. */
  delayMs?: number;
}

export interface ClientEvents {
  message: Message;
  status: Status;
  welcome: { session: string; seq: bigint; device: string };
  state: { state: ClientState; [detail: string]: unknown };
  error: SwitchboardError;
  close: CloseInfo;
  gap: { from: bigint; to: bigint };
  reset: { lastSeq: bigint; serverSeq: bigint };
  sent: { id: string; receiver?: string; group?: string };
}

export class SwitchboardError extends Error {
  constructor(code: ErrorCode, message?: string);
  readonly code: ErrorCode;
  /** The SEND's id, when the server echoed it. */
  id?: string;
}

export class SwitchboardClient {
  constructor(options: ClientOptions);
  readonly user: string;
  readonly ackMode: AckMode;
  /** The highest seq handed to the application: persist it, pass it back as `since`. */
  readonly lastSeq: bigint;
  /** ack=manual: the highest seq acknowledged. */
  readonly ackedSeq: bigint;
  /** The highest seq passed to read(). */
  readonly readSeq: bigint;
  /** The device: the option until the first welcome, then the welcome's ('' is the default device). */
  readonly device: string;
  readonly state: ClientState;
  on<E extends keyof ClientEvents>(event: E, listener: (value: ClientEvents[E]) => void): () => void;
  off<E extends keyof ClientEvents>(event: E, listener: (value: ClientEvents[E]) => void): void;
  connect(): void;
  close(): void;
  reconnectNow(): void;
  /** `notify: true` asks for STATUS events about this message (delivered, read). */
  send(receiver: string | number | bigint, content: string, options?: { id?: string; notify?: boolean }): Promise<DirectReceipt>;
  /** Rejects with code `not_member` when this user is not in the group. */
  sendToGroup(group: string | number | bigint, content: string, options?: { id?: string }): Promise<GroupReceipt>;
  pending(): Array<{ id: string; receiver?: string; group?: string; notify?: boolean; content: string }>;
  ack(seq: bigint | number | string): void;
  /** READ: the user has seen everything up to `seq` (cumulative; moves no cursor). */
  read(seq: bigint | number | string): void;
}

export function canonicalUserId(value: string | number | bigint): string | null;
export function canonicalGroupId(value: string | number | bigint): string | null;
export function validDevice(value: unknown): string | null;
export function parseFrame(text: string): Record<string, unknown>;
export default SwitchboardClient;

// Helpers for client.test.mjs. The real server binary for the client tests: SWITCHBOARD_BINARY, or the
// release build next to this checkout.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const binary = process.env.SWITCHBOARD_BINARY
  || path.resolve(here, '../../../build/release/switchboard');

export function tempDir() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-js-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export class Server {
  // `args`: extra options; the store defaults to memory:.
  constructor(args = []) {
    this.args = args;
    this.port = 0;
    this.child = null;
    this.log = '';
  }

  get url() { return `ws://127.0.0.1:${this.port}`; }

  // Starts on this.port (a free one the first time) and waits for the
  // `listening on` line.
  async start() {
    const args = ['--listen', `127.0.0.1:${this.port}`, '--threads', '1', '--drain-timeout', '1',
                  '--log-level', 'warn', ...this.args];
    if (!this.args.includes('--store')) args.push('--store', 'memory:');
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr.on('data', (d) => { this.log += d; });
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    this.port = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no listening line in 10 s:\n${this.log}`)), 10_000);
      child.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/^listening on 127\.0\.0\.1:(\d+)\n/);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      });
      child.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start ${binary}: ${e.message}`)); });
      child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`exited with ${code}:\n${this.log}`)); });
    });
    return this;
  }

  // SIGTERM drains; SIGKILL is a crash.
  async stop(signal = 'SIGTERM') {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    await this.exited;
  }
}

// Resolves when `predicate()` holds, checked every 10 ms; rejects after `ms`.
export async function until(predicate, ms = 10_000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// The next `event` of `client`.
export function next(client, event, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`no ${event} in ${ms} ms`)); }, ms);
    const off = client.on(event, (value) => { clearTimeout(timer); off(); resolve(value); });
  });
}

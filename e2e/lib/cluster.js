// A cluster for browser tests: Debian's redis-server on a free loopback
// port (no persistence), Switchboard nodes with --redis, and HAProxy in
// front (a config this file writes, health-checking /readyz). Every process
// is ours and is stopped by its PID.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from './server.js';

const freePorts = new URL('./free-ports.js', import.meta.url).pathname;

/** One free loopback TCP port. */
export function freePort() {
  return Number(execFileSync(process.execPath, [freePorts]).toString().trim().split(' ')[0]);
}

async function waitListening(port, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} not listening on ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stopChild(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    try { process.kill(child.pid, 'SIGKILL'); } catch { resolve(); }
  });
}

/** redis-server on `port` (a new free one by default). */
export async function startRedis(port = freePort()) {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
  await waitListening(port, 'redis-server');
  return { port, url: `redis://127.0.0.1:${port}`, stop: () => stopChild(child) };
}

/**
 * HAProxy on a free port in front of `nodes` (their HTTP ports), in that
 * order; `balance` as HAProxy spells it (`first`: the first node that is up
 * takes every new connection, so a test knows where a page lands).
 */
export async function startHaproxy(nodes, { balance = 'first' } = {}) {
  const port = freePort();
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-haproxy-'));
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, [
    'defaults',
    '  mode http',
    '  timeout connect 1s',
    '  timeout client 1h',
    '  timeout server 1h',
    '  timeout tunnel 1h',
    '  retries 3',
    '  option redispatch',
    'frontend switchboard',
    `  bind 127.0.0.1:${port}`,
    '  default_backend nodes',
    'backend nodes',
    `  balance ${balance}`,
    '  option httpchk GET /readyz',
    '  http-check expect status 200',
    '  default-server check inter 500ms fall 2 rise 2',
    ...nodes.map((n, i) => `  server n${i} 127.0.0.1:${n.httpPort} maxconn 1000`),
    '',
  ].join('\n'));
  const child = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  await waitListening(port, `haproxy (${err})`);
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    async stop() { await stopChild(child); rmSync(dir, { recursive: true, force: true }); },
  };
}

/** A Switchboard node of the cluster on `redis`. */
export function startNode(redis, id, secret, extra = []) {
  return startServer(['--redis', redis.url, '--node-id', id, '--auth-secret', secret, ...extra]);
}

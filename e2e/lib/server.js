// Starts an extra switchboard process for tests that need their own flags
// (TLS), on free loopback ports, and stops it by its PID.
import { spawn, execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const freePorts = fileURLToPath(new URL('./free-ports.js', import.meta.url));

/** Writes down the secrets among a server's flags, for checks/secrets.test.js. */
export function recordSecrets(args) {
  const file = process.env.SWITCHBOARD_E2E_SECRETS;
  if (!file) return;
  for (let i = 0; i + 1 < args.length; i++) {
    if (['--join-secret', '--auth-secret'].includes(args[i])) appendFileSync(file, `${args[i + 1]}\n`);
    if (args[i] === '--user') appendFileSync(file, `${args[i + 1].split(':').slice(1).join(':')}\n`);
  }
}

/**
 * Starts `$SWITCHBOARD_BIN` with `args` on free ports (or the given ones);
 * resolves once `ready` matches its output. `loopbackPeers: false` leaves
 * the default peer policy (loopback refused) in force; `turnHost` is the
 * TURN listen address (`[::]` for the dual-stack form), `httpHost` the web
 * app's (an address of a test's network namespace link). A free port can be
 * taken by another process before the server binds it: with ports of its
 * own choosing it then tries new ones (a few times).
 */
export async function startServer(args, ready = /web app: (\S+)/, ports = null, options = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(args, ready, ports, options);
    } catch (e) {
      if (ports || attempt >= 5 || !/Address already in use/.test(e.message)) throw e;
    }
  }
}

async function startOnce(args, ready, ports, { loopbackPeers = true, turnHost = '127.0.0.1', httpHost = '127.0.0.1' } = {}) {
  const bin = process.env.SWITCHBOARD_BIN;
  if (!bin) throw new Error('SWITCHBOARD_BIN is not set (run through e2e/run)');
  const [httpPort, turnPort] = ports
    ?? execFileSync(process.execPath, [freePorts]).toString().trim().split(' ').map(Number);
  // TURN over TLS (on with a certificate) on a port of its own choosing
  // unless the test says otherwise, so parallel servers never collide on 5349.
  const defaults = args.includes('--turns-listen') ? [] : ['--turns-listen', '127.0.0.1:0'];
  // Metrics likewise on a port of its own (the default 9641 is one per machine).
  if (!args.includes('--metrics-listen')) defaults.push('--metrics-listen', '127.0.0.1:0');
  // Tests stop their servers with SIGTERM and expect them gone soon: a
  // short drain unless the test is about the drain.
  if (!args.includes('--drain-timeout')) defaults.push('--drain-timeout', '2');
  // Rooms stay a mesh unless the test is about the SFU (then on a UDP port
  // of its own, so parallel servers never collide on 3480).
  if (!args.includes('--sfu')) defaults.push('--sfu', 'never');
  if (!args.includes('--sfu-listen')) defaults.push('--sfu-listen', '127.0.0.1:0');
  const log = process.env.SWITCHBOARD_E2E_LOG ?? 'warn';
  recordSecrets(args);
  const child = spawn(bin, ['--http-listen', `${httpHost}:${httpPort}`, '--turn-listen', `${turnHost}:${turnPort}`,
    ...(loopbackPeers ? ['--allow-loopback-peers'] : []), '--log', log, ...defaults, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    // Kept for checks/secrets.test.js, which reads every server log of the run.
    // (The flags are not written: some are secrets.)
    try { appendFileSync(new URL('../artifacts/servers.log', import.meta.url), `== server on ${httpPort}\n${out}\n`); } catch {}
    resolve({ code, signal });
  }));
  const deadline = Date.now() + 20_000;
  while (!ready.test(out)) {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${out}`);
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`server not ready:\n${out}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: child.pid,
    httpPort,
    turnPort,
    output: () => out,
    /** The metrics base URL from the banner (`http://127.0.0.1:PORT`), if served. */
    metricsUrl: () => out.match(/metrics (http:\/\/\S+)\/metrics/)?.[1] ?? null,
    exited,
    /** SIGTERM, then SIGKILL after `graceMs`; resolves with how long the exit took. */
    async stop(graceMs = 10_000) {
      const t0 = Date.now();
      const signal = (sig) => { try { if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, sig); } catch {} };
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      const status = await exited;
      clearTimeout(timer);
      return { ...status, ms: Date.now() - t0 };
    },
  };
}

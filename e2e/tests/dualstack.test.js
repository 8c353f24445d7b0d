// Trap 1 of issue 11: `--turn-listen [::]:PORT`, the dual-stack form the
// default takes. Two relay-only Chromiums (?relay=1) load the page from
// 127.0.0.1, so the ICE servers they get are turn:127.0.0.1:PORT: IPv4
// clients of an IPv6 socket. Before, their Allocate got 440 (the server
// saw ::ffff:127.0.0.1) and no relay candidate was gathered; now both
// allocate IPv4 relays and decode each other's video through them.
//
// Starts its own server (lib/server.js's startServer fixes --turn-listen to
// 127.0.0.1) and stops it by its PID.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../lib/browser.js';
import { roomId, waitConnected, waitFramesDecoded } from '../lib/call.js';

const freePorts = fileURLToPath(new URL('../lib/free-ports.js', import.meta.url));

/** The binary on `--turn-listen [::]:PORT`; resolves once it serves the web app. */
async function startDualStack() {
  const bin = process.env.SWITCHBOARD_BIN;
  if (!bin) throw new Error('SWITCHBOARD_BIN is not set (run through e2e/run)');
  const [httpPort, turnPort] = execFileSync(process.execPath, [freePorts]).toString().trim().split(' ').map(Number);
  const args = ['--http-listen', `127.0.0.1:${httpPort}`, '--turn-listen', `[::]:${turnPort}`,
    '--allow-loopback-peers', '--metrics-listen', '127.0.0.1:0', '--log', process.env.SWITCHBOARD_E2E_LOG ?? 'warn'];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.once('exit', () => {
    // Kept for checks/secrets.test.js, which reads every server log of the run.
    try { appendFileSync(new URL('../artifacts/servers.log', import.meta.url), `== ${args.join(' ')}\n${out}\n`); } catch {}
    resolve();
  }));
  const deadline = Date.now() + 20_000;
  while (!/web app: (\S+)/.test(out)) {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${out}`);
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`server not ready:\n${out}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base: `http://127.0.0.1:${httpPort}`,
    turnPort,
    output: () => out,
    async stop() {
      if (child.exitCode === null) process.kill(child.pid, 'SIGKILL');
      await exited;
    },
  };
}

test('a relay-only call through a dual-stack [::] TURN listener, reached over IPv4', async () => {
  const server = await startDualStack();
  const browsers = [];
  try {
    const room = roomId('dualstack');
    for (const name of ['Alice', 'Bob']) {
      const b = await launchChromium();
      browsers.push(b);
      await b.page.goto(`${server.base}/r/${room}?relay=1`);
      await b.page.fill('#name', name);
      await b.page.click('#join');
      await b.page.waitForSelector('#call:not([hidden])', { timeout: 20_000 });
    }
    for (const b of browsers) await waitConnected(b.page, 1);
    for (const b of browsers) {
      for (const s of Object.values(await waitFramesDecoded(b.page))) {
        assert.equal(s.state, 'connected');
        assert.ok(s.framesDecoded > 0, JSON.stringify(s));
        assert.equal(`${s.localType}/${s.remoteType}`, 'relay/relay', JSON.stringify(s));
        // Allocated on this server over IPv4, with an IPv4 relay address.
        assert.ok(s.localUrl?.startsWith(`turn:127.0.0.1:${server.turnPort}`), JSON.stringify(s));
        assert.equal(s.localAddress, '127.0.0.1', JSON.stringify(s));
      }
    }
  } catch (e) {
    e.message += `\nserver output:\n${server.output()}`;
    throw e;
  } finally {
    for (const b of browsers) await b.close();
    await server.stop();
  }
});

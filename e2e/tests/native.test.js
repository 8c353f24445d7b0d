// Issue 12, must-show 1: the native peer (`switchboard send`, `recv`, `chat`)
// in a room with a browser page of the app — a file from `send` to the page
// (50 MiB; 5 MiB over TCP; its download link's SHA-256 matches), a file from the page to `recv` (the
// file on disk matches, no `.part` left), chat both ways. With Chromium
// (Firefox ESR: native-firefox.test.js), with the default ICE policy and relay-only
// (`--relay`, `?relay=1`: the page's selected pair is relay/relay through
// this server's TURN); once more with Chromium and the native peer both on
// TURN over TCP only (`--turn-transport tcp`, relayProtocol 'tcp'). Last, the
// native peer's errors: refused by a `--join-secret` server (no token, a
// forged one) and a server that is not there — non-zero exit, one line on
// stderr, well within 20 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { roomId } from '../lib/call.js';
import { startServer } from '../lib/server.js';
import { mintToken } from '../lib/token.js';
import { MiB, chromium, scenario, native, exitCode } from '../lib/native.js';

test('native peer ↔ Chromium: send 50 MiB, recv, chat (default ICE policy)', () =>
  scenario(chromium, { relay: false, size: 50 * MiB }));
test('native peer ↔ Chromium relay-only: send 50 MiB, recv, chat through Switchboard TURN', () =>
  scenario(chromium, { relay: true, size: 50 * MiB }));
test('native peer ↔ Chromium relay-only, TURN over TCP only: send 5 MiB, recv, chat', () =>
  scenario(chromium, { relay: true, tcp: true, size: 5 * MiB }));

/** Runs a peer subcommand that must fail: non-zero within 20 s, one `switchboard:` line on stderr. */
async function mustFail(sub, args) {
  const t0 = Date.now();
  // stdin stays open: `chat` must fail on the refusal, not leave at end of input.
  const p = native(sub, args, { stdin: 'pipe' });
  const code = await exitCode(p, 20_000);
  p.child.stdin.destroy();
  assert.ok(code !== null, `still running after 20 s; err: ${p.err}`);
  assert.notEqual(code, 0, `exit ${code}; err: ${p.err}`);
  assert.match(p.err, /^switchboard: [^\n]+\n?$/, `one line on stderr: ${JSON.stringify(p.err)}`);
  console.log(`${sub} failed in ${Date.now() - t0} ms (exit ${code}): ${p.err.trim()}`);
  return p.err;
}

test('native peer errors: refused without or with a forged invite token, server not reachable', async () => {
  const secret = randomBytes(18).toString('hex');
  const server = await startServer(['--join-secret', secret]);
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-native-err-'));
  try {
    const id = roomId('locked');
    const room = `http://127.0.0.1:${server.httpPort}/r/${id}`;
    assert.match(await mustFail('chat', [room]), /unauthorized.*missing token/);
    // A well-formed invite for this very room, signed with another secret.
    const forged = mintToken(randomBytes(18).toString('hex'), { room: id });
    assert.match(await mustFail('chat', [`${room}#t=${forged}`]), /unauthorized.*invalid/);
    await writeFile(join(dir, 'f.txt'), 'x');
    assert.match(await mustFail('send', ['http://127.0.0.1:1/r/x', join(dir, 'f.txt')]), /^switchboard: cannot reach /);
  } finally {
    await server.stop(2000);
    await rm(dir, { recursive: true, force: true });
  }
});

// Issue 12, must-show 1 (Chromium): the native peer (`switchboard send`,
// `recv`, `chat`) in a room with a browser page of the app — a 50 MiB file
// from `send` to the page (its download link's SHA-256 matches), a file
// from the page to `recv` (the file on disk matches), chat both ways —
// once with the default ICE policy and once relay-only (`--relay` and
// `?relay=1`), where the page's selected pair must be relay/relay on this
// server's TURN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from '../lib/browser.js';
import { BASE, roomId, joinRoom, waitConnected, peerStats, sendChat, waitChat } from '../lib/call.js';

const BIG = 50 * 1024 * 1024;
const TURN = process.env.SWITCHBOARD_TURN ?? '';

/** Runs `switchboard SUB …` as a native peer; `lines` sees its stdout lines. */
function native(sub, args, { stdin = 'ignore' } = {}) {
  const child = spawn(process.env.SWITCHBOARD_BIN, [sub, ...args], { stdio: [stdin, 'pipe', 'pipe'] });
  const p = { child, out: '', err: '', waiters: [] };
  child.stdout.on('data', (d) => {
    p.out += d;
    for (const w of p.waiters) w();
  });
  child.stderr.on('data', (d) => { p.err += d; });
  p.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  p.waitFor = (text, ms = 60_000) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${JSON.stringify(text)} from switchboard ${sub}; out: ${p.out} err: ${p.err}`)), ms);
    const check = () => { if (p.out.includes(text)) { clearTimeout(timer); resolve(); } };
    p.waiters.push(check);
    check();
  });
  p.stop = () => { if (child.exitCode === null) child.kill('SIGTERM'); };
  return p;
}

async function exitCode(p, ms = 120_000) {
  const timer = setTimeout(() => p.child.kill('SIGKILL'), ms);
  const code = await p.exited;
  clearTimeout(timer);
  return code;
}

async function scenario({ relay }) {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-native-'));
  const page = await launchChromium();
  const procs = [];
  const peerArgs = (name) => [`${BASE}/r/${room}${relay ? '?relay=1' : ''}`, '--name', name, ...(relay ? ['--relay'] : [])];
  const room = roomId(relay ? 'native-relay' : 'native');
  try {
    await joinRoom(page.page, room, 'Page', relay ? '?relay=1' : '');

    // 1. `switchboard send` a 50 MiB file to the page.
    const data = randomBytes(BIG);
    const sha = createHash('sha256').update(data).digest('hex');
    await writeFile(join(dir, 'big.bin'), data);
    const sender = native('send', [...peerArgs('Sender'), join(dir, 'big.bin')]);
    procs.push(sender);
    await waitConnected(page.page, 1, 60_000);
    if (relay) {
      const stats = Object.values(await peerStats(page.page));
      assert.equal(stats.length, 1);
      assert.equal(`${stats[0].localType}/${stats[0].remoteType}`, 'relay/relay', JSON.stringify(stats));
      assert.ok(stats[0].localUrl?.includes(TURN.split(':').pop()), `relay on this server's TURN: ${JSON.stringify(stats)}`);
    }
    await page.page.click('.tab[data-tab="files"]');
    await page.page.waitForSelector('.transfer[data-dir="in"][data-state="verified"]', { timeout: 180_000 });
    const got = await page.page.evaluate(async () => {
      const a = document.querySelector('.transfer[data-dir="in"][data-state="verified"] a[download]');
      const buf = await (await fetch(a.href)).arrayBuffer();
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
      return { name: a.getAttribute('download'), size: buf.byteLength, sha: [...d].map((x) => x.toString(16).padStart(2, '0')).join('') };
    });
    assert.deepEqual(got, { name: 'big.bin', size: BIG, sha });
    assert.equal(await exitCode(sender), 0, sender.err);
    assert.match(sender.err, /delivered/);

    // 2. The page sends a file to `switchboard recv`.
    const recvDir = join(dir, 'in');
    await import('node:fs/promises').then((fs) => fs.mkdir(recvDir));
    const receiver = native('recv', [...peerArgs('Receiver'), '--dir', recvDir]);
    procs.push(receiver);
    await page.page.waitForFunction(() => [...window.switchboard.state.peers.values()]
      .some((p) => p.link.name === 'Receiver' && p.link.pc.connectionState === 'connected'), null, { timeout: 60_000 });
    const upload = randomBytes(3 * 1024 * 1024 + 17);
    await page.page.setInputFiles('#file-input', { name: 'from-page.bin', mimeType: 'application/octet-stream', buffer: upload });
    assert.equal(await exitCode(receiver), 0, receiver.err);
    const stored = await readFile(join(recvDir, 'from-page.bin'));
    assert.equal(createHash('sha256').update(stored).digest('hex'), createHash('sha256').update(upload).digest('hex'));
    assert.deepEqual(await readdir(recvDir), ['from-page.bin'], 'no partial files left');

    // 3. Chat both ways with `switchboard chat`.
    const chat = native('chat', peerArgs('Terminal'), { stdin: 'pipe' });
    procs.push(chat);
    await chat.waitFor('* connected to Page');
    chat.child.stdin.write('hello from the terminal\n');
    await waitChat(page.page, 'hello from the terminal');
    await page.page.click('.tab[data-tab="chat"]');
    await sendChat(page.page, 'hello from the page');
    await chat.waitFor('Page: hello from the page');
    chat.child.stdin.end();
    assert.equal(await exitCode(chat, 20_000), 0, chat.err);
  } finally {
    for (const p of procs) p.stop();
    await page.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('native peer ↔ Chromium: send 50 MiB, recv, chat (default ICE policy)', () => scenario({ relay: false }));
test('native peer ↔ Chromium relay-only: send 50 MiB, recv, chat through Switchboard TURN', () => scenario({ relay: true }));

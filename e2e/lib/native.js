// The native peer against a browser page of the app, shared by
// tests/native.test.js (Chromium) and tests/native-firefox.test.js (Firefox
// ESR): each file gets e2e/run's per-file time limit of its own.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from './browser.js';
import { launchFirefox, FIREFOX, waitUntil } from './firefox.js';
import { BASE, roomId, tcpTurnOnly } from './call.js';

export const MiB = 1024 * 1024;
const TURN = process.env.SWITCHBOARD_TURN ?? '';
export const sha256 = (b) => createHash('sha256').update(b).digest('hex');

// What differs between playwright's Chromium and puppeteer's Firefox; the
// scenario uses only these and the calls both share (goto, click,
// waitForSelector, evaluate).
export const chromium = {
  name: 'Chromium',
  launch: () => launchChromium(),
  init: (page, fn, arg) => page.addInitScript(fn, arg),
  type: (page, sel, text) => page.fill(sel, text),
  enter: (page, sel) => page.press(sel, 'Enter'),
  upload: (page, sel, path) => page.setInputFiles(sel, path),
  waitFn: (page, fn, arg, timeout) => page.waitForFunction(fn, arg, { timeout, polling: 250 }),
};
export const firefox = {
  name: 'Firefox',
  skip: !existsSync(FIREFOX) && `no ${FIREFOX}`,
  launch: () => launchFirefox(),
  init: (page, fn, arg) => page.evaluateOnNewDocument(fn, arg),
  type: (page, sel, text) => page.type(sel, text),
  enter: (page) => page.keyboard.press('Enter'),
  upload: async (page, sel, path) => (await page.$(sel)).uploadFile(path),
  waitFn: (page, fn, arg, timeout) => waitUntil(page, fn, arg, { timeout }),
};

/** Selected pair per peer, read the way both engines report it. */
function pairsInPage() {
  return (async () => {
    const out = [];
    for (const p of window.switchboard.state.peers.values()) {
      const r = await p.link.pc.getStats();
      let pair = null;
      r.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = r.get(s.selectedCandidatePairId); });
      if (!pair) r.forEach((s) => { if (s.type === 'candidate-pair' && s.selected) pair = s; }); // Firefox
      const l = pair && r.get(pair.localCandidateId);
      const rc = pair && r.get(pair.remoteCandidateId);
      out.push({ name: p.link.name, state: p.link.pc.connectionState, pair: `${l?.candidateType}/${rc?.candidateType}`,
        relayProtocol: l?.relayProtocol ?? null, url: l?.url ?? null });
    }
    const turnUrls = (window.switchboard.state.iceServers ?? []).flatMap((s) => [].concat(s.urls)).filter((u) => /^turns?:/.test(u));
    return { peers: out, turnUrls };
  })();
}

/** Runs `switchboard SUB …` as a native peer; `waitFor` watches its stdout. */
export function native(sub, args, { stdin = 'ignore' } = {}) {
  const child = spawn(process.env.SWITCHBOARD_BIN, [sub, ...args], { stdio: [stdin, 'pipe', 'pipe'] });
  const p = { child, out: '', err: '', waiters: [] };
  child.stdout.on('data', (d) => { p.out += d; for (const w of p.waiters) w(); });
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

/** The exit code, or null if it had to be killed after `ms`. */
export async function exitCode(p, ms = 120_000) {
  let killed = false;
  const timer = setTimeout(() => { killed = true; p.child.kill('SIGKILL'); }, ms);
  const code = await p.exited;
  clearTimeout(timer);
  return killed ? null : code;
}

export async function scenario(b, { relay, tcp = false, size }) {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-native-'));
  const br = await b.launch();
  const page = br.page;
  const procs = [];
  const room = roomId(`native-${b.name.toLowerCase()}${relay ? '-relay' : ''}${tcp ? '-tcp' : ''}`);
  const query = relay ? '?relay=1' : '';
  const peerArgs = (name) => [`${BASE}/r/${room}${query}`, '--name', name,
    ...(relay ? ['--relay'] : []), ...(tcp ? ['--turn-transport', 'tcp'] : [])];
  const waitPeer = (name) => b.waitFn(page, (n) => [...window.switchboard.state.peers.values()]
    .some((p) => p.link.name === n && p.link.pc.connectionState === 'connected'), name, 60_000);
  const t0 = Date.now();
  const lap = (what) => console.log(`${b.name}${relay ? ' relay' : ''}${tcp ? ' tcp' : ''}: ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  try {
    if (tcp) await b.init(page, tcpTurnOnly);
    await page.goto(`${BASE}/r/${room}${query}`);
    await b.type(page, '#name', 'Page');
    await page.click('#join');
    await page.waitForSelector('#call:not([hidden])', { timeout: 20_000 });

    // 1. `switchboard send` a file to the page.
    const data = randomBytes(size);
    const sha = sha256(data);
    await writeFile(join(dir, 'big.bin'), data);
    const sender = native('send', [...peerArgs('Sender'), join(dir, 'big.bin')]);
    procs.push(sender);
    await waitPeer('Sender');
    lap('sender connected');
    const stats = await page.evaluate(pairsInPage);
    assert.equal(stats.peers.length, 1, JSON.stringify(stats));
    if (relay) {
      const [s] = stats.peers;
      assert.equal(s.pair, 'relay/relay', JSON.stringify(stats));
      // The only TURN the page was given is this server's, and (where the
      // engine says, Chromium) the local relay was allocated there.
      assert.ok(stats.turnUrls.length && stats.turnUrls.every((u) => u.includes(TURN)), JSON.stringify(stats));
      if (b === chromium) assert.ok(s.url?.includes(TURN), `relay on this server's TURN: ${JSON.stringify(stats)}`);
      if (tcp) {
        assert.equal(s.relayProtocol, 'tcp', JSON.stringify(stats));
        assert.match(s.url, /transport=tcp/, JSON.stringify(stats));
      }
    }
    await page.click('.tab[data-tab="files"]');
    await page.waitForSelector('.transfer[data-dir="in"][data-state="verified"]', { timeout: 150_000 }).catch(async (e) => {
      const rows = await page.evaluate(() => [...document.querySelectorAll('.transfer')].map((r) => `${r.dataset.dir}:${r.dataset.state} ${r.textContent}`));
      throw new Error(`${e.message}\npage transfers: ${JSON.stringify(rows)}\nsend stderr: ${sender.err.slice(-2000)}\npairs now: ${JSON.stringify(await page.evaluate(pairsInPage))}`);
    });
    const got = await page.evaluate(async () => {
      const a = document.querySelector('.transfer[data-dir="in"][data-state="verified"] a[download]');
      const buf = await (await fetch(a.href)).arrayBuffer();
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
      return { name: a.getAttribute('download'), size: buf.byteLength, sha: [...d].map((x) => x.toString(16).padStart(2, '0')).join('') };
    });
    assert.deepEqual(got, { name: 'big.bin', size, sha });
    assert.equal(await exitCode(sender), 0, sender.err);
    assert.match(sender.err, /delivered/);
    lap(`${size / MiB} MiB received by the page`);

    // 2. The page sends a file to `switchboard recv`.
    const recvDir = join(dir, 'in');
    await mkdir(recvDir);
    const receiver = native('recv', [...peerArgs('Receiver'), '--dir', recvDir]);
    procs.push(receiver);
    await waitPeer('Receiver');
    const upload = randomBytes(3 * MiB + 17);
    const uploadPath = join(dir, 'from-page.bin');
    await writeFile(uploadPath, upload);
    await b.upload(page, '#file-input', uploadPath);
    assert.equal(await exitCode(receiver), 0, receiver.err);
    assert.equal(sha256(await readFile(join(recvDir, 'from-page.bin'))), sha256(upload));
    assert.deepEqual(await readdir(recvDir), ['from-page.bin'], 'no partial files left');
    lap('file received by recv');

    // 3. Chat both ways with `switchboard chat`.
    const chat = native('chat', peerArgs('Terminal'), { stdin: 'pipe' });
    procs.push(chat);
    await chat.waitFor('* connected to Page');
    chat.child.stdin.write('hello from the terminal\n');
    await page.click('.tab[data-tab="chat"]');
    await b.waitFn(page, (t) => [...document.querySelectorAll('#chat-log li:not(.mine) .text')].some((e) => e.textContent === t),
      'hello from the terminal', 15_000);
    await b.type(page, '#chat-input', `hello from ${b.name}`);
    await b.enter(page, '#chat-input');
    await chat.waitFor(`Page: hello from ${b.name}`, 15_000);
    chat.child.stdin.end();
    assert.equal(await exitCode(chat, 20_000), 0, chat.err);
    lap('chat done');
    console.log('pairs:', JSON.stringify(stats));
  } finally {
    for (const p of procs) p.stop();
    await br.close();
    await rm(dir, { recursive: true, force: true });
  }
}


#!/usr/bin/env node
// Issue 12, must-show 4: data-channel throughput side by side, in one run,
// on loopback through one Switchboard server:
//   native → native    `switchboard send` to `switchboard recv`
//   native → Chromium  `switchboard send` to a page of the app
//   Chromium → Chromium two pages of the app (cameras off)
// Each moves the same random file (1 GiB; --tiny: 16 MiB), checks its
// SHA-256 on arrival, and reports MiB/s of the transfer itself (from the
// first byte to the verified `ack`/the verified row) and peak RSS: the
// native peers' from GNU time (%M), the browsers' as their whole process
// tree's peak growth during the transfer (sampled twice a second).
//
//   node bench/peer.mjs [--tiny] [--out FILE]
// SWITCHBOARD_BIN (default target/release/switchboard). Every process it
// starts is stopped by PID; all traffic stays on 127.0.0.1.
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../e2e/lib/browser.js';
import { joinRoom, waitConnected } from '../e2e/lib/call.js';
import { writeRandomFile, browserRss } from '../e2e/lib/measure.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tiny = process.argv.includes('--tiny');
const outIdx = process.argv.indexOf('--out');
const outFile = outIdx > 0 ? process.argv[outIdx + 1] : null;
const MIB = tiny ? 16 : Number(process.env.PEER_BENCH_MIB ?? 1024);
const BIN = process.env.SWITCHBOARD_BIN ?? join(root, 'target/release/switchboard');
const TIMEOUT_MS = tiny ? 120_000 : 1_500_000;
const log = (m) => console.error(`[peer bench] ${m}`);

function freePorts() {
  return execFileSync(process.execPath, [join(root, 'e2e/lib/free-ports.js')]).toString().trim().split(' ').map(Number);
}

/** A native peer under GNU time; resolves {code, err, maxRssKiB, rate}. */
function native(sub, args) {
  const child = spawn('/usr/bin/time', ['-f', 'maxrss_kb=%M', BIN, sub, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  child.stdout.on('data', () => {});
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  const done = new Promise((resolve) => child.once('exit', (code) => {
    clearTimeout(timer);
    const rate = err.match(/\(([\d.]+) MiB\/s\)/);
    const rss = err.match(/maxrss_kb=(\d+)/);
    resolve({ code, err, rate: rate ? Number(rate[1]) : null, maxRssKiB: rss ? Number(rss[1]) : null });
  }));
  return { child, done };
}

/** Samples a browser's RSS; `stop()` gives the peak growth in MiB. */
function rssSampler(profile) {
  let base = null;
  let peak = 0;
  const tick = async () => {
    const r = await browserRss(profile);
    if (base === null) base = r;
    peak = Math.max(peak, r);
  };
  tick();
  const t = setInterval(tick, 500);
  return () => { clearInterval(t); return Math.round((peak - (base ?? peak)) / 2 ** 20); };
}

async function verifiedIn(page, sha) {
  const row = await page.waitForSelector('.transfer[data-dir="in"][data-state="verified"]', { state: 'attached', timeout: TIMEOUT_MS });
  const got = await row.getAttribute('data-sha256');
  if (got !== sha) throw new Error(`page got SHA-256 ${got}, sent ${sha}`);
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-peer-bench-'));
  const [httpPort, turnPort] = freePorts();
  const server = spawn(BIN, ['--http-listen', `127.0.0.1:${httpPort}`, '--turn-listen', `127.0.0.1:${turnPort}`,
    '--allow-loopback-peers', '--metrics-listen', 'off', '--turns-listen', '127.0.0.1:0', '--log', 'warn'], { stdio: 'ignore' });
  const base = `http://127.0.0.1:${httpPort}`;
  const results = [];
  try {
    for (let i = 0; ; i++) {
      try { if ((await fetch(`${base}/healthz`)).ok) break; } catch { /* not yet */ }
      if (i > 100) throw new Error('server did not come up');
      await new Promise((r) => setTimeout(r, 100));
    }
    const file = join(dir, 'payload.bin');
    log(`writing ${MIB} MiB of random bytes`);
    const sha = await writeRandomFile(file, MIB);

    // native → native
    {
      log('native → native');
      const inDir = join(dir, 'in');
      await import('node:fs/promises').then((fs) => fs.mkdir(inDir));
      const url = `${base}/r/bench-nn-${process.pid}`;
      const recv = native('recv', [url, '--name', 'recv', '--dir', inDir]);
      const send = native('send', [url, '--name', 'send', file]);
      const [s, r] = await Promise.all([send.done, recv.done]);
      if (s.code !== 0 || r.code !== 0) throw new Error(`native → native failed: ${s.err}\n${r.err}`);
      const got = createHash('sha256').update(await readFile(join(inDir, 'payload.bin'))).digest('hex');
      if (got !== sha) throw new Error('native → native: SHA-256 mismatch');
      results.push({ pair: 'native → native', mibps: s.rate, sender: s.maxRssKiB / 1024, receiver: r.maxRssKiB / 1024, rssKind: 'peak' });
      await rm(inDir, { recursive: true, force: true });
    }

    // native → Chromium
    {
      log('native → Chromium');
      const room = `bench-nc-${process.pid}`;
      const page = await launchChromium();
      try {
        await joinRoom(page.page, room, 'Page', '', base);
        await page.page.click('#btn-cam');
        const stop = rssSampler(page.profile);
        const send = native('send', [`${base}/r/${room}`, '--name', 'send', file]);
        await verifiedIn(page.page, sha);
        const s = await send.done;
        if (s.code !== 0) throw new Error(`native → Chromium failed: ${s.err}`);
        results.push({ pair: 'native → Chromium', mibps: s.rate, sender: s.maxRssKiB / 1024, receiver: stop(), rssKind: 'native peak / browser growth' });
      } finally {
        await page.close();
      }
    }

    // Chromium → Chromium
    {
      log('Chromium → Chromium');
      const room = `bench-cc-${process.pid}`;
      const a = await launchChromium();
      const b = await launchChromium();
      try {
        await joinRoom(a.page, room, 'A', '', base);
        await joinRoom(b.page, room, 'B', '', base);
        await waitConnected(a.page, 1);
        await waitConnected(b.page, 1);
        await a.page.click('#btn-cam');
        await b.page.click('#btn-cam');
        const stopA = rssSampler(a.profile);
        const stopB = rssSampler(b.profile);
        await a.page.click('.tab[data-tab="files"]');
        const t0 = Date.now();
        await a.page.setInputFiles('#file-input', file);
        await verifiedIn(b.page, sha);
        const secs = (Date.now() - t0) / 1000;
        results.push({ pair: 'Chromium → Chromium', mibps: +(MIB / secs).toFixed(1), sender: stopA(), receiver: stopB(), rssKind: 'browser growth' });
      } finally {
        await a.close();
        await b.close();
      }
    }
  } finally {
    server.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }

  const browser = results.find((r) => r.pair === 'Chromium → Chromium');
  const lines = [
    `| pair (${MIB} MiB, loopback) | MiB/s | × Chromium→Chromium | sender RSS MiB | receiver RSS MiB |`,
    '| --- | --- | --- | --- | --- |',
    ...results.map((r) => `| ${r.pair} | ${r.mibps?.toFixed(1) ?? '?'} | ${browser?.mibps ? (r.mibps / browser.mibps).toFixed(2) : '?'} | ${Math.round(r.sender)} | ${Math.round(r.receiver)} |`),
  ];
  const nn = results.find((r) => r.pair === 'native → native');
  const goal = `Goal: native→native ≥ 2× the browser pair (${nn && browser ? (nn.mibps / browser.mibps).toFixed(2) : '?'}×), native RSS ≤ 50 MiB (${nn ? Math.round(Math.max(nn.sender, nn.receiver)) : '?'} MiB).`;
  const text = `${lines.join('\n')}\n\n${goal}\nNative RSS is the process's peak (GNU time %M); a browser's is the peak growth of its whole process tree during the transfer (sampled every 0.5 s), since its baseline is hundreds of MiB.\n`;
  console.log(text);
  if (outFile) await writeFile(outFile, text);
}

main().catch((e) => { console.error(`[peer bench] ${e.stack ?? e}`); process.exit(1); });

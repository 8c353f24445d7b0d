// Large file transfer, opt-in (see e2e/run for the timeouts a 1 GiB run needs):
// Chromium to Chromium, checks the SHA-256 and that neither browser held the
// file in memory: each browser's summed RSS (its whole process tree), sampled
// twice a second, must grow by well under the file size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { open, rm, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected } from '../lib/call.js';

const MIB = Number(process.env.E2E_BIG_FILE_MIB ?? 0);

/** Writes `mib` MiB of random bytes to `path`, returning their SHA-256. */
async function writeRandomFile(path, mib) {
  const f = await open(path, 'w');
  const h = createHash('sha256');
  try {
    for (let i = 0; i < mib; i++) {
      const chunk = randomBytes(1024 * 1024);
      h.update(chunk);
      await f.write(chunk);
    }
  } finally {
    await f.close();
  }
  return h.digest('hex');
}

/**
 * Summed resident memory (bytes) of one browser: the process started with
 * `--user-data-dir=<profile>` and all its descendants (renderers, GPU,
 * network and storage services).
 */
async function browserRss(profile) {
  const procs = new Map(); // pid -> {ppid, rss, cmd}
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      const cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
      procs.set(Number(pid), {
        ppid: Number(status.match(/PPid:\s+(\d+)/)?.[1] ?? 0),
        rss: Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) * 1024,
        cmd,
      });
    } catch { /* exited */ }
  }
  const roots = [...procs].filter(([, p]) => p.cmd.includes(`--user-data-dir=${profile}`) && !p.cmd.includes('--type=')).map(([pid]) => pid);
  const seen = new Set(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, p] of procs) if (!seen.has(pid) && seen.has(p.ppid)) { seen.add(pid); grew = true; }
  }
  let total = 0;
  for (const pid of seen) total += procs.get(pid)?.rss ?? 0;
  return total;
}

test(`a large file (${MIB || "E2E_BIG_FILE_MIB"} MiB) streams through without being held in memory`, { skip: !MIB && 'set E2E_BIG_FILE_MIB to run', timeout: 900_000 }, async () => {
  const path = join(tmpdir(), `switchboard-big-${process.pid}.bin`);
  const sha = await writeRandomFile(path, MIB);
  const alice = await launchChromium({ fakeCamera: null });
  const bob = await launchChromium();
  const peak = { alice: 0, bob: 0 };
  const sampler = setInterval(async () => {
    peak.alice = Math.max(peak.alice, await browserRss(alice.profile));
    peak.bob = Math.max(peak.bob, await browserRss(bob.profile));
  }, 500);
  try {
    const room = roomId('big');
    await joinRoom(alice.page, room, 'Alice');
    await joinRoom(bob.page, room, 'Bob');
    await waitConnected(alice.page, 1);
    await waitConnected(bob.page, 1);
    // Cameras off: measure the data path, not two video encoders on 2 cores.
    await alice.page.click('#btn-cam');
    await bob.page.click('#btn-cam');
    const baseline = { alice: await browserRss(alice.profile), bob: await browserRss(bob.profile) };
    peak.alice = baseline.alice;
    peak.bob = baseline.bob;
    const t0 = Date.now();
    await alice.page.click('.tab[data-tab="files"]');
    await alice.page.setInputFiles('#file-input', path);
    const row = await bob.page.waitForSelector('.transfer[data-dir="in"][data-state="verified"]', { state: 'attached', timeout: 840_000 });
    const secs = (Date.now() - t0) / 1000;
    assert.equal(await row.getAttribute('data-sha256'), sha);
    const sink = await bob.page.evaluate(() => navigator.storage?.getDirectory ? 'opfs' : 'blob');
    const mib = (x) => Math.round(x / 2 ** 20);
    const growth = { sender: mib(peak.alice - baseline.alice), receiver: mib(peak.bob - baseline.bob) };
    console.log(JSON.stringify({ mib: MIB, seconds: secs, mibPerSecond: +(MIB / secs).toFixed(1), baselineMiB: { sender: mib(baseline.alice), receiver: mib(baseline.bob) }, growthMiB: growth, sink }));
    for (const [side, g] of Object.entries(growth)) assert.ok(g < MIB / 2, `${side} grew by ${g} MiB for a ${MIB} MiB file`);
  } finally {
    clearInterval(sampler);
    await alice.close();
    await bob.close();
    await rm(path, { force: true });
  }
});

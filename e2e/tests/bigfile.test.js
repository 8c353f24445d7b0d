// Large file transfer, opt-in (see e2e/run for the timeouts a 1 GiB run needs):
// Chromium to Chromium, checks the SHA-256 and that neither browser held the
// file in memory: each browser's summed RSS (its whole process tree), sampled
// twice a second, must grow by well under the file size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected } from '../lib/call.js';
import { writeRandomFile, browserRss } from '../lib/measure.js';

const MIB = Number(process.env.E2E_BIG_FILE_MIB ?? 0);

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

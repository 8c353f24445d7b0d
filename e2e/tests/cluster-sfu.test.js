// Cluster mode (issue 14), SFU rooms: redis-server and three nodes with
// --redis and --sfu auto, four Chromium pages each on the node it was sent
// to (Ann on a, Ben on b, Cleo and Dev on c). With three the room moves to
// the SFU of one node (a: the least node id of its members), and every
// page plays the others' video through it, though two of them signal to
// other nodes. When Ann leaves, node a has no member left: the session
// moves to b, and the three left play each other's video through b's SFU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { launchChromium, writeSolidY4m } from '../lib/browser.js';
import { roomId, joinRoom } from '../lib/call.js';
import { startRedis, startNode } from '../lib/cluster.js';
import { waitTilesPlaying, sfuReport, waitMode } from '../lib/sfu.js';

/** The remote address of the page's SFU link's selected candidate pair. */
const sfuRemote = (page) => page.evaluate(async () => {
  const pc = window.switchboard.sfu()?.link.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  const remote = pair && stats.get(pair.remoteCandidateId);
  return remote ? `${remote.address}:${remote.port}` : null;
});

async function waitSfuAt(page, want, what, timeout = 45_000) {
  const deadline = Date.now() + timeout;
  let got = null;
  while (Date.now() < deadline) {
    got = await sfuRemote(page);
    if (got === want) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.fail(`${what}: the SFU link goes to ${got}, not ${want}`);
}

test('an SFU room across three nodes runs on one node and moves when that node empties', { timeout: 240_000 }, async () => {
  const secret = 'cluster-sfu-test-secret-0123456789';
  const redis = await startRedis();
  const nodes = [];
  const pages = [];
  const cameras = [];
  try {
    const sfuPorts = {};
    for (const id of ['a', 'b', 'c']) {
      const n = await startNode(redis, id, secret, ['--sfu', 'auto', '--sfu-listen', '127.0.0.1:0']);
      nodes.push(n);
      for (let t = 0; t < 50 && !sfuPorts[id]; t++) {
        sfuPorts[id] = /SFU: media on udp (\S+)/.exec(n.output())?.[1];
        if (!sfuPorts[id]) await new Promise((r) => setTimeout(r, 100));
      }
    }
    for (const [i, yuv] of [[105, 212, 234], [41, 240, 110], [81, 90, 240], [210, 16, 146]].entries()) {
      const file = join(tmpdir(), `switchboard-csfu-${i}-${process.pid}.y4m`);
      await writeSolidY4m(file, yuv, 640, 360);
      cameras.push(file);
    }
    const room = roomId('csfu');
    const viewport = { width: 960, height: 640 };
    const names = ['Ann', 'Ben', 'Cleo', 'Dev'];
    const at = [0, 1, 2, 2];
    for (const [i, name] of names.entries()) {
      const b = await launchChromium({ viewport, fakeCamera: cameras[i] });
      pages.push(b);
      await joinRoom(b.page, room, name, '', `http://127.0.0.1:${nodes[at[i]].httpPort}`);
      if (i === 2) for (const p of pages) await waitMode(p.page, 'sfu');
    }
    for (const b of pages) await waitMode(b.page, 'sfu');
    for (const [i, b] of pages.entries()) {
      const frames = await waitTilesPlaying(b.page, 3, 90_000).catch(async (e) => {
        for (const [j, o] of pages.entries()) console.log(names[j], JSON.stringify(await sfuReport(o.page), null, 1));
        throw e;
      });
      assert.equal(Object.keys(frames).length, 3, `${names[i]}: ${JSON.stringify(frames)}`);
    }
    assert.ok(sfuPorts.a && sfuPorts.b, `SFU addresses in the banners: ${JSON.stringify(sfuPorts)}`);
    for (const [i, b] of pages.entries()) await waitSfuAt(b.page, sfuPorts.a, names[i]);

    // Ann leaves: node a has no member left, the session moves to b.
    await pages[0].close();
    pages.shift();
    names.shift();
    for (const b of pages) await waitMode(b.page, 'sfu');
    for (const [i, b] of pages.entries()) await waitSfuAt(b.page, sfuPorts.b, `${names[i]} after Ann left`);
    for (const [i, b] of pages.entries()) {
      const frames = await waitTilesPlaying(b.page, 2, 90_000);
      assert.equal(Object.keys(frames).length, 2, `${names[i]} after Ann left: ${JSON.stringify(frames)}`);
    }
  } finally {
    for (const b of pages) await b.close().catch(() => {});
    for (const n of nodes) await n.stop().catch(() => {});
    await redis.stop();
  }
});

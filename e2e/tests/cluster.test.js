// Cluster mode (issue 14) with real browsers: redis-server, three
// Switchboard nodes with --redis, HAProxy in front.
//  1. Two pages on different nodes have a call: video, chat, a file.
//  2. kill -9 the node one page reached through HAProxy: the other page
//     hears it leave within 5 s; the app reconnects through HAProxy to a
//     surviving node, rejoins, and the call goes on without a reload.
//  3. Redis restarted during a call: the call goes on, and a page joining
//     after Redis is back gets into the room and calls both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected, waitFramesDecoded, peerStats, sendChat, waitChat, selfId, waitFor } from '../lib/call.js';
import { startRedis, startHaproxy, startNode } from '../lib/cluster.js';

const FILE_SIZE = 1024 * 1024;

/** Records every signaling message the page gets, with its time (set before joining). */
function recordSignals() {
  window.__signals = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (ev) => {
        try { window.__signals.push({ at: Date.now(), msg: JSON.parse(ev.data) }); } catch { /* not JSON */ }
      });
    }
  };
}

/** When the page was told `id` left, if it was. */
const leftAt = (page, id) => page.evaluate((id) =>
  window.__signals.find((s) => s.msg.type === 'peer-left' && s.msg.id === id)?.at ?? null, id);

/** The ids of the page's peers, orphans (`~tag`: signaling gone, call kept) included. */
const peerIds = (page) => page.evaluate(() => [...window.switchboard.state.peers.keys()]);

async function sendFile(from, to) {
  const data = randomBytes(FILE_SIZE);
  const sha = createHash('sha256').update(data).digest('hex');
  await from.page.click('.tab[data-tab="files"]');
  await from.page.setInputFiles('#file-input', { name: 'across.bin', mimeType: 'application/octet-stream', buffer: data });
  await to.page.click('.tab[data-tab="files"]');
  const row = await to.page.waitForSelector('.transfer[data-dir="in"][data-state="verified"]', { timeout: 60_000 });
  assert.equal(await row.getAttribute('data-sha256'), sha);
  await from.page.click('.tab[data-tab="chat"]');
  await to.page.click('.tab[data-tab="chat"]');
}

test('a cluster of three behind HAProxy: a call across nodes, a node killed, Redis restarted', { timeout: 220_000 }, async () => {
  const secret = randomBytes(16).toString('hex');
  let redis = await startRedis();
  const nodes = [];
  const browsers = [];
  let haproxy = null;
  try {
    for (const id of ['a', 'b', 'c']) nodes.push(await startNode(redis, id, secret));
    // HAProxy sends every new connection to the first node up: a, then b.
    haproxy = await startHaproxy(nodes);
    const direct = (i) => `http://127.0.0.1:${nodes[i].httpPort}`;
    const room = roomId('cluster');

    // 1. Ann on node b (directly), Ben through HAProxy (node a).
    const ann = await launchChromium();
    const ben = await launchChromium();
    browsers.push(ann, ben);
    await ann.page.addInitScript(recordSignals);
    await joinRoom(ann.page, room, 'Ann', '', direct(1));
    await joinRoom(ben.page, room, 'Ben', '', haproxy.base);
    assert.match(await selfId(ann.page), /^b-p/);
    assert.match(await selfId(ben.page), /^a-p/);
    await waitConnected(ann.page, 1);
    await waitConnected(ben.page, 1);
    await waitFramesDecoded(ann.page);
    await waitFramesDecoded(ben.page);
    await sendChat(ann.page, 'Hello from node b');
    await waitChat(ben.page, 'Hello from node b');
    await sendChat(ben.page, 'Hi from node a');
    await waitChat(ann.page, 'Hi from node a');
    await sendFile(ann, ben);

    // 2. Node a dies. Ann is told Ben left (her app keeps his call as an
    // orphan for his session to come back to) within 5 s, whether or not
    // he is back already.
    const benId = await selfId(ben.page);
    const t0 = await ann.page.evaluate(() => Date.now());
    process.kill(nodes[0].pid, 'SIGKILL');
    const at = await waitFor('Ann told Ben left', () => leftAt(ann.page, benId), 6000);
    console.log(`peer-left ${at - t0} ms after the kill`);
    assert.ok(at - t0 <= 5000, `${at - t0} ms`);
    // Ben's app reconnects through HAProxy to a surviving node and rejoins.
    const back = await waitFor('Ben rejoins on another node', async () => {
      const id = await selfId(ben.page);
      return id && /^[bc]-p/.test(id) ? id : null;
    }, 30_000);
    await waitFor('Ann knows Ben again', async () => (await peerIds(ann.page)).includes(back), 10_000);
    await waitConnected(ann.page, 1, 45_000);
    await waitConnected(ben.page, 1, 45_000);
    const before = Object.values(await peerStats(ann.page))[0]?.framesDecoded ?? 0;
    await waitFramesDecoded(ann.page, before + 10);
    await sendChat(ben.page, `Back on ${back[0]}`);
    await waitChat(ann.page, `Back on ${back[0]}`);

    // 3. Redis restarts (empty) during the call: video goes on, and Cleo,
    // joining once it is back, gets into the room and calls both.
    const port = redis.port;
    await redis.stop();
    const during = Object.values(await peerStats(ben.page))[0]?.framesDecoded ?? 0;
    await new Promise((r) => setTimeout(r, 2000));
    await waitFramesDecoded(ben.page, during + 20);
    redis = await startRedis(port);
    const cleo = await launchChromium();
    browsers.push(cleo);
    const t1 = Date.now();
    await joinRoom(cleo.page, room, 'Cleo', '', direct(2));
    await waitConnected(cleo.page, 2, 45_000);
    console.log(`Cleo in the call ${Date.now() - t1} ms after Redis came back`);
    await waitConnected(ann.page, 2, 45_000);
    await waitConnected(ben.page, 2, 45_000);
  } finally {
    for (const b of browsers) await b.close();
    await haproxy?.stop();
    for (const n of nodes) await n.stop(2000).catch(() => {});
    await redis.stop();
  }
});

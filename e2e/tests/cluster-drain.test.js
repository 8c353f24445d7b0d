// Cluster mode (issue 14), the rolling-restart path: redis-server, two
// nodes with --redis, HAProxy in front (`balance first`: node a while it is
// up). Ann reached node a through HAProxy, Ben is on node b; they call peer
// to peer. SIGTERM node a: /readyz turns 503, HAProxy stops sending people
// there, Ann's app is told `reconnect`, joins again through HAProxy (now
// node b) and keeps the same RTCPeerConnection with Ben: the call never
// restarts, video keeps playing, chat works, and node a exits by itself
// once its last peer is gone, long before its drain window ends.
//
// The pages get a STUN server only (their call is on loopback host
// candidates): a draining node also waits for every TURN allocation on it,
// and Chromium sometimes keeps one it cannot use (its permission for a
// loopback peer refused) alive past the whole window, which is not what
// this test is about.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected, waitFramesDecoded, peerStats, sendChat, waitChat, selfId, waitFor } from '../lib/call.js';
import { startRedis, startHaproxy, startNode } from '../lib/cluster.js';

const DRAIN_S = 60;

/** Marks every peer connection of the page, to tell later whether it is still the same object. */
const markCalls = (page) => page.evaluate(() => {
  for (const p of window.switchboard.state.peers.values()) p.link.pc.__beforeDrain = true;
});

/** The page's calls: peer id → whether its RTCPeerConnection is the one marked, and its ICE state. */
const calls = (page) => page.evaluate(() => Object.fromEntries([...window.switchboard.state.peers].map(([id, p]) =>
  [id, { same: p.link.pc.__beforeDrain === true, ice: p.link.pc.iceConnectionState }])));

test('a draining node: its peers reconnect through HAProxy to another node and keep their calls', { timeout: 180_000 }, async () => {
  const secret = randomBytes(16).toString('hex');
  const redis = await startRedis();
  const nodes = [];
  const browsers = [];
  let haproxy = null;
  try {
    // A STUN server nobody answers: no TURN allocation on either node.
    const stunOnly = ['--ice-server', 'stun:127.0.0.1:9'];
    for (const id of ['a', 'b']) nodes.push(await startNode(redis, id, secret, ['--drain-timeout', String(DRAIN_S), ...stunOnly]));
    haproxy = await startHaproxy(nodes);
    const room = roomId('rolling');
    const ann = await launchChromium();
    const ben = await launchChromium();
    browsers.push(ann, ben);
    await joinRoom(ann.page, room, 'Ann', '', haproxy.base);
    await joinRoom(ben.page, room, 'Ben', '', `http://127.0.0.1:${nodes[1].httpPort}`);
    assert.match(await selfId(ann.page), /^a-p/);
    assert.match(await selfId(ben.page), /^b-p/);
    await waitConnected(ann.page, 1);
    await waitConnected(ben.page, 1);
    await waitFramesDecoded(ann.page);
    await waitFramesDecoded(ben.page);
    await markCalls(ann.page);
    await markCalls(ben.page);

    // Node a drains.
    const t0 = Date.now();
    process.kill(nodes[0].pid, 'SIGTERM');
    const back = await waitFor('Ann rejoins on node b', async () => {
      const id = await selfId(ann.page);
      return id && /^b-p/.test(id) ? id : null;
    }, 30_000);
    console.log(`Ann back as ${back} ${Date.now() - t0} ms after SIGTERM`);
    // Ben knows her under her new id, on the same call.
    const benCalls = await waitFor('Ben has Ann under her new id', async () => {
      const c = await calls(ben.page);
      return Object.keys(c).length === 1 && c[back] ? c : null;
    }, 15_000);
    assert.equal(benCalls[back].same, true, `Ben's call with Ann is the one from before the drain: ${JSON.stringify(benCalls)}`);
    const annCalls = await calls(ann.page);
    assert.deepEqual(Object.values(annCalls).map((c) => c.same), [true], `Ann's call with Ben: ${JSON.stringify(annCalls)}`);
    // Media went on: more frames, and neither side restarted its ICE.
    for (const page of [ann.page, ben.page]) {
      const before = Object.values(await peerStats(page))[0]?.framesDecoded ?? 0;
      await waitFramesDecoded(page, before + 30);
    }
    await sendChat(ann.page, 'Moved to node b');
    await waitChat(ben.page, 'Moved to node b');
    await sendChat(ben.page, 'Still here');
    await waitChat(ann.page, 'Still here');
    for (const page of [ann.page, ben.page]) {
      const c = Object.values(await calls(page));
      assert.ok(c.every((x) => x.same && ['connected', 'completed'].includes(x.ice)), JSON.stringify(c));
    }
    // Node a had nobody left: it exits by itself, well before its window.
    const { code, signal } = await nodes[0].exited;
    const took = (Date.now() - t0) / 1000;
    assert.equal(signal, null);
    assert.equal(code, 0);
    assert.ok(took < DRAIN_S / 2, `node a exited ${took} s after SIGTERM`);
  } finally {
    for (const b of browsers) await b.close();
    await haproxy?.stop();
    for (const n of nodes) await n.stop(2000).catch(() => {});
    await redis.stop();
  }
});

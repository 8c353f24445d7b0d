// Graceful drain (SIGTERM): a relay-only call keeps its media through the
// whole drain window, while /readyz says 503, a new join is refused with
// `draining` and a new TURN Allocate is refused (508, no --alternate-server);
// when the window ends the process exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected, peerStats } from '../lib/call.js';
import { startServer } from '../lib/server.js';

const DRAIN_S = 12;

/** Inbound video bytes summed over a page's peer connections. */
async function videoBytes(page) {
  return page.evaluate(async () => {
    let bytes = 0;
    for (const p of window.switchboard.state.peers.values()) {
      const report = await p.link.pc.getStats();
      report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') bytes += s.bytesReceived ?? 0; });
    }
    return bytes;
  });
}

/** Opens a WebSocket from the page and tries to join; resolves with the first answer. */
async function tryJoin(page, room) {
  return page.evaluate((room) => new Promise((resolve) => {
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/ws`);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'join', v: 1, room, name: 'late' }));
    ws.onmessage = (e) => { resolve(JSON.parse(e.data)); ws.close(); };
    ws.onerror = () => resolve({ type: 'socket-error' });
    setTimeout(() => resolve({ type: 'timeout' }), 10_000);
  }), room);
}

test('SIGTERM drains: the relayed call goes on, new joins and allocations are refused, exit 0', async () => {
  const server = await startServer(['--drain-timeout', String(DRAIN_S)]);
  const base = `http://127.0.0.1:${server.httpPort}`;
  const a = await launchChromium();
  const b = await launchChromium();
  try {
    const room = roomId('drain');
    await joinRoom(a.page, room, 'Ann', '?relay=1', base);
    await joinRoom(b.page, room, 'Bob', '?relay=1', base);
    await waitConnected(a.page, 1);
    await waitConnected(b.page, 1);
    const stats = Object.values(await peerStats(a.page))[0];
    assert.equal(stats.localType, 'relay', 'the call is relayed through our TURN');
    // Credentials for the Allocate check, minted before the drain.
    const ice = await (await fetch(`${base}/api/ice`)).json();
    const turn = ice.iceServers.find((s) => s.username);
    assert.ok((await fetch(`${base}/readyz`)).status === 200, 'ready before the drain');

    process.kill(server.pid, 'SIGTERM');
    const t0 = Date.now();
    // /readyz turns 503 at once.
    let ready = 200;
    for (let i = 0; i < 20 && ready === 200; i++) {
      ready = (await fetch(`${base}/readyz`)).status;
      if (ready === 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(ready, 503, '/readyz answers 503 while draining');

    // A new join is refused.
    const answer = await tryJoin(a.page, roomId('late'));
    assert.equal(answer.type, 'error', JSON.stringify(answer));
    assert.equal(answer.code, 'draining', JSON.stringify(answer));

    // A new Allocate is refused (coturn's client, the browser's credential).
    const uclient = spawnSync('turnutils_uclient', ['-u', turn.username, '-w', turn.credential,
      '-e', '127.0.0.1', '-r', '9', '-p', String(server.turnPort), '-n', '1', '-m', '1', '-y', '127.0.0.1'],
    { encoding: 'utf8', timeout: 15_000 });
    const out = `${uclient.stdout}${uclient.stderr}`;
    assert.match(out, /508/, `Allocate while draining is refused with 508:\n${out}`);

    // Media keeps flowing, both ways, until the window is nearly over.
    let last = [await videoBytes(a.page), await videoBytes(b.page)];
    while (Date.now() - t0 < (DRAIN_S - 3) * 1000) {
      await new Promise((r) => setTimeout(r, 2500));
      const now = [await videoBytes(a.page), await videoBytes(b.page)];
      assert.ok(now[0] > last[0] && now[1] > last[1],
        `video still arrives ${Math.round((Date.now() - t0) / 1000)} s into the drain: ${last} -> ${now}`);
      last = now;
    }
    const { code, signal } = await server.exited;
    const took = (Date.now() - t0) / 1000;
    assert.equal(signal, null, 'exited by itself');
    assert.equal(code, 0, `exit status 0:\n${server.output()}`);
    assert.ok(took >= DRAIN_S - 1 && took <= DRAIN_S + 6, `exited after the ${DRAIN_S} s window (${took} s)`);
  } finally {
    await a.close();
    await b.close();
    await server.stop(2000);
  }
});

test('SIGTERM with nothing left to drain exits at once; a second signal cuts a drain short', async () => {
  const idle = await startServer(['--drain-timeout', '60']);
  const t0 = Date.now();
  process.kill(idle.pid, 'SIGTERM');
  const first = await idle.exited;
  assert.equal(first.code, 0);
  assert.ok(Date.now() - t0 < 8000, `an idle server exits without waiting out the window (${Date.now() - t0} ms)`);

  // A peer in a room keeps a drain going; the second SIGTERM ends it.
  const busy = await startServer(['--drain-timeout', '60']);
  const a = await launchChromium();
  try {
    await joinRoom(a.page, roomId('busy'), 'Ann', '', `http://127.0.0.1:${busy.httpPort}`);
    process.kill(busy.pid, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await fetch(`http://127.0.0.1:${busy.httpPort}/readyz`)).status, 503, 'still draining');
    const t1 = Date.now();
    process.kill(busy.pid, 'SIGTERM');
    const second = await busy.exited;
    assert.equal(second.code, 0);
    assert.ok(Date.now() - t1 < 3000, 'the second signal exits at once');
  } finally {
    await a.close();
    await busy.stop(2000);
  }
});

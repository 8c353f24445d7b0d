// Recovery path: the app answers a failed connection with restartIce(). Here
// both sides restart ICE at the same moment (an offer collision that perfect
// negotiation must resolve); the call must come back on new ICE credentials
// with video still decoding on both sides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected, waitFramesDecoded } from '../lib/call.js';

const ufrags = (page) => page.evaluate(() => {
  const [p] = window.switchboard.state.peers.values();
  const frag = (d) => d?.sdp.match(/a=ice-ufrag:(\S+)/)?.[1];
  return { local: frag(p.link.pc.currentLocalDescription), remote: frag(p.link.pc.currentRemoteDescription) };
});

test('simultaneous ICE restarts on both sides recover the call', async () => {
  const alice = await launchChromium();
  const bob = await launchChromium();
  try {
    const room = roomId('restart');
    await joinRoom(alice.page, room, 'Alice');
    await joinRoom(bob.page, room, 'Bob');
    await waitConnected(alice.page, 1);
    await waitConnected(bob.page, 1);
    const before = await ufrags(alice.page);

    await Promise.all([alice.page, bob.page].map((p) => p.evaluate(() => {
      const [peer] = window.switchboard.state.peers.values();
      peer.link.restartIce();
    })));
    await alice.page.waitForFunction((old) => {
      const [p] = window.switchboard.state.peers.values();
      const d = p.link.pc.currentLocalDescription?.sdp ?? '';
      return p.link.pc.signalingState === 'stable' && !d.includes(`a=ice-ufrag:${old}`);
    }, before.local, { timeout: 20_000 });
    await waitConnected(alice.page, 1);
    await waitConnected(bob.page, 1);
    const after = await ufrags(alice.page);
    assert.notEqual(after.local, before.local);
    assert.notEqual(after.remote, before.remote);
    // Both agree on the new credentials.
    assert.deepEqual(await ufrags(bob.page), { local: after.remote, remote: after.local });
    const a = Object.values(await waitFramesDecoded(alice.page))[0].framesDecoded;
    const b = Object.values(await waitFramesDecoded(bob.page))[0].framesDecoded;
    await waitFramesDecoded(alice.page, a + 10);
    await waitFramesDecoded(bob.page, b + 10);
  } finally {
    await alice.close();
    await bob.close();
  }
});

// A call that flaps (connected, then failed, again and again) gets a bounded
// number of ICE restarts: `connected` alone does not give the budget back,
// only a connection that holds for the stable window (20 s) does. The
// link's state is driven by hand on a live call, and restartIce on the
// RTCPeerConnection is counted instead of run.
test('a flapping connection gets a bounded number of ICE restarts', async () => {
  const alice = await launchChromium();
  const bob = await launchChromium();
  try {
    const room = roomId('flap');
    await joinRoom(alice.page, room, 'Alice');
    await joinRoom(bob.page, room, 'Bob');
    await waitConnected(alice.page, 1);
    const flap = (cycles) => alice.page.evaluate((n) => {
      const [{ link }] = window.switchboard.state.peers.values();
      if (!window.flap) {
        window.flap = { state: 'connected', restarts: 0 };
        Object.defineProperty(link.pc, 'connectionState', { get: () => window.flap.state, configurable: true });
        link.pc.restartIce = () => { window.flap.restarts++; };
      }
      for (let i = 0; i < n; i++) {
        window.flap.state = 'failed';
        link.onConnectionState();
        window.flap.state = 'connected';
        link.onConnectionState();
      }
      return window.flap.restarts;
    }, cycles);
    assert.equal(await flap(20), 6, '20 flaps: the budget of 6 restarts, not one per flap');
    assert.equal(await flap(5), 6, 'no restart left while it keeps flapping');
    // Connected for longer than the stable window: the budget is back.
    await new Promise((r) => setTimeout(r, 21_000));
    assert.equal(await flap(1), 7, 'a connection that held earns a restart again');
  } finally {
    await alice.close();
    await bob.close();
  }
});

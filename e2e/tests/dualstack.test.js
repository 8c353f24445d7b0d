// Trap 1 of issue 11: `--turn-listen [::]:PORT`, the dual-stack form the
// default takes. Two relay-only Chromiums (?relay=1) load the page from
// 127.0.0.1, so the ICE servers they get are turn:127.0.0.1:PORT: IPv4
// clients of an IPv6 socket. Before, their Allocate got 440 (the server
// saw ::ffff:127.0.0.1) and no relay candidate was gathered; now both
// allocate IPv4 relays and decode each other's video through them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected, waitFramesDecoded } from '../lib/call.js';
import { startServer } from '../lib/server.js';

test('a relay-only call through a dual-stack [::] TURN listener, reached over IPv4', async () => {
  const server = await startServer([], undefined, null, { turnHost: '[::]' });
  const base = `http://127.0.0.1:${server.httpPort}`;
  const browsers = [];
  try {
    const room = roomId('dualstack');
    for (const name of ['Alice', 'Bob']) {
      const b = await launchChromium();
      browsers.push(b);
      await joinRoom(b.page, room, name, '?relay=1', base);
    }
    for (const b of browsers) await waitConnected(b.page, 1);
    for (const b of browsers) {
      for (const s of Object.values(await waitFramesDecoded(b.page))) {
        assert.equal(s.state, 'connected');
        assert.ok(s.framesDecoded > 0, JSON.stringify(s));
        assert.equal(`${s.localType}/${s.remoteType}`, 'relay/relay', JSON.stringify(s));
        // Allocated on this server over IPv4, with an IPv4 relay address.
        assert.ok(s.localUrl?.startsWith(`turn:127.0.0.1:${server.turnPort}`), JSON.stringify(s));
        assert.equal(s.localAddress, '127.0.0.1', JSON.stringify(s));
      }
    }
  } catch (e) {
    e.message += `\nserver output:\n${server.output()}`;
    throw e;
  } finally {
    for (const b of browsers) await b.close();
    await server.stop(5000);
  }
});

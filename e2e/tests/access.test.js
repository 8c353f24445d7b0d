// Access control (--join-secret): a page without an invite token cannot
// join, gets no TURN credentials and sees a clear page; /api/ice answers 401;
// invite links (from `switchboard invite`) join a call, each browser with its
// own TURN username; an expired link gets its own clear page; /diag works
// with a token in its fragment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { launchChromium } from '../lib/browser.js';
import { roomId, waitConnected } from '../lib/call.js';
import { startServer } from '../lib/server.js';
import { mintToken, inviteLink } from '../lib/token.js';

const shots = new URL('../artifacts/', import.meta.url).pathname;

/** Opens `url`, types a name, clicks Join; resolves once the call or the refusal page shows. */
async function tryJoin(page, url, name) {
  // A new load even when only the fragment differs from the page shown.
  await page.goto('about:blank');
  await page.goto(url);
  if (!(await page.$eval('#name', (n) => n.readOnly))) await page.fill('#name', name);
  await page.click('#join');
  await page.waitForSelector('#call:not([hidden]), #denied:not([hidden])', { timeout: 20_000 });
  return (await page.isVisible('#denied')) ? 'denied' : 'joined';
}

test('with --join-secret, only invite links join; the others see why', async (t) => {
  const secret = randomBytes(18).toString('hex');
  const server = await startServer(['--join-secret', secret]);
  const base = `http://127.0.0.1:${server.httpPort}`;
  const room = roomId('invite');
  const pages = [];
  const open = async (opts) => { const b = await launchChromium(opts); pages.push(b); return b.page; };
  try {
    mkdirSync(shots, { recursive: true });
    // No token: refused, a full page says so, no ICE servers reached the page.
    const stranger = await open();
    assert.equal(await tryJoin(stranger, `${base}/r/${room}`, 'Mallory'), 'denied');
    assert.equal(await stranger.textContent('#denied-title'), 'This room needs an invite link');
    assert.deepEqual(await stranger.evaluate(() => window.switchboard.state.iceServers), []);
    await stranger.screenshot({ path: `${shots}access-missing-1280.png` });

    // /api/ice wants a token too.
    const api = await fetch(`${base}/api/ice`);
    assert.equal(api.status, 401);
    assert.equal((await api.json()).error, 'unauthorized');
    const withToken = await fetch(`${base}/api/ice`, { headers: { Authorization: `Bearer ${mintToken(secret, { room: 'any' })}` } });
    assert.equal(withToken.status, 200);

    // Invite links join a call.
    const links = [inviteLink(secret, room, base), inviteLink(secret, room, base, ['--name', 'Bob'])];
    assert.ok(!links.includes(null), '`switchboard invite` prints the links');
    const alice = await open();
    const bob = await open();
    assert.equal(await tryJoin(alice, links[0], 'Alice'), 'joined');
    assert.equal(await tryJoin(bob, links[1], 'ignored'), 'joined');
    await waitConnected(alice, 1);
    await waitConnected(bob, 1);
    // The name claim is the name the others see.
    assert.equal(await alice.evaluate(() => [...window.switchboard.state.peers.values()][0].link.name), 'Bob');
    // Each browser has its own TURN username, EXPIRY:ID.
    const users = await Promise.all([alice, bob].map((p) => p.evaluate(() =>
      window.switchboard.state.iceServers.find((s) => s.username).username)));
    assert.notEqual(users[0], users[1]);
    for (const u of users) assert.match(u, /^\d+:[0-9a-f]{16}$/);
    // The token never went into a request URL (fragment only).
    assert.ok(!(await alice.evaluate(() => performance.getEntriesByType('resource').some((e) => e.name.includes('t=')))));

    // An expired link: its own page, at desktop and phone widths.
    const late = await open();
    const expired = `${base}/r/${room}#t=${mintToken(secret, { room, ttlS: -60 })}`;
    assert.equal(await tryJoin(late, expired, 'Late'), 'denied');
    assert.equal(await late.textContent('#denied-title'), 'This invite link has expired — ask for a new one');
    await late.screenshot({ path: `${shots}access-expired-1280.png` });
    const phone = await open({ viewport: { width: 390, height: 844 } });
    assert.equal(await tryJoin(phone, expired, 'Late'), 'denied');
    await phone.screenshot({ path: `${shots}access-expired-390.png` });
    // Another room's link, and a forged one.
    const other = `${base}/r/${room}#t=${mintToken(secret, { room: 'elsewhere' })}`;
    assert.equal(await tryJoin(late, other, 'Late'), 'denied');
    assert.equal(await late.getAttribute('#denied', 'data-reason'), 'wrong-room');
    const forged = `${base}/r/${room}#t=${mintToken('not-the-secret', { room })}`;
    assert.equal(await tryJoin(late, forged, 'Late'), 'denied');
    assert.equal(await late.getAttribute('#denied', 'data-reason'), 'invalid');

    // Diagnostics: with the token in the fragment it lists the servers.
    const diag = await open();
    await diag.goto(`${base}/diag`);
    await diag.waitForSelector('#servers.diag-notice');
    assert.match(await diag.textContent('#servers'), /invite token is needed/);
    await diag.goto('about:blank');
    await diag.goto(`${base}/diag#t=${mintToken(secret, { room: 'x' })}`);
    await diag.waitForFunction(() => document.querySelector('#servers')?.textContent.includes('turn:'));
  } finally {
    for (const b of pages) await b.close();
    await server.stop(2000);
  }
});

test('a dropped signaling WebSocket rejoins with the kept token and the call goes on', async () => {
  const secret = randomBytes(18).toString('hex');
  const server = await startServer(['--join-secret', secret]);
  const base = `http://127.0.0.1:${server.httpPort}`;
  const room = roomId('rejoin');
  const browsers = [await launchChromium(), await launchChromium()];
  const [alice, bob] = browsers.map((b) => b.page);
  try {
    for (const [p, name] of [[alice, 'Alice'], [bob, 'Bob']]) {
      assert.equal(await tryJoin(p, `${base}/r/${room}#t=${mintToken(secret, { room })}`, name), 'joined');
    }
    await waitConnected(alice, 1);
    await waitConnected(bob, 1);
    await alice.evaluate(() => { window.keptPc = [...window.switchboard.state.peers.values()][0].link.pc; });
    const oldId = await alice.evaluate(() => window.switchboard.state.selfId);
    // Alice's WebSocket drops (the URL no longer holds the token: it comes from sessionStorage).
    await alice.evaluate(() => { history.replaceState(null, '', location.pathname); window.switchboard.state.signaling.ws.close(); });
    await alice.waitForFunction((old) => window.switchboard.state.selfId !== old
      && document.querySelector('#net-status').dataset.status === 'connected', oldId, { timeout: 20_000 });
    // Same RTCPeerConnection, still connected; Bob knows Alice under her new id.
    assert.ok(await alice.evaluate(() => [...window.switchboard.state.peers.values()][0].link.pc === window.keptPc));
    await waitConnected(alice, 1);
    const newId = await alice.evaluate(() => window.switchboard.state.selfId);
    await bob.waitForFunction((id) => window.switchboard.state.peers.has(id), newId, { timeout: 10_000 });
    // Signaling works again on the kept call: an ICE restart goes through.
    const ufrag = () => bob.evaluate(() => {
      const [p] = window.switchboard.state.peers.values();
      return p.link.pc.currentRemoteDescription?.sdp.match(/a=ice-ufrag:(\S+)/)?.[1];
    });
    const before = await ufrag();
    await bob.evaluate(() => [...window.switchboard.state.peers.values()][0].link.restartIce());
    await bob.waitForFunction((old) => {
      const [p] = window.switchboard.state.peers.values();
      const now = p.link.pc.currentRemoteDescription?.sdp.match(/a=ice-ufrag:(\S+)/)?.[1];
      return p.link.pc.signalingState === 'stable' && now !== old;
    }, before, { timeout: 20_000 });
    await waitConnected(alice, 1);
    await waitConnected(bob, 1);
  } finally {
    for (const b of browsers) await b.close();
    await server.stop(2000);
  }
});

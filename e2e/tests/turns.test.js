// TURN over TLS (issue 6): two Chromium pages with iceTransportPolicy
// 'relay' and only a turns: server connect relay/relay over TLS and
// exchange video, audio, chat and a file (data channels) —
//   1. on the dedicated --turns-listen port;
//   2. on the HTTPS port, which then serves the web app, the signaling
//      WebSocket and the relay of the call (one open TCP port);
//   3. and the certificate is swapped (SIGHUP) during such a call: the call
//      stays up on its TLS connections, new connections get the new one;
//   4. Firefox and Chromium, both relay-only over TLS on the shared port.
//
// How Chromium trusts the certificate: each browser is started with
// --ignore-certificate-errors-spki-list=<base64 SHA-256 of the certificate's
// SubjectPublicKeyInfo>, which Chromium applies to every TLS connection it
// makes for the profile: the page, the WebSocket, and TURN over TLS. No
// other certificate check is relaxed (no ignoreHTTPSErrors). Chromium does
// check a TURN server's certificate: with only ignoreHTTPSErrors the page
// loads but no relay candidate is gathered and the call never connects.
// Firefox is started with WebDriver's acceptInsecureCerts. Firefox ignores
// turns: URLs whose host is an IP address (it gathers nothing from them),
// so its page uses turns:localhost (the certificate names localhost too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rename, rm, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { launchChromium } from '../lib/browser.js';
import { launchFirefox, FIREFOX, waitUntil } from '../lib/firefox.js';
import { startServer } from '../lib/server.js';
import { served, spkiHash, turnsOnly } from '../lib/tls.js';
import { roomId, waitConnected, waitFramesDecoded, peerStats, sendChat, waitChat } from '../lib/call.js';

/** A new self-signed P-256 certificate for 127.0.0.1 in `dir`/`name`.{crt,key}. */
async function makeCert(dir, name) {
  const [crt, key] = [join(dir, `${name}.crt`), join(dir, `${name}.key`)];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', crt, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
  { stdio: 'ignore' });
  const cert = new X509Certificate(await readFile(crt));
  return { crt, key, fp: cert.fingerprint256, spki: spkiHash(cert) };
}

/** The ICE servers the server hands out, as one list of URLs. */
async function iceUrls(base, spki) {
  const b = await launchChromium({ args: [`--ignore-certificate-errors-spki-list=${spki.join(',')}`] });
  try {
    await b.page.goto(`${base}/healthz`);
    return await b.page.evaluate(async () => (await (await fetch('/api/ice')).json()).iceServers.flatMap((s) => s.urls));
  } finally {
    await b.close();
  }
}

/**
 * Two trusting Chromiums join a relay-only room at `base`, restricted to the
 * turns: server on `turnsPort`; returns them once media flows, with the
 * WebSocket URLs each page opened.
 */
async function startCall({ base, spki, turnsPort }) {
  const pages = [];
  const room = roomId('turns');
  for (const name of ['Alice', 'Bob']) {
    const b = await launchChromium({ args: [`--ignore-certificate-errors-spki-list=${spki.join(',')}`] });
    pages.push(b);
    b.sockets = [];
    b.page.on('websocket', (ws) => b.sockets.push(ws.url()));
    await turnsOnly(b.page, turnsPort);
    await b.page.goto(`${base}/r/${room}?relay=1`);
    await b.page.fill('#name', name);
    await b.page.click('#join');
    await b.page.waitForSelector('#call:not([hidden])', { timeout: 20_000 });
  }
  return pages;
}

/** Media, chat and a file flow both ways, relayed over TLS through `turnsPort`. */
async function checkCall([alice, bob], turnsPort) {
  for (const b of [alice, bob]) await waitConnected(b.page, 1);
  const stats = [];
  for (const b of [alice, bob]) {
    for (const s of Object.values(await waitFramesDecoded(b.page))) {
      stats.push(s);
      assert.equal(`${s.localType}/${s.remoteType}`, 'relay/relay', JSON.stringify(s));
      assert.equal(s.relayProtocol, 'tls', JSON.stringify(s));
      assert.ok(s.localUrl?.startsWith(`turns:127.0.0.1:${turnsPort}`), JSON.stringify(s));
      assert.ok(s.audioSamples > 0, JSON.stringify(s));
    }
  }
  const tag = Math.random().toString(36).slice(2, 8);
  await sendChat(alice.page, `over TLS ${tag}`);
  await waitChat(bob.page, `over TLS ${tag}`);
  await sendChat(bob.page, `back over TLS ${tag}`);
  await waitChat(alice.page, `back over TLS ${tag}`);
  return stats;
}

/** Alice sends Bob a 256 KiB file; Bob's copy has the same SHA-256. */
async function sendFile([alice, bob]) {
  const data = randomBytes(256 * 1024);
  const sha = createHash('sha256').update(data).digest('hex');
  await alice.page.click('.tab[data-tab="files"]');
  await alice.page.setInputFiles('#file-input', { name: 'turns.bin', mimeType: 'application/octet-stream', buffer: data });
  await bob.page.click('.tab[data-tab="files"]');
  const row = await bob.page.waitForSelector('.transfer[data-dir="in"][data-state="verified"]', { timeout: 60_000 });
  assert.equal(await row.getAttribute('data-sha256'), sha);
}

/** The selected candidate pair's id and bytes received, per peer of the page. */
async function selectedPair(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const p of window.switchboard.state.peers.values()) {
      const r = await p.link.pc.getStats();
      r.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) {
          const pair = r.get(s.selectedCandidatePairId);
          out.push({ id: pair.id, local: pair.localCandidateId, bytesReceived: pair.bytesReceived });
        }
      });
    }
    return out;
  });
}

test('relay-only with only a turns: server on the --turns-listen port', async () => {
  const server = await startServer(['--tls-self-signed', '--turns-on-https-port', 'false'], /web app: https:\/\/\S+/);
  let pages = [];
  try {
    const turnsPort = Number(server.output().match(/turns:127\.0\.0\.1:(\d+)\?transport=tcp\n/)?.[1]);
    assert.ok(turnsPort && turnsPort !== server.httpPort, server.output());
    const cert = await served(server.httpPort);
    assert.deepEqual(await served(turnsPort), cert, 'both ports serve one certificate');
    const base = `https://127.0.0.1:${server.httpPort}`;
    assert.ok((await iceUrls(base, [cert.spki])).includes(`turns:127.0.0.1:${turnsPort}?transport=tcp`));
    pages = await startCall({ base, spki: [cert.spki], turnsPort });
    console.log('turns: pairs:', JSON.stringify(await checkCall(pages, turnsPort)));
    await sendFile(pages);
  } finally {
    for (const b of pages) await b.close();
    await server.stop(2000);
  }
});

test('one TCP port: web app, signaling and the TURN/TLS relay of the call', async () => {
  // No --turns-listen: TLS is served on the HTTPS port only.
  const server = await startServer(['--tls-self-signed', '--turns-listen', 'off'], /web app: https:\/\/\S+/);
  let pages = [];
  try {
    const port = server.httpPort;
    assert.match(server.output(), new RegExp(`turns:127\\.0\\.0\\.1:${port}\\?transport=tcp \\(shares the HTTPS port\\)`));
    const cert = await served(port);
    const base = `https://127.0.0.1:${port}`;
    const urls = await iceUrls(base, [cert.spki]);
    assert.ok(urls.includes(`turns:127.0.0.1:${port}?transport=tcp`), JSON.stringify(urls));
    pages = await startCall({ base, spki: [cert.spki], turnsPort: port });
    console.log('shared-port pairs:', JSON.stringify(await checkCall(pages, port)));
    await sendFile(pages);
    for (const b of pages) {
      // The page and its signaling came through the same port.
      assert.ok(b.page.url().startsWith(`${base}/r/`), b.page.url());
      assert.ok(b.sockets.length > 0 && b.sockets.every((u) => u.startsWith(`wss://127.0.0.1:${port}/`)), JSON.stringify(b.sockets));
    }
  } finally {
    for (const b of pages) await b.close();
    await server.stop(2000);
  }
});

test('certificate reload (SIGHUP) during a call over the shared port', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-certs-'));
  const [first, second] = [await makeCert(dir, 'first'), await makeCert(dir, 'second')];
  const [crt, key] = [join(dir, 'live.crt'), join(dir, 'live.key')];
  await copyFile(first.crt, crt);
  await copyFile(first.key, key);
  // Watching the files is off: only the signal reloads.
  const server = await startServer(['--tls-cert', crt, '--tls-key', key, '--tls-watch-interval', '0', '--turns-listen', 'off'],
    /web app: https:\/\/\S+/);
  let pages = [];
  try {
    const port = server.httpPort;
    const base = `https://127.0.0.1:${port}`;
    assert.equal((await served(port)).fp, first.fp);
    pages = await startCall({ base, spki: [first.spki, second.spki], turnsPort: port });
    await checkCall(pages, port);
    const before = await Promise.all(pages.map((b) => selectedPair(b.page)));

    // Swap the files as a renewal would (write beside, rename), then SIGHUP.
    await copyFile(second.key, `${key}.new`);
    await copyFile(second.crt, `${crt}.new`);
    await rename(`${key}.new`, key);
    await rename(`${crt}.new`, crt);
    process.kill(server.pid, 'SIGHUP');
    const deadline = Date.now() + 10_000;
    while ((await served(port)).fp !== second.fp) {
      assert.ok(Date.now() < deadline, 'new connections still get the old certificate 10 s after SIGHUP');
      await new Promise((r) => setTimeout(r, 200));
    }

    // The call is still up on the same relayed pair, and still carries data.
    await new Promise((r) => setTimeout(r, 3000));
    await checkCall(pages, port);
    const after = await Promise.all(pages.map((b) => selectedPair(b.page)));
    for (const [i, pairs] of after.entries()) {
      assert.equal(pairs.length, 1, JSON.stringify(after));
      assert.equal(pairs[0].id, before[i][0].id, 'the call moved to another candidate pair (ICE restart?)');
      assert.ok(pairs[0].bytesReceived > before[i][0].bytesReceived, JSON.stringify({ before, after }));
    }
  } finally {
    for (const b of pages) await b.close();
    await server.stop(2000);
    await rm(dir, { recursive: true, force: true });
  }
});

/** Keeps only turns: URLs on `port`, addressed by name (Firefox skips IP literals). */
async function turnsByName(page, port) {
  await page.evaluateOnNewDocument((p) => {
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = function (config = {}) {
      const iceServers = (config.iceServers ?? [])
        .map((s) => ({ ...s, urls: [].concat(s.urls).filter((u) => u.startsWith(`turns:127.0.0.1:${p}?`)).map((u) => u.replace('127.0.0.1', 'localhost')) }))
        .filter((s) => s.urls.length);
      if (!iceServers.length) throw new Error(`no turns: server on port ${p}`);
      return new Native({ ...config, iceServers });
    };
    window.RTCPeerConnection.prototype = Native.prototype;
  }, port);
}

test('Firefox and Chromium, relay-only over TURN/TLS on the shared port', { skip: !existsSync(FIREFOX) && `no ${FIREFOX}` }, async () => {
  const server = await startServer(['--tls-self-signed', '--turns-listen', 'off'], /web app: https:\/\/\S+/);
  let ff = null;
  let cr = null;
  try {
    const port = server.httpPort;
    const cert = await served(port);
    const base = `https://127.0.0.1:${port}`;
    const room = roomId('turns-ff');
    ff = await launchFirefox({ acceptInsecureCerts: true });
    await turnsByName(ff.page, port);
    await ff.page.goto(`${base}/r/${room}?relay=1`);
    await ff.page.type('#name', 'Fiona (Firefox)');
    await ff.page.click('#join');
    await ff.page.waitForSelector('#call:not([hidden])', { timeout: 20_000 });
    [cr] = await (async () => {
      const b = await launchChromium({ args: [`--ignore-certificate-errors-spki-list=${cert.spki}`] });
      await turnsOnly(b.page, port);
      await b.page.goto(`${base}/r/${room}?relay=1`);
      await b.page.fill('#name', 'Chris (Chromium)');
      await b.page.click('#join');
      await b.page.waitForSelector('#call:not([hidden])', { timeout: 20_000 });
      return [b];
    })();
    await waitConnected(cr.page, 1, 60_000);
    const stats = Object.values(await waitFramesDecoded(cr.page, 0, 30_000));
    assert.equal(stats.length, 1);
    assert.equal(`${stats[0].localType}/${stats[0].remoteType}`, 'relay/relay', JSON.stringify(stats));
    assert.equal(stats[0].relayProtocol, 'tls', JSON.stringify(stats));
    // Firefox's side: connected, decoding, and its own candidate is a relay
    // allocated over TLS.
    const deadline = Date.now() + 30_000;
    let fx;
    do {
      fx = await ff.page.evaluate(async () => {
        const [p] = [...window.switchboard.state.peers.values()];
        if (!p) return null;
        const r = await p.link.pc.getStats();
        let frames = 0;
        let local = null;
        r.forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
          if (s.type === 'candidate-pair' && s.selected) local = r.get(s.localCandidateId);
        });
        return { state: p.link.pc.connectionState, frames, type: local?.candidateType, relayProtocol: local?.relayProtocol };
      });
      if (fx?.frames > 0 && fx.type) break;
      await new Promise((r) => setTimeout(r, 500));
    } while (Date.now() < deadline);
    assert.equal(fx?.state, 'connected', JSON.stringify(fx));
    assert.ok(fx.frames > 0, JSON.stringify(fx));
    assert.equal(fx.type, 'relay', JSON.stringify(fx));
    if (fx.relayProtocol) assert.equal(fx.relayProtocol, 'tls', JSON.stringify(fx));
    await sendChat(cr.page, 'hello firefox over TLS');
    await waitUntil(ff.page, () => [...document.querySelectorAll('#chat-log li:not(.mine) .text')].some((e) => e.textContent === 'hello firefox over TLS'), undefined, { timeout: 15_000 });
    console.log('chromium side:', JSON.stringify(stats), 'firefox side:', JSON.stringify(fx));
  } finally {
    await cr?.close();
    await ff?.close();
    await server.stop(2000);
  }
});

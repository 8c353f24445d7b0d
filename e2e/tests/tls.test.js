// HTTPS/WSS with --tls-self-signed: the printed SHA-256 fingerprint is the
// certificate actually served; two Chromium pages (accepting the self-signed
// certificate, as a user would after checking the fingerprint) have a call
// over wss://; on SIGTERM the server closes the WebSockets and exits promptly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { launchChromium } from '../lib/browser.js';
import { startServer } from '../lib/server.js';
import { roomId, waitConnected, waitFramesDecoded, sendChat, waitChat } from '../lib/call.js';

function servedFingerprint(port) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      resolve({ fp: s.getPeerX509Certificate().fingerprint256, alpn: s.alpnProtocol });
      s.end();
    });
    s.once('error', reject);
  });
}

test('--tls-self-signed: fingerprint, call over wss://, prompt shutdown', async () => {
  const server = await startServer(['--tls-self-signed'], /web app: https:\/\/\S+/);
  const browsers = [];
  try {
    const printed = server.output().match(/fingerprint:\s*\n?\s*([0-9A-F:]{95})/)?.[1];
    assert.ok(printed, server.output());
    const served = await servedFingerprint(server.httpPort);
    assert.deepEqual(served, { fp: printed, alpn: 'http/1.1' });

    const base = `https://127.0.0.1:${server.httpPort}`;
    const room = roomId('tls');
    for (const name of ['Alice', 'Bob']) {
      const b = await launchChromium({ ignoreHTTPSErrors: true });
      browsers.push(b);
      await b.page.goto(`${base}/r/${room}`);
      assert.equal(await b.page.evaluate(() => window.isSecureContext), true);
      await b.page.fill('#name', name);
      await b.page.click('#join');
      await b.page.waitForSelector('#call:not([hidden])', { timeout: 20_000 });
    }
    for (const b of browsers) await waitConnected(b.page, 1);
    await waitFramesDecoded(browsers[1].page);
    await sendChat(browsers[0].page, 'over wss');
    await waitChat(browsers[1].page, 'over wss');

    const stopped = await server.stop();
    assert.equal(stopped.code, 0, JSON.stringify(stopped));
    assert.ok(stopped.ms < 8000, `shutdown took ${stopped.ms} ms with open WebSockets`);
    // The pages notice and start reconnecting.
    await browsers[0].page.waitForSelector('#net-status[data-status="reconnecting"]', { timeout: 10_000 });
  } finally {
    for (const b of browsers) await b.close();
    await server.stop(2000);
  }
});

// The diagnostics page gathers candidates against this server's own STUN and
// TURN, one URL at a time; STUN must answer, both TURN URLs (UDP and TCP)
// must yield relay candidates, and the credential is never shown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from '../lib/browser.js';
import { BASE } from '../lib/call.js';

test('diagnostics page: relay candidates from TURN over UDP and TCP', async () => {
  const b = await launchChromium();
  try {
    await b.page.goto(`${BASE}/diag?auto=1`);
    await b.page.waitForSelector('body[data-done="true"]', { timeout: 30_000 });
    const verdicts = await b.page.$$eval('.verdict', (els) => els.map((e) => ({ url: e.dataset.url, ok: e.dataset.ok === 'true', text: e.textContent })));
    const candidates = await b.page.$$eval('#candidates tr', (rows) => rows.map((r) => ({ type: r.dataset.type, server: r.dataset.server, cells: [...r.cells].map((c) => c.textContent) })));
    console.log(JSON.stringify(verdicts));
    const turn = verdicts.filter((v) => v.url.startsWith('turn:'));
    assert.equal(turn.length, 2);
    for (const v of turn) assert.ok(v.ok, `${v.url}: ${v.text}`);
    const stun = verdicts.filter((v) => v.url.startsWith('stun:'));
    assert.equal(stun.length, 1);
    assert.ok(stun[0].ok, stun[0].text);
    assert.ok(candidates.some((c) => c.type === 'relay' && c.server.includes('transport=udp')));
    assert.ok(candidates.some((c) => c.type === 'relay' && c.server.includes('transport=tcp')));
    const html = await b.page.content();
    const { iceServers } = await (await fetch(`${BASE}/api/ice`)).json();
    assert.ok(!html.includes(iceServers[1].credential.slice(0, 12)), 'credential must not be displayed');
    await b.page.screenshot({ path: new URL('../artifacts/diagnostics.png', import.meta.url).pathname, fullPage: true });
  } finally {
    await b.close();
  }
});

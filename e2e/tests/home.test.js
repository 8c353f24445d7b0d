// The home page: "Start a new call" opens a room with an unguessable id
// (22 base64url characters = 128 bits); a pasted invite link or code joins
// that room; the relay-only box carries ?relay=1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from '../lib/browser.js';
import { BASE } from '../lib/call.js';

test('home page creates and joins rooms', async () => {
  const b = await launchChromium();
  try {
    const ids = new Set();
    for (let i = 0; i < 3; i++) {
      await b.page.goto(`${BASE}/`);
      await b.page.click('#new-room');
      await b.page.waitForURL(/\/r\/[A-Za-z0-9_-]{22}$/);
      ids.add(new URL(b.page.url()).pathname);
      await b.page.waitForSelector('#join-form');
    }
    assert.equal(ids.size, 3);

    const [invite] = ids;
    await b.page.goto(`${BASE}/`);
    await b.page.fill('#code', `${BASE}${invite}`);
    await b.page.check('#relay-only');
    await b.page.click('#join-code button');
    await b.page.waitForURL(`${BASE}${invite}?relay=1`);
    assert.equal(await b.page.isVisible('#relay-badge'), true);

    await b.page.goto(`${BASE}/`);
    await b.page.fill('#code', 'not a room!');
    await b.page.click('#join-code button');
    await b.page.waitForFunction(() => document.querySelector('#home-error').textContent.length > 0);
    assert.equal(new URL(b.page.url()).pathname, '/');
  } finally {
    await b.close();
  }
});

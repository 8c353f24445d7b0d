// Issue 13, must-show 3 (part): Firefox in an SFU room with two Chromium
// pages. Firefox joins first; the second Chromium makes three, and the room
// moves to the SFU: every page plays the two others' video through it, and
// Firefox publishes its camera as simulcast layers like Chromium does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { launchChromium } from '../lib/browser.js';
import { launchFirefox, FIREFOX } from '../lib/firefox.js';
import { roomId, joinRoom } from '../lib/call.js';
import { startServer } from '../lib/server.js';
import { waitTilesPlaying, waitMode, sfuReport } from '../lib/sfu.js';

/** The rids this page sends to the SFU, with frames sent on each. */
function sentLayers(page) {
  return page.evaluate(async () => {
    const out = {};
    (await window.switchboard.sfu().link.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid ?? '-'] = s.framesEncoded ?? s.packetsSent ?? 0;
    });
    return out;
  });
}

test('Firefox and two Chromiums in an SFU room', { skip: !existsSync(FIREFOX) && `no ${FIREFOX}`, timeout: 200_000 }, async () => {
  const server = await startServer(['--sfu', 'auto', '--sfu-listen', '127.0.0.1:0']);
  const base = `http://127.0.0.1:${server.httpPort}`;
  const viewport = { width: 960, height: 640 };
  const ff = await launchFirefox({ viewport });
  const crs = [];
  try {
    const room = roomId('sfu-ff');
    await ff.page.goto(`${base}/r/${room}`);
    await ff.page.type('#name', 'Fiona (Firefox)');
    await ff.page.click('#join');
    await ff.page.waitForSelector('#call:not([hidden])', { timeout: 20_000 });
    for (const name of ['Chris', 'Chloe']) {
      const b = await launchChromium({ viewport });
      crs.push(b);
      await joinRoom(b.page, room, name, '', base);
    }
    const all = [ff.page, ...crs.map((b) => b.page)];
    try {
      for (const page of all) await waitMode(page, 'sfu', 60_000);
      for (const page of all) await waitTilesPlaying(page, 2, 60_000);
    } catch (e) {
      for (const page of all) console.log(JSON.stringify(await sfuReport(page), null, 1));
      throw e;
    }
    const layers = await sentLayers(ff.page);
    assert.ok(Object.keys(layers).length >= 2, `Firefox sends ${JSON.stringify(layers)}`);
    await crs[0].page.screenshot({ path: new URL('../artifacts/sfu-firefox.png', import.meta.url).pathname });
  } finally {
    await ff.close();
    for (const b of crs) await b.close();
    await server.stop();
  }
});

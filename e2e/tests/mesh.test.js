// Must-show 2: three pages form a full mesh (every page connected to both
// others, decoding both videos); one leaves and the other two show it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected, waitFramesDecoded } from '../lib/call.js';

test('three pages form a full mesh; one leaves and the others show it', async () => {
  const viewport = { width: 1100, height: 700 };
  const browsers = [await launchChromium({ viewport }), await launchChromium({ viewport }), await launchChromium({ viewport })];
  try {
    const room = roomId('mesh');
    const names = ['Ann', 'Ben', 'Cleo'];
    for (const [i, b] of browsers.entries()) await joinRoom(b.page, room, names[i]);
    for (const b of browsers) await waitConnected(b.page, 2, 60_000);
    for (const [i, b] of browsers.entries()) {
      const stats = await waitFramesDecoded(b.page, 0, 45_000);
      const peers = Object.values(stats).map((s) => s.name).sort();
      assert.deepEqual(peers, names.filter((_, j) => j !== i).sort());
      assert.equal(await b.page.locator('#grid .tile').count(), 3);
    }

    await browsers[0].page.screenshot({ path: new URL('../artifacts/mesh.png', import.meta.url).pathname });

    // Cleo leaves with the Leave button.
    await browsers[2].page.click('#btn-leave');
    for (const b of browsers.slice(0, 2)) {
      await b.page.waitForFunction(() => window.switchboard.state.peers.size === 1
        && document.querySelectorAll('#grid .tile').length === 2, null, { timeout: 15_000 });
      await b.page.waitForFunction(() => [...document.querySelectorAll('#chat-log li.system')]
        .some((e) => e.textContent === 'Cleo left'), null, { timeout: 5_000 });
      const left = await b.page.evaluate(() => [...window.switchboard.state.peers.values()].map((p) => p.link.name));
      assert.equal(left.length, 1);
      assert.ok(!left.includes('Cleo'));
    }
    // The remaining pair still works.
    await waitConnected(browsers[0].page, 1);
    await waitConnected(browsers[1].page, 1);
  } finally {
    for (const b of browsers) await b.close();
  }
});

// Issue 13, must-show 1: five Chromium pages in one room with `--sfu auto`.
// Two pages call peer to peer; the third's arrival moves everyone to the
// SFU with video continuing; with five, every page plays video from the
// four others and publishes one camera stream (its simulcast layers) to
// the SFU and none on its mesh links; when three leave, the remaining two
// are peer to peer again, with video. Must-show 3 (part): Ann's screen
// share reaches the four others through the SFU as a track of its own, in
// a tile of its own at full resolution, next to her camera (her camera is a
// solid magenta file, Chromium's fake screen a green pattern: the pixels
// tell); when she stops, that tile goes away.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { launchChromium, writeSolidY4m } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected } from '../lib/call.js';
import { startServer } from '../lib/server.js';
import { waitTilesPlaying, sfuReport, mode, waitMode } from '../lib/sfu.js';

/** Mean colour of `peer`'s tile (drawn at 32x18); `peer:screen` for its screen's tile. */
function probe(page, peer) {
  return page.evaluate((id) => {
    const v = id.endsWith(':screen')
      ? document.querySelector(`#grid .tile[data-peer="${id}"] video`)
      : window.switchboard.state.peers.get(id)?.view.video;
    if (!v || !v.videoWidth) return null;
    const c = document.createElement('canvas');
    c.width = 32; c.height = 18;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0, 32, 18);
    const d = g.getImageData(0, 0, 32, 18).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) sum[k] += d[i + k];
    const [r, gr, b] = sum.map((x) => Math.round(x / (d.length / 4)));
    return { r, g: gr, b };
  }, peer);
}
const isMagenta = (px) => !!px && px.r > px.g + 80 && px.b > px.g + 80;
const isGreen = (px) => !!px && px.g > px.r + 60 && px.g > px.b + 60;

async function waitPixels(page, peer, ok, what, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const px = await probe(page, peer);
    if (ok(px)) return;
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(px)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** What this page sends: video bytes on each mesh link and the SFU link's video encodings. */
function sending(page) {
  return page.evaluate(async () => {
    const bytes = async (pc) => {
      let video = 0;
      const rids = [];
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video') {
          video += s.bytesSent ?? 0;
          if (s.rid) rids.push(s.rid);
        }
      });
      return { video, rids: rids.sort() };
    };
    const mesh = {};
    for (const [id, p] of window.switchboard.state.peers) mesh[id] = (await bytes(p.link.pc)).video;
    const sfu = window.switchboard.sfu();
    return { mesh, sfu: sfu ? await bytes(sfu.link.pc) : null };
  });
}

test('five pages: P2P for two, the SFU from three, P2P again when two remain', { timeout: 230_000 }, async () => {
  const server = await startServer(['--sfu', 'auto', '--sfu-listen', '127.0.0.1:0']);
  const base = `http://127.0.0.1:${server.httpPort}`;
  const viewport = { width: 960, height: 640 };
  // Each camera plays a solid colour at 640x360 (Ann's magenta): five
  // encoders of three layers each fit this 2-core machine, so what is
  // measured is the SFU, not a starved CPU.
  const cameras = [];
  for (const [i, yuv] of [[105, 212, 234], [41, 240, 110], [81, 90, 240], [210, 16, 146], [170, 166, 16]].entries()) {
    const file = join(tmpdir(), `switchboard-sfu-${i}-${process.pid}.y4m`);
    await writeSolidY4m(file, yuv, 640, 360);
    cameras.push(file);
  }
  const pages = [];
  try {
    const room = roomId('sfu');
    const names = ['Ann', 'Ben', 'Cleo', 'Dev', 'Eli'];
    for (const name of names.slice(0, 2)) {
      const b = await launchChromium({ viewport, fakeCamera: cameras[names.indexOf(name)] });
      pages.push(b);
      await joinRoom(b.page, room, name, '', base);
    }
    for (const b of pages) await waitConnected(b.page, 1, 45_000);
    for (const b of pages) {
      assert.equal(await mode(b.page), 'p2p');
      await waitTilesPlaying(b.page, 1);
    }

    // The third: all three move to the SFU, and their video goes on.
    const third = await launchChromium({ viewport, fakeCamera: cameras[2] });
    pages.push(third);
    await joinRoom(third.page, room, names[2], '', base);
    for (const b of pages) await waitMode(b.page, 'sfu');
    for (const b of pages) {
      await waitTilesPlaying(b.page, 2);
    }

    for (const name of names.slice(3)) {
      const b = await launchChromium({ viewport, fakeCamera: cameras[names.indexOf(name)] });
      pages.push(b);
      await joinRoom(b.page, room, name, '', base);
    }
    for (const b of pages) await waitMode(b.page, 'sfu');
    for (const [i, b] of pages.entries()) {
      const frames = await waitTilesPlaying(b.page, 4, 90_000).catch(async (e) => {
        for (const [j, o] of pages.entries()) console.log(names[j], JSON.stringify(await sfuReport(o.page), null, 1));
        throw e;
      });
      assert.equal(Object.keys(frames).length, 4, `${names[i]}: ${JSON.stringify(frames)}`);
    }
    await pages[0].page.screenshot({ path: new URL('../artifacts/sfu-five.png', import.meta.url).pathname });

    // One camera stream each, to the SFU, as simulcast layers; the mesh
    // links carry no video any more (their byte counts stand still).
    for (const [i, b] of pages.entries()) {
      const first = await sending(b.page);
      await new Promise((r) => setTimeout(r, 3000));
      const later = await sending(b.page);
      assert.ok(later.sfu, `${names[i]} has no SFU link`);
      assert.ok(later.sfu.rids.length >= 2, `${names[i]} sends ${JSON.stringify(later.sfu.rids)} to the SFU`);
      assert.ok(later.sfu.video > first.sfu.video, `${names[i]}: no video to the SFU`);
      for (const id of Object.keys(later.mesh)) {
        assert.ok(later.mesh[id] - (first.mesh[id] ?? 0) < 2000, `${names[i]} still sends video to ${id} peer to peer`);
      }
    }

    // The metrics say so too.
    const metric = (text, name) => Number(text.match(new RegExp(`^${name} (\\d+)`, 'm'))?.[1] ?? NaN);
    const scrape = async () => (await fetch(`${server.metricsUrl()}/metrics`)).text();
    const m1 = await scrape();
    assert.equal(metric(m1, 'switchboard_sfu_rooms'), 1, m1);
    assert.equal(metric(m1, 'switchboard_sfu_participants'), 5, m1);
    await new Promise((r) => setTimeout(r, 2000));
    const m2 = await scrape();
    const out = (t) => metric(t, 'switchboard_sfu_frames_total\\{direction="out"\\}');
    assert.ok(out(m2) > out(m1), `frames out ${out(m1)} -> ${out(m2)}`);

    // Ann shares her screen: the four others get it in a tile of its own,
    // at the resolution she captures it at, and keep seeing her camera.
    const ann = await pages[0].page.evaluate(() => window.switchboard.state.selfId);
    for (const b of pages.slice(1)) await waitPixels(b.page, ann, isMagenta, "Ann's camera");
    await pages[0].page.click('#btn-screen');
    const captured = await pages[0].page.waitForFunction(() => {
      const s = window.switchboard.sfu()?.link.screen?.sender.track?.getSettings();
      return s?.width ? s : null;
    }, null, { timeout: 10_000 }).then((h) => h.jsonValue());
    for (const [i, b] of pages.slice(1).entries()) {
      await waitPixels(b.page, `${ann}:screen`, isGreen, `${names[i + 1]} sees Ann's screen`).catch(async (e) => {
        for (const o of [pages[0], b]) console.log(JSON.stringify(await sfuReport(o.page), null, 1));
        throw e;
      });
      await waitPixels(b.page, ann, isMagenta, `${names[i + 1]} still sees Ann's camera`);
    }
    const width = await pages[1].page.waitForFunction((w) => {
      const v = document.querySelector('#grid .tile.shared-screen video');
      return v?.videoWidth >= w ? v.videoWidth : null;
    }, captured.width, { timeout: 20_000 }).then((h) => h.jsonValue())
      .catch(async () => assert.fail(`Ann's screen is not shown at the ${captured.width} px she captures: ${await pages[1].page.evaluate(() => document.querySelector('#grid .tile.shared-screen video')?.videoWidth)}`));
    assert.ok(width >= captured.width);
    await pages[1].page.screenshot({ path: new URL('../artifacts/sfu-screen.png', import.meta.url).pathname });
    await pages[0].page.click('#btn-screen');
    for (const b of pages.slice(1)) {
      await b.page.waitForFunction(() => !document.querySelector('#grid .tile.shared-screen'), null, { timeout: 20_000 });
    }
    await waitPixels(pages[1].page, ann, isMagenta, "Ann's camera after her share");

    // Three leave: the two left are peer to peer again, with video.
    for (const b of pages.splice(2)) {
      await b.page.click('#btn-leave');
      await b.close();
    }
    for (const b of pages) {
      await waitMode(b.page, 'p2p');
      await b.page.waitForFunction(() => window.switchboard.state.peers.size === 1 && !window.switchboard.sfu(), null, { timeout: 20_000 });
      await waitTilesPlaying(b.page, 1, 45_000);
    }
  } finally {
    for (const b of pages) await b.close();
    await server.stop();
  }
});

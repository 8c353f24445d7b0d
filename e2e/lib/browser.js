// Launches real browsers for the tests: Debian's Chromium through
// playwright-core (via ./chromium, the flag-merging wrapper), each with a new
// empty profile, fake camera/microphone, and screen capture that picks a
// source by itself.
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const CHROMIUM_WRAPPER = join(here, '..', 'chromium');

// Playwright itself adds --headless (headless: true).
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
  '--autoplay-policy=no-user-gesture-required',
  // Screen capture without a picker: take the current tab / the only screen.
  '--auto-accept-this-tab-capture',
  '--auto-select-desktop-capture-source=Entire screen',
  '--auto-select-tab-capture-source-by-title=Switchboard',
  // Keep timers and rendering going in pages that are not in front.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/**
 * A Chromium with its own fresh profile; `close()` also removes the profile.
 * `fakeCamera`: a .y4m file the fake camera plays instead of its built-in
 * pattern (the fake screen keeps its own), see `writeSolidY4m`. `netns`:
 * a network namespace (lib/netns.js) the browser runs in.
 */
export async function launchChromium({ viewport = { width: 1280, height: 760 }, fakeCamera = null, ignoreHTTPSErrors = false, args = [], netns = null } = {}) {
  const profile = await mkdtemp(join(tmpdir(), 'switchboard-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_WRAPPER,
    headless: true,
    args: [
      ...CHROMIUM_ARGS.filter((a) => !args.some((b) => b.split('=')[0] === a.split('=')[0])),
      ...args,
      ...(fakeCamera ? [`--use-file-for-fake-video-capture=${fakeCamera}`] : []),
    ],
    viewport,
    ignoreHTTPSErrors,
    timeout: 60_000,
    ...(netns ? { env: { ...process.env, SWITCHBOARD_E2E_NETNS: netns } } : {}),
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => { if (process.env.E2E_VERBOSE) console.log(`[page ${m.type()}] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`[pageerror] ${e.message}`));
  return {
    context,
    page,
    profile,
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/** Writes a one-second .y4m video of one solid colour (Y, U, V) for the fake camera. */
export async function writeSolidY4m(path, [y, u, v], width = 320, height = 180) {
  const { writeFile } = await import('node:fs/promises');
  const header = Buffer.from(`YUV4MPEG2 W${width} H${height} F30:1 Ip A1:1 C420jpeg\n`);
  const frame = Buffer.concat([
    Buffer.from('FRAME\n'),
    Buffer.alloc(width * height, y),
    Buffer.alloc((width * height) / 4, u),
    Buffer.alloc((width * height) / 4, v),
  ]);
  await writeFile(path, Buffer.concat([header, ...Array(30).fill(frame)]));
}

/**
 * Writes a one-second .y4m video of a random block texture that scrolls
 * 2 px a frame: detail an encoder must spend bits on at every layer, yet
 * motion it can predict, so each simulcast layer runs near its bitrate cap
 * at a smooth frame rate (a solid colour needs almost nothing at any
 * layer; fresh noise every frame makes encoders drop frames).
 */
export async function writeTextureY4m(path, width = 640, height = 360) {
  const { writeFile } = await import('node:fs/promises');
  const { randomBytes } = await import('node:crypto');
  const header = Buffer.from(`YUV4MPEG2 W${width} H${height} F30:1 Ip A1:1 C420jpeg\n`);
  const bw = width / 8;
  const seeds = randomBytes(bw * (height / 8));
  const frames = [];
  for (let f = 0; f < 30; f++) {
    const y = Buffer.alloc(width * height);
    for (let row = 0; row < height; row++) {
      for (let col = 0; col < width; col++) {
        const x = (col + 2 * f) % width;
        y[row * width + col] = 64 + (seeds[(row >> 3) * bw + (x >> 3)] >> 1);
      }
    }
    frames.push(Buffer.from('FRAME\n'), y, Buffer.alloc((width * height) / 2, 128));
  }
  await writeFile(path, Buffer.concat([header, ...frames]));
}

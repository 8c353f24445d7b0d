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

/** A Chromium with its own fresh profile; `close()` also removes the profile. */
export async function launchChromium({ viewport = { width: 1280, height: 760 } } = {}) {
  const profile = await mkdtemp(join(tmpdir(), 'switchboard-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_WRAPPER,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    timeout: 60_000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => { if (process.env.E2E_VERBOSE) console.log(`[page ${m.type()}] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`[pageerror] ${e.message}`));
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true }).catch(() => {});
    },
  };
}

// Launches Debian's firefox-esr through puppeteer-core (WebDriver BiDi) with
// a fresh profile, fake media devices, no permission prompts, and host
// candidates that are real loopback addresses (no mDNS obfuscation).
import puppeteer from 'puppeteer-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const FIREFOX = process.env.FIREFOX_BIN ?? '/usr/bin/firefox-esr';

/**
 * `acceptInsecureCerts`: trust any certificate (WebDriver's capability), for
 * pages served with a self-signed one.
 */
export async function launchFirefox({ viewport = { width: 1280, height: 760 }, acceptInsecureCerts = false } = {}) {
  const profile = await mkdtemp(join(tmpdir(), 'switchboard-e2e-ff-'));
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    userDataDir: profile,
    defaultViewport: viewport,
    protocolTimeout: 60_000,
    acceptInsecureCerts,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.peerconnection.ice.loopback': true,
      'media.peerconnection.ice.obfuscate_host_addresses': false,
      'media.autoplay.default': 0,
      'media.autoplay.blocking_policy': 0,
      'network.dns.disableIPv6': false,
    },
  });
  const page = (await browser.pages())[0] ?? (await browser.newPage());
  page.on('pageerror', (e) => console.log(`[firefox pageerror] ${e.message}`));
  if (process.env.E2E_VERBOSE) page.on('console', (m) => console.log(`[firefox ${m.type()}] ${m.text()}`));
  return {
    browser,
    page,
    async close() {
      await browser.close().catch(() => {});
      await rm(profile, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/**
 * Polls `fn(arg)` in the page until it returns something truthy. Not
 * puppeteer's waitForFunction: in Firefox (BiDi) that evaluates its
 * polling code in a way the app's Content-Security-Policy (no
 * 'unsafe-eval') blocks in current firefox-esr; page.evaluate is allowed.
 */
export async function waitUntil(page, fn, arg, { timeout = 30_000, polling = 250 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await page.evaluate(fn, arg);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${fn.toString().slice(0, 120)}`);
    await new Promise((r) => setTimeout(r, polling));
  }
}

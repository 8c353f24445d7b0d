// Helpers that drive the room page like a person would, and read its state
// the way the tests check it: getStats() on the real RTCPeerConnections.
import assert from 'node:assert/strict';

export const BASE = process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:8080';

/** A fresh, unguessable-enough room id for one test. */
export function roomId(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Opens the room page (of the server at `base`) and joins as `name`. */
export async function joinRoom(page, room, name, query = '', base = BASE) {
  await page.goto(`${base}/r/${room}${query}`);
  await page.fill('#name', name);
  await page.click('#join');
  await page.waitForSelector('#call:not([hidden])', { timeout: 20_000 });
}

/** Waits until this page has `count` peers, all with connectionState 'connected'. */
export async function waitConnected(page, count, timeout = 45_000) {
  await page.waitForFunction((n) => {
    const peers = [...window.switchboard.state.peers.values()];
    return peers.length === n && peers.every((p) => p.link.pc.connectionState === 'connected');
  }, count, { timeout, polling: 250 });
}

/** getStats() summary per peer: pair types, candidates, inbound video. */
export async function peerStats(page) {
  return page.evaluate(async () => {
    const out = {};
    for (const [id, p] of window.switchboard.state.peers) {
      const report = await p.link.pc.getStats();
      let pair = null;
      report.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId); });
      const local = pair && report.get(pair.localCandidateId);
      const remote = pair && report.get(pair.remoteCandidateId);
      let framesDecoded = 0, frameWidth = 0, frameHeight = 0, audioSamples = 0;
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio') audioSamples += s.totalSamplesReceived ?? 0;
        if (s.type === 'inbound-rtp' && s.kind === 'video') {
          framesDecoded += s.framesDecoded ?? 0;
          frameWidth = s.frameWidth ?? frameWidth;
          frameHeight = s.frameHeight ?? frameHeight;
        }
      });
      out[id] = {
        name: p.link.name,
        state: p.link.pc.connectionState,
        localType: local?.candidateType ?? null,
        remoteType: remote?.candidateType ?? null,
        localAddress: local?.address ?? null,
        localUrl: local?.url ?? null,
        relayProtocol: local?.relayProtocol ?? null,
        protocol: local?.protocol ?? null,
        framesDecoded,
        frameWidth,
        frameHeight,
        audioSamples,
      };
    }
    return out;
  });
}

/** Waits until every peer's inbound video has decoded more than `min` frames. */
export async function waitFramesDecoded(page, min = 0, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const stats = await peerStats(page);
    const values = Object.values(stats);
    if (values.length && values.every((s) => s.framesDecoded > min)) return stats;
    if (Date.now() > deadline) assert.fail(`frames not decoded: ${JSON.stringify(stats)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Sends a chat message from `page`. */
export async function sendChat(page, text) {
  await page.click('.tab[data-tab="chat"]');
  await page.fill('#chat-input', text);
  await page.press('#chat-input', 'Enter');
}

/** Waits for a chat message with `text` from someone else. */
export async function waitChat(page, text, timeout = 15_000) {
  await page.waitForFunction((t) => [...document.querySelectorAll('#chat-log li:not(.mine) .text')].some((e) => e.textContent === t),
    text, { timeout });
}

/**
 * An init script (for addInitScript / evaluateOnNewDocument) that keeps
 * only TURN-over-TCP URLs in every RTCPeerConnection of the page.
 */
export function tcpTurnOnly() {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (config = {}) {
    const iceServers = (config.iceServers ?? [])
      .map((s) => ({ ...s, urls: [].concat(s.urls).filter((u) => u.startsWith('turn:') && u.includes('transport=tcp')) }))
      .filter((s) => s.urls.length);
    return new Native({ ...config, iceServers });
  };
  window.RTCPeerConnection.prototype = Native.prototype;
}

/** The page's own peer id, once joined. */
export const selfId = (page) => page.evaluate(() => window.switchboard.state.selfId);

/** Polls `fn` (in Node) every 100 ms until it returns something truthy, which it returns; throws after `ms`. */
export async function waitFor(what, fn, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// The browser tests over TLS: what certificate a port serves, the hash
// Chromium's --ignore-certificate-errors-spki-list takes to trust it, and
// restricting a Chromium page to the turns: server on one port.
import tls from 'node:tls';
import { createHash } from 'node:crypto';

/** SHA-256 fingerprint and SPKI hash of the certificate `port` serves now. */
export function served(port) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const cert = s.getPeerX509Certificate();
      resolve({ fp: cert.fingerprint256, spki: spkiHash(cert) });
      s.end();
    });
    s.once('error', reject);
  });
}

/** What --ignore-certificate-errors-spki-list takes for `cert`. */
export function spkiHash(cert) {
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

/** Keeps only the turns: URLs on `port` in every RTCPeerConnection of the (playwright) page. */
export async function turnsOnly(page, port) {
  await page.addInitScript((p) => {
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = function (config = {}) {
      const iceServers = (config.iceServers ?? [])
        .map((s) => ({ ...s, urls: [].concat(s.urls).filter((u) => u.startsWith(`turns:127.0.0.1:${p}?`)) }))
        .filter((s) => s.urls.length);
      if (!iceServers.length) throw new Error(`no turns: server on port ${p} among ${JSON.stringify(config.iceServers)}`);
      return new Native({ ...config, iceServers });
    };
    window.RTCPeerConnection.prototype = Native.prototype;
  }, port);
}

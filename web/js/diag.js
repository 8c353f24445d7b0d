// Diagnostics: like the public trickle-ice sample, but against this
// Switchboard's own ICE servers. Each URL is tried alone (STUN, TURN/UDP,
// TURN/TCP) so a verdict per server shows whether it works; every candidate
// is listed with its type and the time it took.

import { el } from './ui.js';

const $ = (id) => document.getElementById(id);
const GATHER_TIMEOUT_MS = 10000;

let servers = [];

/** One entry per URL, each with its credentials. */
function perUrl(iceServers) {
  return iceServers.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]).map((url) => ({
    url, username: s.username, credential: s.credential,
  })));
}

function expectedType(url) {
  return url.startsWith('turn') ? 'relay' : 'srflx';
}

/** Gathers with one server; resolves with the candidates and errors seen. */
function gather(server, onCandidate, onError) {
  return new Promise((resolve) => {
    const started = performance.now();
    const pc = new RTCPeerConnection({
      iceServers: [{ urls: server.url, username: server.username, credential: server.credential }],
      iceTransportPolicy: 'all',
      iceCandidatePoolSize: 0,
    });
    const found = [];
    const errors = [];
    let finished = false;
    let timedOut = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      pc.close();
      resolve({ found, errors, timedOut, ms: Math.round(performance.now() - started) });
    };
    const timer = setTimeout(() => { timedOut = true; finish(); }, GATHER_TIMEOUT_MS);
    pc.onicecandidate = ({ candidate }) => {
      if (!candidate) return finish();
      if (!candidate.candidate) return;
      const c = {
        ms: Math.round(performance.now() - started),
        type: candidate.type,
        protocol: candidate.protocol,
        address: candidate.address,
        port: candidate.port,
        priority: candidate.priority,
        relayProtocol: candidate.relayProtocol ?? '',
        server: server.url,
      };
      found.push(c);
      onCandidate(c);
    };
    pc.onicecandidateerror = (e) => {
      const err = { server: server.url, code: e.errorCode, text: e.errorText, url: e.url };
      errors.push(err);
      onError(err);
    };
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') finish(); };
    pc.createDataChannel('diag');
    pc.createOffer().then((o) => pc.setLocalDescription(o)).catch((err) => {
      onError({ server: server.url, code: 0, text: String(err) });
      finish();
    });
  });
}

async function run() {
  $('gather').disabled = true;
  $('candidates').replaceChildren();
  $('errors').replaceChildren();
  $('verdicts').replaceChildren();
  document.body.dataset.done = 'false';
  let errors = 0;
  const results = await Promise.all(servers.map(async (server) => {
    const { found, errors: errs, timedOut, ms } = await gather(server, (c) => {
      $('candidates').append(el('tr', { dataset: { type: c.type, server: c.server } },
        el('td', {}, `${c.ms} ms`), el('td', {}, el('code', {}, c.server)), el('td', {}, c.type), el('td', {}, c.protocol),
        el('td', {}, el('code', {}, c.address ?? '')), el('td', {}, String(c.port ?? '')), el('td', {}, String(c.priority ?? '')),
        el('td', {}, c.relayProtocol)));
    }, (e) => {
      errors++;
      $('errors').append(el('li', {}, el('code', {}, e.server), ` — ${e.code ? `${e.code} ` : ''}${e.text ?? ''}`));
    });
    const want = expectedType(server.url);
    const hit = found.find((c) => c.type === want);
    let detail;
    let ok = !!hit;
    if (hit) {
      detail = `${want} candidate ${hit.address}:${hit.port} in ${hit.ms} ms`;
    } else if (want === 'srflx' && !timedOut && errs.length === 0 && found.length > 0) {
      // The browser drops a server-reflexive candidate equal to a host one:
      // STUN answered, and there is no NAT between this browser and the server.
      ok = true;
      detail = `answered in ${ms} ms; no NAT between you and the server (reflexive address = host address)`;
    } else {
      const e = errs[0];
      detail = e ? `error ${e.code}: ${e.text}` : `no ${want} candidate within ${(ms / 1000).toFixed(1)} s`;
    }
    return { server, ok, detail };
  }));
  for (const r of results) {
    $('verdicts').append(el('div', { class: 'verdict', dataset: { ok: String(r.ok), url: r.server.url } },
      el('strong', {}, r.ok ? 'Works' : 'Failed'), el('div', {}, el('code', {}, r.server.url)),
      el('div', { class: 'muted small' }, r.detail)));
  }
  if (!errors) $('errors').append(el('li', {}, 'None.'));
  const ok = results.filter((r) => r.ok).length;
  $('summary').textContent = `${ok} of ${results.length} servers answered.`;
  document.body.dataset.done = 'true';
  $('gather').disabled = false;
}

// Servers with --join-secret want an invite token: `/diag#t=TOKEN` (the
// fragment never reaches the server; the token goes in a header).
const token = new URLSearchParams(location.hash.slice(1)).get('t');

async function load() {
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const res = await fetch('/api/ice', { cache: 'no-store', headers });
    if (res.status === 401) {
      const why = await res.json().catch(() => ({}));
      const text = {
        missing: 'This server hands out ICE servers only with an invite token. Open this page as /diag#t=TOKEN, with the token of an invite link (the part after #t=).',
        expired: 'The invite token in this address has expired. Use the token of a fresh invite link (/diag#t=TOKEN).',
      }[why.reason] ?? 'The invite token in this address is not valid here. Use the token of an invite link from this server (/diag#t=TOKEN).';
      $('servers').classList.add('diag-notice');
      $('servers').replaceChildren(el('b', {}, 'An invite token is needed'), el('p', { class: 'muted' }, text));
      $('summary').textContent = '';
      return;
    }
    const body = await res.json();
    servers = perUrl(body.iceServers ?? []);
    $('servers').replaceChildren(el('b', {}, 'ICE servers handed out by this Switchboard'),
      el('ul', {}, servers.map((s) => el('li', {}, el('code', {}, s.url), s.username ? el('span', { class: 'muted' }, ` — user ${s.username}, password hidden`) : null))));
    $('gather').disabled = servers.length === 0;
  } catch (err) {
    $('servers').textContent = `Could not load ICE servers: ${err}`;
  }
}

$('gather').onclick = run;
await load();
if (new URLSearchParams(location.search).get('auto') === '1') run();

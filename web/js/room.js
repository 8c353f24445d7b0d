// The room page: lobby (name, preview), then the call — a full mesh of
// PeerLinks, one tile per peer with a connection panel, chat and file
// transfer over data channels, mic/camera/screen controls and device choice.
// From the third person on the server may move the room's media to its SFU
// (sfu_room.js); the mesh then carries chat and files only.

import { Signaling, JoinRefused } from './signaling.js';
import { PeerLink } from './peer.js';
import { SfuRoom } from './sfu_room.js';
import { cleanupReceived } from './files.js';
import { readStats, formatRate, Sparkline } from './stats.js';
import { el, icons, iconButton, formatBytes, initials, hue } from './ui.js';

const $ = (id) => document.getElementById(id);
const roomId = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() ?? '');
const params = new URLSearchParams(location.search);
const relayOnly = params.get('relay') === '1';

// Invite token (servers with --join-secret): in the URL fragment (`#t=…`),
// which browsers never send to the server; kept per room in sessionStorage
// so a reload or reconnect still has it. Never put in a URL we request.
const tokenKey = `switchboard.token.${roomId}`;
const fragmentToken = new URLSearchParams(location.hash.slice(1)).get('t');
if (fragmentToken) {
  try { sessionStorage.setItem(tokenKey, fragmentToken); } catch { /* storage disabled */ }
}
const inviteToken = fragmentToken || (() => { try { return sessionStorage.getItem(tokenKey); } catch { return null; } })();
const claims = decodeClaims(inviteToken);

/** The claims of a JWT, unverified (the server checks it): for the name field only. */
function decodeClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, '=')));
  } catch {
    return null;
  }
}

// This page's signaling session: the server shows the others a tag derived
// from it, the same after a reconnect, so calls outlive the WebSocket.
const session = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');

const local = {
  stream: new MediaStream(),
  mic: null,
  camera: null,
  screen: null,
  micOn: true,
  camOn: true,
};
const state = {
  selfId: null,
  name: '',
  iceServers: [],
  signaling: null,
  peers: new Map(), // id -> {link, tile, stats, graph, info}
  // SFU mode: the link to the server's SFU (null in P2P mode), and whether
  // our mesh links send media (not once the SFU link is up).
  sfu: null,
  p2pMedia: true,
};

// Exposed for the browser tests and for curious operators in the console.
window.switchboard = {
  state,
  local,
  relayOnly,
  session,
  peer: (id) => state.peers.get(id)?.link ?? null,
  sfu: () => state.sfu,
  stats: (id) => state.peers.get(id)?.stats ?? null,
};

$('room-name').textContent = roomId;
$('relay-badge').hidden = !relayOnly;
$('copy-link').onclick = async () => {
  // A plain room invite is meant to be passed on; one naming a person
  // (name or admin claim) is not: then the link without the token.
  const shareable = inviteToken && !claims?.name && !claims?.admin;
  const url = `${location.origin}/r/${encodeURIComponent(roomId)}${shareable ? `#t=${inviteToken}` : ''}`;
  try { await navigator.clipboard.writeText(url); toast('Invite link copied'); } catch { toast(url); }
};

function toast(text) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 3000);
}

function setStatus(status, text) {
  const s = $('net-status');
  s.dataset.status = status;
  s.textContent = text;
}

// ---- Local media -------------------------------------------------------

async function getMedia(kind, deviceId) {
  const constraints = kind === 'audio'
    ? { audio: deviceId ? { deviceId: { exact: deviceId } } : { echoCancellation: true, noiseSuppression: true } }
    : { video: { ...(deviceId ? { deviceId: { exact: deviceId } } : {}), width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } } };
  const s = await navigator.mediaDevices.getUserMedia(constraints);
  return s.getTracks()[0] ?? null;
}

function setLocalTrack(kind, track) {
  for (const t of local.stream.getTracks()) if (t.kind === kind) local.stream.removeTrack(t);
  if (track) local.stream.addTrack(track);
}

/** The track we publish for `kind` right now. */
function outgoing(kind) {
  if (kind === 'audio') return local.micOn ? local.mic : null;
  return local.screen ?? (local.camOn ? local.camera : null);
}

/**
 * What the SFU link sends for `kind`: the camera stays on `video` while the
 * screen goes on a track of its own (`screen`).
 */
function outgoingSfu(kind) {
  if (kind === 'screen') return local.screen;
  if (kind === 'video') return local.camOn ? local.camera : null;
  return outgoing(kind);
}

/** What a mesh link sends for `kind`: nothing once the SFU carries our media. */
function outgoingP2p(kind) {
  return state.p2pMedia ? outgoing(kind) : null;
}

async function startPreview() {
  const note = $('preview-note');
  if (!navigator.mediaDevices?.getUserMedia) {
    note.textContent = 'Camera and microphone need HTTPS (or localhost).';
    return;
  }
  const [mic, cam] = await Promise.allSettled([getMedia('audio'), getMedia('video')]);
  local.mic = mic.status === 'fulfilled' ? mic.value : null;
  local.camera = cam.status === 'fulfilled' ? cam.value : null;
  local.micOn = !!local.mic;
  local.camOn = !!local.camera;
  setLocalTrack('audio', local.mic);
  setLocalTrack('video', local.camera);
  $('preview').srcObject = local.stream;
  note.textContent = local.camera ? '' : (local.mic ? 'No camera — joining with audio only' : 'No camera or microphone — you can still chat and share files');
  note.hidden = !!local.camera;
}

async function pushTrack(kind) {
  const track = outgoing(kind);
  await Promise.all([...state.peers.values()].map((p) => p.link.replaceTrack(kind, outgoingP2p(kind)).catch(() => {})));
  await state.sfu?.replaceTrack(kind, outgoingSfu(kind)).catch(() => {});
  if (kind === 'video') await state.sfu?.shareScreen(local.screen).catch(() => {});
  updateSelfTile();
  broadcastState();
}

async function toggleMic() {
  if (!local.mic) {
    try { local.mic = await getMedia('audio'); setLocalTrack('audio', local.mic); } catch { toast('No microphone available'); return; }
    local.micOn = true;
  } else {
    local.micOn = !local.micOn;
    local.mic.enabled = local.micOn;
  }
  await pushTrack('audio');
  renderControls();
}

async function toggleCamera() {
  if (local.camOn) {
    local.camOn = false;
    local.camera?.stop();
    local.camera = null;
  } else {
    try {
      local.camera = await getMedia('video', $('cam-select').value || undefined);
      local.camOn = true;
    } catch {
      toast('No camera available');
      return;
    }
  }
  if (!local.screen) setLocalTrack('video', local.camera);
  await pushTrack('video');
  renderControls();
}

async function toggleScreen() {
  if (local.screen) return stopScreen();
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
  } catch (err) {
    if (err?.name !== 'NotAllowedError') toast(`Screen sharing failed: ${err?.message ?? err}`);
    return;
  }
  const track = stream.getVideoTracks()[0];
  if (!track) return;
  track.contentHint = 'detail';
  track.addEventListener('ended', () => { if (local.screen === track) stopScreen(); });
  local.screen = track;
  setLocalTrack('video', track);
  await pushTrack('video');
  renderControls();
}

async function stopScreen() {
  const t = local.screen;
  local.screen = null;
  t?.stop();
  setLocalTrack('video', local.camOn ? local.camera : null);
  await pushTrack('video');
  renderControls();
}

async function fillDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, current) => {
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) =>
      el('option', { value: d.deviceId, selected: d.deviceId === current }, d.label || `${kind === 'audioinput' ? 'Microphone' : 'Camera'} ${i + 1}`)));
  };
  fill($('mic-select'), 'audioinput', local.mic?.getSettings().deviceId);
  fill($('cam-select'), 'videoinput', local.camera?.getSettings().deviceId);
}

async function switchDevice(kind, deviceId) {
  try {
    const track = await getMedia(kind, deviceId);
    if (kind === 'audio') {
      local.mic?.stop();
      local.mic = track;
      track.enabled = local.micOn;
      setLocalTrack('audio', track);
    } else {
      local.camera?.stop();
      local.camera = track;
      local.camOn = true;
      if (!local.screen) setLocalTrack('video', track);
    }
    await pushTrack(kind);
    renderControls();
  } catch (err) {
    toast(`Could not switch device: ${err?.message ?? err}`);
  }
}
$('mic-select').onchange = (e) => switchDevice('audio', e.target.value);
$('cam-select').onchange = (e) => switchDevice('video', e.target.value);

// ---- Controls ----------------------------------------------------------

let showStats = params.get('stats') === '1';

function renderControls() {
  const c = $('controls');
  const mic = iconButton('btn-mic', local.micOn ? 'mic' : 'micOff', local.micOn ? 'Mute microphone' : 'Unmute microphone', toggleMic);
  mic.classList.toggle('off', !local.micOn);
  const cam = iconButton('btn-cam', local.camOn ? 'cam' : 'camOff', local.camOn ? 'Turn camera off' : 'Turn camera on', toggleCamera);
  cam.classList.toggle('off', !local.camOn);
  const screen = iconButton('btn-screen', local.screen ? 'screenOff' : 'screen', local.screen ? 'Stop sharing' : 'Share screen', toggleScreen);
  screen.classList.toggle('active', !!local.screen);
  const settings = iconButton('btn-devices', 'settings', 'Devices', async () => { await fillDevices(); $('devices').showModal(); });
  const stats = iconButton('btn-stats', 'stats', showStats ? 'Hide connection info' : 'Show connection info', () => {
    showStats = !showStats;
    document.body.classList.toggle('show-stats', showStats);
    renderControls();
  });
  stats.classList.toggle('active', showStats);
  const leave = iconButton('btn-leave', 'leave', 'Leave call', leaveCall);
  leave.classList.add('danger');
  c.replaceChildren(el('div', { class: 'ctl-group' }, mic, cam, screen, settings, stats), leave);
  document.body.classList.toggle('show-stats', showStats);
}

// ---- Tiles -------------------------------------------------------------

function makeTile(id, name, isSelf) {
  const video = el('video', { autoplay: true, playsinline: true, muted: isSelf });
  video.muted = isSelf;
  const avatar = el('div', { class: 'avatar' }, initials(name));
  avatar.style.setProperty('--hue', hue(name));
  const graph = el('canvas', { class: 'graph', width: 160, height: 40 });
  const info = el('div', { class: 'conn-info' });
  const tile = el('div', { class: 'tile', dataset: { peer: id, state: isSelf ? 'self' : 'new' } },
    avatar, video,
    el('div', { class: 'label' }, el('span', { class: 'name' }, isSelf ? `${name} (you)` : name), el('span', { class: 'badges' })),
    isSelf ? null : el('div', { class: 'conn-chip' }, 'Connecting…'),
    isSelf ? null : el('div', { class: 'conn-panel' }, info, graph));
  $('grid').append(tile);
  layoutGrid();
  return { tile, video, graph, info };
}

function layoutGrid() {
  const n = $('grid').children.length;
  $('grid').dataset.count = String(Math.min(n, 9));
  $('people-count').textContent = String(state.peers.size + 1);
  renderPeople();
}

function renderPeople() {
  const rows = [el('li', {}, el('span', { class: 'dot ok' }), `${state.name} (you)`)];
  for (const [id, p] of state.peers) {
    rows.push(el('li', { dataset: { peer: id } }, el('span', { class: `dot ${p.link.pc.connectionState === 'connected' ? 'ok' : 'wait'}` }), p.link.name,
      el('span', { class: 'muted' }, ` · ${p.stats?.pair ?? p.link.pc.connectionState}`)));
  }
  $('people').replaceChildren(...rows);
}

let selfTile = null;
function updateSelfTile() {
  if (!selfTile) return;
  selfTile.video.srcObject = local.stream;
  const hasVideo = !!(local.screen || (local.camOn && local.camera));
  selfTile.tile.classList.toggle('no-video', !hasVideo);
  selfTile.tile.classList.toggle('screen', !!local.screen);
  selfTile.tile.querySelector('.badges').replaceChildren(
    ...(!local.micOn ? [el('span', { class: 'badge', html: icons.micOff, title: 'Muted' })] : []),
    ...(local.screen ? [el('span', { class: 'badge text' }, 'Presenting')] : []));
}

function applyRemoteState(p, s) {
  p.remote = s;
  const badges = p.view.tile.querySelector('.badges');
  badges.replaceChildren(
    ...(s.muted ? [el('span', { class: 'badge', html: icons.micOff, title: 'Muted' })] : []),
    ...(s.screen ? [el('span', { class: 'badge text' }, 'Presenting')] : []));
  p.view.tile.classList.toggle('screen', !!s.screen);
  p.view.tile.classList.toggle('no-video', !s.video);
}

function broadcastState(to) {
  const data = { kind: 'state', muted: !local.micOn, video: !!outgoing('video'), screen: !!local.screen };
  for (const id of to ? [to] : state.peers.keys()) {
    if (!state.peers.get(id)?.orphan) state.signaling?.relay('message', id, data);
  }
}

// ---- Peers -------------------------------------------------------------

function addPeer(peer, initiator) {
  if (state.peers.has(peer.id)) return;
  const link = new PeerLink({
    selfId: state.selfId,
    peer,
    initiator,
    iceServers: state.iceServers,
    relayOnly,
    // By the link's current id: a signaling reconnect re-keys it (rekey()).
    send: (type, data) => { if (!p.orphan) state.signaling.relay(type, link.id, data); },
    localTrack: outgoingP2p,
    localStream: local.stream,
  });
  const view = makeTile(peer.id, peer.name, false);
  view.video.srcObject = link.remoteStream;
  const p = { link, view, stats: null, sparkline: new Sparkline(view.graph), remote: {}, tag: peer.tag ?? null, orphan: false };
  if (peer.admin) view.tile.classList.add('admin');
  state.peers.set(peer.id, p);
  link.addEventListener('track', () => {
    if (state.sfu?.has(link.id)) return;
    view.video.srcObject = link.remoteStream;
    view.video.play().catch(() => {});
  });
  link.addEventListener('state', ({ detail }) => {
    view.tile.dataset.state = detail;
    // Without signaling a failed link cannot restart ICE: let it go.
    if (p.orphan && (detail === 'failed' || detail === 'closed')) { removePeer(link.id); return; }
    if (detail === 'connected') view.tile.querySelector('.conn-chip').textContent = 'Connected';
    if (detail === 'failed') view.tile.querySelector('.conn-chip').textContent = 'Reconnecting…';
    renderPeople();
  });
  link.addEventListener('restart', ({ detail }) => { view.tile.dataset.restarts = String(detail); });
  link.addEventListener('chat', ({ detail }) => addChat(peer.name, detail.text, false));
  link.addEventListener('transfer', ({ detail }) => renderTransfer(peer, detail));
  layoutGrid();
  broadcastState(peer.id);
  state.sfu?.show(peer.id);
  addChat(null, `${peer.name} joined`, false, true);
}

/** Gives the link of entry `key` the peer id `id` (after a signaling reconnect). */
function rekey(key, id, info) {
  const p = state.peers.get(key);
  if (!p) return;
  state.peers.delete(key);
  p.link.id = id;
  p.orphan = false;
  if (info?.name) p.link.name = info.name;
  if (info?.tag) p.tag = info.tag;
  p.view.tile.dataset.peer = id;
  state.peers.set(id, p);
}

/** The entry whose peer has session tag `tag`. */
function findByTag(tag) {
  if (!tag) return null;
  for (const [key, p] of state.peers) if (p.tag === tag) return key;
  return null;
}

/**
 * A peer's signaling went away but not (yet) its call: keep the link, out
 * of the id space, until it rejoins with the same tag or its media fails.
 */
function orphan(key) {
  const p = state.peers.get(key);
  const live = p && ['connected', 'disconnected'].includes(p.link.pc.connectionState);
  if (!p || !p.tag || !live) { removePeer(key); return; }
  rekey(key, `~${p.tag}`);
  p.orphan = true;
}

function removePeer(id, announce = true) {
  const p = state.peers.get(id);
  if (!p) return;
  p.link.close();
  p.view.tile.remove();
  state.peers.delete(id);
  state.sfu?.forget(id);
  removeScreens(id);
  layoutGrid();
  if (announce) addChat(null, `${p.link.name} left`, false, true);
}

async function pollStats() {
  for (const [, p] of state.peers) {
    try {
      const s = await readStats(p.link.pc, p.stats);
      p.stats = s;
      p.sparkline.push(s.inKbps, s.outKbps);
      const chip = p.view.tile.querySelector('.conn-chip');
      if (state.sfu?.has(p.link.id)) {
        // The picture comes through the server's SFU; the mesh link only
        // carries chat and files now.
        chip.textContent = 'Through the server (SFU)';
        chip.dataset.kind = 'sfu';
      } else if (s.pair) {
        const relayed = s.local?.type === 'relay' || s.remote?.type === 'relay';
        chip.textContent = `${relayed ? 'Relayed' : 'Direct'} · ${s.local?.relayProtocol ?? s.local?.protocol ?? ''}${s.rttMs != null ? ` · ${s.rttMs} ms` : ''}`;
        chip.dataset.kind = relayed ? 'relay' : 'direct';
      }
      p.view.tile.dataset.pair = s.pair ?? '';
      p.view.info.replaceChildren(
        el('div', {}, el('b', {}, 'Path '), s.pair ? `${s.local.type} → ${s.remote.type}` : '—'),
        el('div', {}, el('b', {}, 'Protocol '), s.local ? `${s.local.protocol}${s.local.relayProtocol ? ` (TURN over ${s.local.relayProtocol})` : ''}` : '—'),
        el('div', {}, el('b', {}, 'RTT '), s.rttMs != null ? `${s.rttMs} ms` : '—'),
        el('div', {}, el('span', { class: 'in' }, `↓ ${formatRate(s.inKbps)}`), '  ', el('span', { class: 'out' }, `↑ ${formatRate(s.outKbps)}`)),
        s.frameWidth ? el('div', { class: 'muted' }, `${s.frameWidth}×${s.frameHeight} · ${s.framesDecoded} frames`) : null);
    } catch { /* closed meanwhile */ }
  }
  if (!$('panel-people').hidden) renderPeople();
  state.sfu?.sendViews(state.peers.keys());
}

// ---- SFU mode ----------------------------------------------------------

/** The server moved the room's media to its SFU (`sfu`) or back (`p2p`). */
function setMode(mode) {
  leaveSfu();
  document.body.dataset.mode = mode;
  if (mode !== 'sfu') return;
  const sfu = new SfuRoom({
    iceServers: state.iceServers,
    relayOnly,
    send: (msg) => state.signaling?.send(msg),
    localTrack: outgoingSfu,
    localStream: local.stream,
    videoOf: (peer) => state.peers.get(peer)?.view.video ?? null,
  });
  state.sfu = sfu;
  if (local.screen) sfu.shareScreen(local.screen).catch(() => {});
  sfu.addEventListener('screen', ({ detail }) => { if (state.sfu === sfu) showScreen(detail.peer, detail.stream); });
  sfu.addEventListener('speaker', ({ detail }) => { if (state.sfu === sfu) setSpeaker(detail); });
  // Our mesh links go quiet once the SFU carries what we publish.
  sfu.addEventListener('connected', () => {
    if (state.sfu !== sfu) return;
    state.p2pMedia = false;
    for (const p of state.peers.values()) for (const kind of ['audio', 'video']) p.link.replaceTrack(kind, null).catch(() => {});
  });
}

/** Shows `peer`'s shared screen (from the SFU) in a tile of its own, or removes it (`stream` null). */
function showScreen(peer, stream) {
  const id = `${peer}:screen`;
  let tile = document.querySelector(`#grid .tile[data-peer="${CSS.escape(id)}"]`);
  if (!stream) {
    tile?.remove();
    layoutGrid();
    return;
  }
  if (!tile) {
    const name = state.peers.get(peer)?.link.name ?? 'Someone';
    tile = makeTile(id, `${name} · screen`, false).tile;
    tile.classList.add('screen', 'shared-screen');
    tile.dataset.state = 'connected';
    tile.querySelector('.conn-chip')?.remove();
  }
  const video = tile.querySelector('video');
  if (video.srcObject !== stream) {
    video.srcObject = stream;
    video.play().catch(() => {});
  }
}

/** Removes every screen tile (the room left SFU mode, or its presenter left). */
function removeScreens(peer = null) {
  for (const t of document.querySelectorAll('#grid .tile.shared-screen')) {
    if (!peer || t.dataset.peer === `${peer}:screen`) t.remove();
  }
  layoutGrid();
}

/** Highlights the tile of the one who speaks (`id`, a peer id or ours; '' for nobody). */
function setSpeaker(id) {
  const peer = id && id === state.selfId ? 'self' : id;
  for (const tile of document.querySelectorAll('#grid .tile')) tile.classList.toggle('speaking', !!peer && tile.dataset.peer === peer);
}

/** Back to the mesh: our links send again and tiles show their P2P streams. */
function leaveSfu() {
  if (!state.sfu) return;
  state.sfu.close();
  state.sfu = null;
  setSpeaker('');
  removeScreens();
  delete document.body.dataset.sfuState;
  state.p2pMedia = true;
  for (const p of state.peers.values()) {
    for (const kind of ['audio', 'video']) p.link.replaceTrack(kind, outgoing(kind)).catch(() => {});
    p.view.video.srcObject = p.link.remoteStream;
    p.view.video.play().catch(() => {});
  }
}

// ---- Chat --------------------------------------------------------------

function addChat(who, text, mine, system = false) {
  const time = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const li = system
    ? el('li', { class: 'system' }, text)
    : el('li', { class: mine ? 'mine' : '' }, el('div', { class: 'meta' }, el('b', {}, mine ? 'You' : who), ' ', el('span', { class: 'muted' }, time)), el('div', { class: 'text' }, text));
  $('chat-log').append(li);
  li.scrollIntoView({ block: 'end' });
  if (!system && !mine && $('panel-chat').hidden) {
    const c = $('chat-unread');
    c.hidden = false;
    c.textContent = String(Number(c.textContent || 0) + 1);
  }
}

$('chat-form').onsubmit = (e) => {
  e.preventDefault();
  const input = $('chat-input');
  const text = input.value.trim();
  if (!text) return;
  let sent = 0;
  for (const p of state.peers.values()) if (p.link.sendChat(text)) sent++;
  addChat(state.name, text, true);
  if (state.peers.size && !sent) toast('Not connected to anyone yet');
  input.value = '';
};

// ---- Files -------------------------------------------------------------

const transferRows = new Map();

function renderTransfer(peer, t) {
  const key = `${peer.id}/${t.dir}/${t.id}`;
  let row = transferRows.get(key);
  if (!row) {
    const bar = el('progress', { max: 100, value: 0 });
    const status = el('span', { class: 'status' });
    const action = el('span', { class: 'action' });
    const li = el('li', { class: 'transfer', dataset: { dir: t.dir, peer: peer.id } },
      el('div', { class: 'ticon', html: icons.file }),
      el('div', { class: 'tbody' },
        el('div', { class: 'tname' }, t.name),
        el('div', { class: 'muted small' }, `${t.dir === 'in' ? 'from' : 'to'} ${peer.name} · ${formatBytes(t.size)}`),
        bar, el('div', { class: 'tfoot' }, status, action)));
    $('transfers').prepend(li);
    row = { li, bar, status, action };
    transferRows.set(key, row);
    if (t.dir === 'in' && $('panel-files').hidden) toast(`${peer.name} is sending ${t.name}`);
  }
  const pct = t.size ? Math.floor((t.done / t.size) * 100) : 100;
  row.bar.value = pct;
  row.li.dataset.state = t.state;
  if (t.sha256) row.li.dataset.sha256 = t.sha256;
  const secs = (performance.now() - t.started) / 1000;
  const speed = secs > 0 ? formatBytes(Math.round(t.done / secs)) + '/s' : '';
  const labels = {
    waiting: 'Waiting…',
    sending: `${pct}% · ${speed}`,
    receiving: `${pct}% · ${speed}`,
    sent: 'Sent, awaiting verification…',
    delivered: 'Delivered ✓ SHA-256 verified',
    verified: 'Received ✓ SHA-256 verified',
    corrupted: 'Checksum mismatch ✗',
    failed: `Failed: ${t.error ?? ''}`,
  };
  row.status.textContent = labels[t.state] ?? t.state;
  if (t.state === 'verified' && t.url && !row.action.firstChild) {
    row.action.append(el('a', { href: t.url, download: t.name, class: 'chip' }, 'Download'));
  }
}

function sendFiles(files) {
  if (!state.peers.size) { toast('Nobody to send to yet'); return; }
  for (const file of files) for (const p of state.peers.values()) p.link.files?.send(file);
  selectTab('files');
}

$('file-input').onchange = (e) => { sendFiles([...e.target.files]); e.target.value = ''; };
const dz = $('dropzone');
dz.ondragover = (e) => { e.preventDefault(); dz.classList.add('over'); };
dz.ondragleave = () => dz.classList.remove('over');
dz.ondrop = (e) => { e.preventDefault(); dz.classList.remove('over'); sendFiles([...e.dataTransfer.files]); };

// ---- Tabs --------------------------------------------------------------

function selectTab(name) {
  for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.tab === name);
  for (const tab of ['chat', 'files', 'people']) $(`panel-${tab}`).hidden = tab !== name;
  if (name === 'chat') { $('chat-unread').hidden = true; $('chat-unread').textContent = ''; }
  if (name === 'people') renderPeople();
}
for (const b of document.querySelectorAll('.tab')) b.onclick = () => selectTab(b.dataset.tab);

// ---- Signaling ---------------------------------------------------------

function onJoined(msg) {
  // A rejoin starts in P2P mode; `mode` follows if the room uses the SFU.
  leaveSfu();
  document.body.dataset.mode = 'p2p';
  state.selfId = msg.you;
  state.iceServers = msg.iceServers;
  document.body.dataset.self = msg.you;
  // After a reconnect: calls with peers still here go on under their
  // (possibly new) ids; the others wait as orphans for their peer to return.
  // Ids may be reused by a restarted server, so peers are matched by tag.
  for (const key of [...state.peers.keys()]) if (!state.peers.get(key).orphan) orphan(key);
  for (const peer of msg.peers) {
    const key = findByTag(peer.tag);
    if (key != null) {
      rekey(key, peer.id, peer);
      broadcastState(peer.id);
    } else {
      // We are the newcomer: we open the connection to everyone else already here.
      addPeer(peer, true);
    }
  }
  layoutGrid();
}

function onPeerJoined(peer) {
  const key = findByTag(peer.tag);
  if (key != null) {
    // The same browser session, back after a signaling reconnect.
    rekey(key, peer.id, peer);
    broadcastState(peer.id);
    return;
  }
  addPeer(peer, false);
}

function onMessage(msg) {
  switch (msg.type) {
    case 'peer-joined': onPeerJoined(msg.peer); break;
    case 'peer-left':
      if (msg.reason === 'disconnected') orphan(msg.id); else removePeer(msg.id);
      break;
    case 'offer': case 'answer': case 'candidate':
      state.peers.get(msg.from)?.link.handleSignal(msg.type, msg.data);
      break;
    case 'message': {
      const p = state.peers.get(msg.from);
      if (p && msg.data?.kind === 'state') applyRemoteState(p, msg.data);
      break;
    }
    case 'mode': setMode(msg.mode); break;
    case 'sfu': state.sfu?.handle(msg.data); break;
    case 'error': console.warn('signaling error', msg.code, msg.message); break;
    default: break;
  }
}

async function join(name, password) {
  state.name = name;
  localStorage.setItem('switchboard.name', name);
  const signaling = new Signaling({
    room: roomId,
    name,
    password,
    token: inviteToken,
    session,
    features: ['sfu'],
    onMessage,
    onJoined: (msg) => { onJoined(msg); toast('Reconnected'); },
    onStatus: (s, err) => {
      const text = {
        connecting: 'Connecting…',
        connected: 'Connected',
        reconnecting: 'Reconnecting…',
        draining: 'Server restarting — reconnecting…',
        closed: err ? `Disconnected: ${refusalText(err)}` : 'Left',
      }[s];
      setStatus(s === 'draining' ? 'reconnecting' : s, text);
    },
  });
  state.signaling = signaling;
  await previewReady;
  const joined = await signaling.start();
  $('lobby').hidden = true;
  $('call').hidden = false;
  document.body.classList.add('in-call');
  selfTile = makeTile('self', name, true);
  updateSelfTile();
  renderControls();
  onJoined(joined);
  setInterval(pollStats, 1000);
}

function leaveCall() {
  state.signaling?.close();
  for (const id of [...state.peers.keys()]) removePeer(id, false);
  for (const t of local.stream.getTracks()) t.stop();
  local.screen?.stop();
  location.href = '/';
}

/** What to tell the user when the server refuses a join (codes of docs/protocol.md). */
function refusalText(err) {
  if (err.code === 'unauthorized') return deniedText(err.reason).title;
  const messages = {
    'room-full': 'This room is full.',
    'too-many-rooms': 'The server has too many calls going on right now. Please try again later.',
    'bad-password': 'Wrong password for this room.',
    'bad-name': 'Please choose a shorter name without special characters.',
    draining: 'The server is restarting. Please try again in a few seconds.',
    unavailable: 'The server cannot reach the rest of its cluster. Please try again in a few seconds.',
  };
  return messages[err.code] ?? err.message;
}

/** The full-page message for an `unauthorized` refusal, by its reason. */
function deniedText(reason) {
  return {
    missing: { title: 'This room needs an invite link', text: 'This server only lets people in with an invite link. Ask whoever runs the call to send you one, then open it.' },
    expired: { title: 'This invite link has expired — ask for a new one', text: 'Invite links are valid for a limited time. Ask whoever invited you for a fresh link.' },
    'wrong-room': { title: 'This invite link is for another room', text: 'The link you opened does not let you into this room. Check that you opened the whole link you were sent, or ask for a new one.' },
  }[reason] ?? { title: 'This invite link is not valid', text: 'The link may be incomplete or was not made by this server. Check that you copied the whole link, or ask for a new one.' };
}

/** Replaces the lobby with a page explaining why we cannot join. */
function showDenied(err) {
  const { title, text } = deniedText(err.reason);
  $('denied-title').textContent = title;
  $('denied-text').textContent = text;
  $('denied').dataset.reason = err.reason ?? '';
  $('lobby').hidden = true;
  $('call').hidden = true;
  $('denied').hidden = false;
  document.body.classList.add('not-admitted');
  setStatus('closed', 'Not admitted');
  for (const t of local.stream.getTracks()) t.stop();
  // A token that cannot work is not kept for the next visit.
  try { sessionStorage.removeItem(tokenKey); } catch { /* storage disabled */ }
}

$('name').value = params.get('name') ?? localStorage.getItem('switchboard.name') ?? '';
if (typeof claims?.name === 'string' && claims.name.trim()) {
  // The invite names us: the server uses that name whatever we send.
  $('name').value = claims.name.trim();
  $('name').readOnly = true;
}
$('join-form').onsubmit = async (e) => {
  e.preventDefault();
  const name = $('name').value.trim();
  if (!name) return;
  $('join').disabled = true;
  $('lobby-error').textContent = '';
  try {
    await join(name, $('password').value);
  } catch (err) {
    if (err instanceof JoinRefused && err.code === 'unauthorized') { showDenied(err); return; }
    $('lobby-error').textContent = err instanceof JoinRefused ? refusalText(err) : String(err.message ?? err);
    $('join').disabled = false;
  }
};

window.addEventListener('beforeunload', () => state.signaling?.close());
cleanupReceived();
const previewReady = startPreview().catch((err) => console.warn('preview', err));

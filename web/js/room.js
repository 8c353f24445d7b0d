// The room page: lobby (name, preview), then the call — a full mesh of
// PeerLinks, one tile per peer with a connection panel, chat and file
// transfer over data channels, mic/camera/screen controls and device choice.

import { Signaling, JoinRefused } from './signaling.js';
import { PeerLink } from './peer.js';
import { cleanupReceived } from './files.js';
import { readStats, formatRate, Sparkline } from './stats.js';
import { el, icons, iconButton, formatBytes, initials, hue } from './ui.js';

const $ = (id) => document.getElementById(id);
const roomId = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() ?? '');
const params = new URLSearchParams(location.search);
const relayOnly = params.get('relay') === '1';

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
};

// Exposed for the browser tests and for curious operators in the console.
window.switchboard = {
  state,
  local,
  relayOnly,
  peer: (id) => state.peers.get(id)?.link ?? null,
  stats: (id) => state.peers.get(id)?.stats ?? null,
};

$('room-name').textContent = roomId;
$('relay-badge').hidden = !relayOnly;
$('copy-link').onclick = async () => {
  const url = `${location.origin}/r/${encodeURIComponent(roomId)}`;
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

/** The track each peer should get for `kind` right now. */
function outgoing(kind) {
  if (kind === 'audio') return local.micOn ? local.mic : null;
  return local.screen ?? (local.camOn ? local.camera : null);
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
  await Promise.all([...state.peers.values()].map((p) => p.link.replaceTrack(kind, track).catch(() => {})));
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
  for (const id of to ? [to] : state.peers.keys()) state.signaling?.relay('message', id, data);
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
    send: (type, data) => state.signaling.relay(type, peer.id, data),
    localTrack: outgoing,
    localStream: local.stream,
  });
  const view = makeTile(peer.id, peer.name, false);
  view.video.srcObject = link.remoteStream;
  const p = { link, view, stats: null, sparkline: new Sparkline(view.graph), remote: {} };
  state.peers.set(peer.id, p);
  link.addEventListener('track', () => {
    view.video.srcObject = link.remoteStream;
    view.video.play().catch(() => {});
  });
  link.addEventListener('state', ({ detail }) => {
    view.tile.dataset.state = detail;
    if (detail === 'connected') view.tile.querySelector('.conn-chip').textContent = 'Connected';
    if (detail === 'failed') view.tile.querySelector('.conn-chip').textContent = 'Reconnecting…';
    renderPeople();
  });
  link.addEventListener('restart', ({ detail }) => { view.tile.dataset.restarts = String(detail); });
  link.addEventListener('chat', ({ detail }) => addChat(peer.name, detail.text, false));
  link.addEventListener('transfer', ({ detail }) => renderTransfer(peer, detail));
  layoutGrid();
  broadcastState(peer.id);
  addChat(null, `${peer.name} joined`, false, true);
}

function removePeer(id, announce = true) {
  const p = state.peers.get(id);
  if (!p) return;
  p.link.close();
  p.view.tile.remove();
  state.peers.delete(id);
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
      if (s.pair) {
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
  for (const id of [...state.peers.keys()]) removePeer(id, false);
  state.selfId = msg.you;
  state.iceServers = msg.iceServers;
  document.body.dataset.self = msg.you;
  // We are the newcomer: we open the connection to everyone already here.
  for (const peer of msg.peers) addPeer(peer, true);
}

function onMessage(msg) {
  switch (msg.type) {
    case 'peer-joined': addPeer(msg.peer, false); break;
    case 'peer-left': removePeer(msg.id); break;
    case 'offer': case 'answer': case 'candidate':
      state.peers.get(msg.from)?.link.handleSignal(msg.type, msg.data);
      break;
    case 'message': {
      const p = state.peers.get(msg.from);
      if (p && msg.data?.kind === 'state') applyRemoteState(p, msg.data);
      break;
    }
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
    onMessage,
    onJoined: (msg) => { onJoined(msg); toast('Reconnected'); },
    onStatus: (s, err) => {
      const text = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…', closed: err ? `Disconnected: ${refusalText(err)}` : 'Left' }[s];
      setStatus(s, text);
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
  const messages = {
    'room-full': 'This room is full.',
    'too-many-rooms': 'The server has too many calls going on right now. Please try again later.',
    'bad-password': 'Wrong password for this room.',
    'bad-name': 'Please choose a shorter name without special characters.',
  };
  return messages[err.code] ?? err.message;
}

$('name').value = params.get('name') ?? localStorage.getItem('switchboard.name') ?? '';
$('join-form').onsubmit = async (e) => {
  e.preventDefault();
  const name = $('name').value.trim();
  if (!name) return;
  $('join').disabled = true;
  $('lobby-error').textContent = '';
  try {
    await join(name, $('password').value);
  } catch (err) {
    $('lobby-error').textContent = err instanceof JoinRefused ? refusalText(err) : String(err.message ?? err);
    $('join').disabled = false;
  }
};

window.addEventListener('beforeunload', () => state.signaling?.close());
cleanupReceived();
const previewReady = startPreview().catch((err) => console.warn('preview', err));

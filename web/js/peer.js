// One RTCPeerConnection to one remote peer of the mesh: perfect negotiation
// (polite/impolite), trickle ICE, negotiated data channels for chat and
// files, and recovery by ICE restart when the connection fails.

import { FileChannel } from './files.js';

const CHAT_CHANNEL_ID = 0;
const FILE_CHANNEL_ID = 1;
const MAX_RESTARTS = 6;
// A connection still not up after this long is restarted rather than left to
// Chromium's own ~30 s failure timeout (seen behind symmetric NATs).
const CONNECT_TIMEOUT_MS = 20_000;
// A connection counts as recovered once it has stayed connected this long;
// only then is the restart budget given back. A call that flaps (up for a
// few seconds, then failed, as seen through some TURN servers behind
// symmetric NATs) would otherwise earn it back on every `connected` and
// restart forever.
const STABLE_MS = 20_000;
// A peer we were told joined normally offers at once. Both sides of a pair
// may each have been told the other joined (a cluster node putting its
// members back after Redis returned): then, with no offer this long, the
// side with the lower peer id offers.
const OFFER_WAIT_MS = 4_000;

/**
 * A link to one peer. Events: 'track' (detail: MediaStreamTrack),
 * 'state' (detail: connectionState), 'chat' (detail: {text, ts}),
 * 'files' (FileChannel events are re-dispatched by the FileChannel itself).
 */
export class PeerLink extends EventTarget {
  /**
   * @param {object} o
   * @param {string} o.selfId our peer id
   * @param {{id: string, name: string}} o.peer the remote peer
   * @param {boolean} o.initiator whether we create the media sections and first offer
   * @param {RTCIceServer[]} o.iceServers
   * @param {boolean} o.relayOnly force iceTransportPolicy 'relay'
   * @param {(type: string, data: any) => void} o.send relay a signaling message to this peer
   * @param {(kind: string) => MediaStreamTrack|null} o.localTrack current outgoing track per kind
   * @param {MediaStream} o.localStream stream the outgoing tracks belong to
   */
  constructor({ selfId, peer, initiator, iceServers, relayOnly, send, localTrack, localStream }) {
    super();
    this.id = peer.id;
    this.name = peer.name;
    this.send = send;
    this.localTrack = localTrack;
    this.localStream = localStream;
    // The newcomer is polite: on an offer collision it yields.
    this.polite = initiator;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.queue = Promise.resolve();
    this.restarts = 0;
    this.disconnectTimer = null;
    this.connectTimer = null;
    this.stableTimer = null;
    this.closed = false;
    this.senders = {};
    this.remoteStream = new MediaStream();
    this.pc = new RTCPeerConnection({
      iceServers,
      iceTransportPolicy: relayOnly ? 'relay' : 'all',
      bundlePolicy: 'max-bundle',
    });
    const pc = this.pc;
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.send('candidate', candidate.toJSON());
    };
    pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        this.send('offer', pc.localDescription.toJSON());
      } catch (err) {
        console.warn(`offer to ${this.id} failed`, err);
      } finally {
        this.makingOffer = false;
      }
    };
    pc.ontrack = ({ track }) => {
      this.remoteStream.addTrack(track);
      this.dispatchEvent(new CustomEvent('track', { detail: track }));
    };
    pc.onconnectionstatechange = () => this.onConnectionState();
    if (initiator) {
      this.initiate();
    } else if (selfId < peer.id) {
      this.offerTimer = setTimeout(() => {
        if (!this.closed && !pc.remoteDescription && !this.chat) this.initiate();
      }, OFFER_WAIT_MS);
    }
  }

  /** Creates the media sections and channels; the first offer follows. */
  initiate() {
    for (const kind of ['audio', 'video']) {
      const t = this.pc.addTransceiver(kind, { direction: 'sendrecv', streams: [this.localStream] });
      this.senders[kind] = t.sender;
      t.sender.replaceTrack(this.localTrack(kind)).catch(() => {});
    }
    this.openChannels();
  }

  openChannels() {
    if (this.chat) return;
    this.chat = this.pc.createDataChannel('chat', { negotiated: true, id: CHAT_CHANNEL_ID });
    this.chat.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (typeof msg.text !== 'string') return;
      this.dispatchEvent(new CustomEvent('chat', { detail: { text: msg.text.slice(0, 4000), ts: Date.now() } }));
    };
    const fileDc = this.pc.createDataChannel('file', { negotiated: true, id: FILE_CHANNEL_ID, ordered: true });
    this.files = new FileChannel(fileDc, this);
    this.dispatchEvent(new CustomEvent('channels'));
  }

  /** After the first remote offer: send our media on the transceivers it created. */
  attachLocal() {
    for (const t of this.pc.getTransceivers()) {
      const kind = t.receiver.track?.kind;
      if (!kind || this.senders[kind] || t.mid === null) continue;
      this.senders[kind] = t.sender;
      t.direction = 'sendrecv';
      t.sender.replaceTrack(this.localTrack(kind)).catch(() => {});
      if (t.sender.setStreams) t.sender.setStreams(this.localStream);
    }
  }

  /** Sets every sender's track again (see the collision case in applySignal). */
  async resend() {
    for (const kind of Object.keys(this.senders)) {
      await this.senders[kind].replaceTrack(this.localTrack(kind)).catch(() => {});
    }
  }

  /** Swaps the outgoing track of `kind` (camera/screen switch, device change) without renegotiation. */
  async replaceTrack(kind, track) {
    const s = this.senders[kind];
    if (s) await s.replaceTrack(track);
  }

  /** Handles a signaling message from this peer, in arrival order. */
  handleSignal(type, data) {
    this.queue = this.queue.then(() => this.applySignal(type, data)).catch((err) => {
      console.warn(`signal ${type} from ${this.id}:`, err);
    });
    return this.queue;
  }

  async applySignal(type, data) {
    if (this.closed || !data) return;
    const pc = this.pc;
    if (type === 'offer' || type === 'answer') {
      const description = { type: data.type, sdp: data.sdp };
      if (description.type !== type) return;
      const readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.settingRemoteAnswer);
      const collision = description.type === 'offer' && !readyForOffer;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      this.settingRemoteAnswer = description.type === 'answer';
      await pc.setRemoteDescription(description);
      this.settingRemoteAnswer = false;
      if (description.type === 'offer') {
        this.attachLocal();
        this.openChannels();
        await pc.setLocalDescription();
        this.send('answer', pc.localDescription.toJSON());
        // Chromium 148: after an offer collision the polite side rolled its
        // own offer back, and its senders then stayed silent (bytes sent
        // back to 0) on the renegotiated connection. Setting their tracks
        // again starts them.
        if (collision) await this.resend();
      }
    } else if (type === 'candidate') {
      try {
        await pc.addIceCandidate(data);
      } catch (err) {
        if (!this.ignoreOffer) throw err;
      }
    }
  }

  onConnectionState() {
    const state = this.pc.connectionState;
    this.dispatchEvent(new CustomEvent('state', { detail: state }));
    clearTimeout(this.disconnectTimer);
    clearTimeout(this.stableTimer);
    if (state !== 'connecting') clearTimeout(this.connectTimer);
    if (state === 'connected') {
      this.stableTimer = setTimeout(() => {
        if (this.pc.connectionState === 'connected') this.restarts = 0;
      }, STABLE_MS);
    } else if (state === 'connecting') {
      clearTimeout(this.connectTimer);
      this.connectTimer = setTimeout(() => {
        if (this.pc.connectionState === 'connecting') this.restartIce();
      }, CONNECT_TIMEOUT_MS);
    } else if (state === 'failed') {
      this.restartIce();
    } else if (state === 'disconnected') {
      // Often transient; restart if it does not come back by itself.
      this.disconnectTimer = setTimeout(() => {
        if (this.pc.connectionState === 'disconnected') this.restartIce();
      }, 4000);
    }
  }

  /**
   * Recovers a failed connection with an ICE restart: at most MAX_RESTARTS
   * until the connection has held for STABLE_MS.
   */
  restartIce() {
    if (this.closed || this.restarts >= MAX_RESTARTS) return;
    this.restarts++;
    console.info(`ICE restart ${this.restarts} with ${this.id}`);
    this.dispatchEvent(new CustomEvent('restart', { detail: this.restarts }));
    this.pc.restartIce();
  }

  /** Sends a chat message over the data channel; false if it is not open. */
  sendChat(text) {
    if (this.chat?.readyState !== 'open') return false;
    this.chat.send(JSON.stringify({ text }));
    return true;
  }

  close() {
    this.closed = true;
    clearTimeout(this.offerTimer);
    clearTimeout(this.disconnectTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.stableTimer);
    this.files?.close();
    try { this.chat?.close(); } catch { /* already closed */ }
    this.pc.close();
  }
}

// The call's one RTCPeerConnection to the server's SFU, used while the room
// is in SFU mode (from the third person on): it publishes the camera as
// three simulcast layers (RFC 8853: a quarter, half and full resolution),
// the microphone, and the screen when shared (a track of its own, in a
// stream of its own, at full resolution); it receives everyone else's
// tracks, each in a MediaStream whose id is its publisher's peer id (a
// publisher's screen: `<peer id>+1`).
//
// Negotiation (docs/protocol.md, "SFU rooms"): we offer what we publish,
// the SFU offers what it forwards. On a collision our offer wins (the SFU
// drops its own and offers again after), so this side is the impolite one
// of perfect negotiation: an SFU offer that meets ours is ignored.

// Lowest first: the SFU reads the layers in this order.
const CAMERA_LAYERS = [
  { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'h', maxBitrate: 1_500_000 },
];
// Under a publish cap, a layer left less than this is stopped instead.
const MIN_LAYER_BPS = 50_000;
// A shared screen: one layer at full resolution (text must stay sharp).
const SCREEN_BPS = 2_500_000;
const MAX_RESTARTS = 6;
// As peer.js: the restart budget comes back once the link held this long.
const STABLE_MS = 20_000;
// Not connected this long after starting (or after a restart), or
// disconnected this long: restart ICE rather than wait for 'failed', which
// may never come (seen with Firefox against the ICE-lite SFU).
const CONNECT_TIMEOUT_MS = 10_000;
const DISCONNECTED_MS = 4_000;

/**
 * The link to the SFU. Events: 'track' (detail: {peer, track, stream}),
 * 'state' (detail: connectionState).
 */
export class SfuLink extends EventTarget {
  /**
   * @param {object} o
   * @param {RTCIceServer[]} o.iceServers
   * @param {boolean} o.relayOnly force iceTransportPolicy 'relay'
   * @param {(data: RTCSessionDescriptionInit) => void} o.send an SDP to the SFU
   * @param {(kind: string) => MediaStreamTrack|null} o.localTrack current outgoing track per kind
   * @param {MediaStream} o.localStream stream the outgoing tracks belong to
   */
  constructor({ iceServers, relayOnly, send, localTrack, localStream }) {
    super();
    this.send = send;
    this.makingOffer = false;
    this.closed = false;
    this.restarts = 0;
    this.stableTimer = null;
    this.watchTimer = null;
    this.queue = Promise.resolve();
    this.pc = new RTCPeerConnection({
      iceServers,
      iceTransportPolicy: relayOnly ? 'relay' : 'all',
      bundlePolicy: 'max-bundle',
    });
    const pc = this.pc;
    pc.onnegotiationneeded = () => this.negotiate();
    pc.ontrack = ({ track, streams }) => {
      const stream = streams[0];
      if (!stream) return;
      this.dispatchEvent(new CustomEvent('track', { detail: { peer: stream.id, track, stream } }));
    };
    pc.onconnectionstatechange = () => this.onConnectionState();
    this.watch(CONNECT_TIMEOUT_MS);
    this.audio = pc.addTransceiver(localTrack('audio') ?? 'audio', { direction: 'sendonly', streams: [localStream] });
    this.video = pc.addTransceiver(localTrack('video') ?? 'video', {
      direction: 'sendonly',
      streams: [localStream],
      sendEncodings: CAMERA_LAYERS,
    });
  }

  /** Offers what we publish now. */
  negotiate() {
    this.queue = this.queue.then(async () => {
      if (this.closed) return;
      try {
        this.makingOffer = true;
        await this.pc.setLocalDescription();
        this.send(this.pc.localDescription.toJSON());
      } catch (err) {
        console.warn('SFU offer failed', err);
      } finally {
        this.makingOffer = false;
      }
    });
  }

  /** An SDP from the SFU. */
  handle(data) {
    this.queue = this.queue.then(async () => {
      if (this.closed) return;
      const pc = this.pc;
      if (data?.type === 'offer' && (this.makingOffer || pc.signalingState !== 'stable')) {
        // Ours is out: the SFU drops its offer when ours arrives.
        return;
      }
      try {
        await pc.setRemoteDescription(data);
        if (data.type === 'offer') {
          await pc.setLocalDescription();
          this.send(pc.localDescription.toJSON());
        }
        await this.applyPublishCap();
      } catch (err) {
        console.warn('SFU description refused', err);
      }
    });
  }

  /**
   * Keeps our camera's layers together under `bps` (the server's
   * `--sfu-max-publish-bps`; 0: none): each layer gets its own cap or what
   * the lower ones leave, lowest first, and a layer left with too little
   * to be worth it stops. (Browsers do not apply the SDP's `b=TIAS` to
   * simulcast layers.) Applied again after every negotiation: Chromium
   * resets the layers' `active` from the remote description's simulcast
   * line.
   */
  setPublishCap(bps) {
    this.publishCap = bps;
    this.queue = this.queue.then(() => this.applyPublishCap());
  }

  async applyPublishCap() {
    if (this.closed || !this.publishCap) return;
    const sender = this.video.sender;
    const params = sender.getParameters();
    let left = this.publishCap;
    for (const e of params.encodings ?? []) {
      const layer = CAMERA_LAYERS.find((l) => l.rid === e.rid);
      if (!layer) continue;
      const rate = Math.min(layer.maxBitrate, left);
      e.active = rate >= MIN_LAYER_BPS;
      e.maxBitrate = e.active ? rate : layer.maxBitrate;
      if (e.active) left -= rate;
    }
    try {
      await sender.setParameters(params);
      if (this.screen) {
        const screen = this.screen.sender.getParameters();
        for (const e of screen.encodings ?? []) e.maxBitrate = this.capped(SCREEN_BPS);
        await this.screen.sender.setParameters(screen);
      }
    } catch (err) {
      console.warn('SFU publish cap not applied', err);
    }
  }

  /**
   * Publishes `track` as our screen, or stops (null): a transceiver of its
   * own, added on the first share and made inactive when it ends, so the
   * SFU stops it at the others (either change renegotiates).
   */
  async shareScreen(track) {
    if (this.closed) return;
    if (track) {
      if (!this.screen) {
        this.screen = this.pc.addTransceiver(track, {
          direction: 'sendonly',
          streams: [new MediaStream([track])],
          sendEncodings: [{ maxBitrate: this.capped(SCREEN_BPS) }],
        });
        return;
      }
      await this.screen.sender.replaceTrack(track);
      this.screen.direction = 'sendonly';
    } else if (this.screen) {
      await this.screen.sender.replaceTrack(null);
      this.screen.direction = 'inactive';
    }
  }

  /** `bps`, or the publish cap if that is lower. */
  capped(bps) {
    return this.publishCap ? Math.min(bps, this.publishCap) : bps;
  }

  /** Sends `track` (or nothing) as our `kind` from now on. */
  async replaceTrack(kind, track) {
    const t = kind === 'audio' ? this.audio : this.video;
    await t.sender.replaceTrack(track);
  }

  onConnectionState() {
    const state = this.pc.connectionState;
    this.dispatchEvent(new CustomEvent('state', { detail: state }));
    clearTimeout(this.stableTimer);
    clearTimeout(this.watchTimer);
    if (state === 'connected') {
      this.stableTimer = setTimeout(() => { this.restarts = 0; }, STABLE_MS);
    } else if (state === 'failed') {
      this.restart();
    } else if (state === 'disconnected') {
      this.watch(DISCONNECTED_MS);
    } else if (state === 'connecting' || state === 'new') {
      this.watch(CONNECT_TIMEOUT_MS);
    }
  }

  /** Restarts ICE unless the link is connected `ms` from now. */
  watch(ms) {
    clearTimeout(this.watchTimer);
    this.watchTimer = setTimeout(() => {
      if (this.pc.connectionState !== 'connected') this.restart();
    }, ms);
  }

  /** An ICE restart, within the budget (a new offer follows by itself). */
  restart() {
    if (this.closed || this.restarts >= MAX_RESTARTS) return;
    this.restarts++;
    console.info(`SFU link: ICE restart ${this.restarts}`);
    this.dispatchEvent(new CustomEvent('restart', { detail: this.restarts }));
    this.pc.restartIce();
    this.watch(CONNECT_TIMEOUT_MS);
  }

  close() {
    this.closed = true;
    clearTimeout(this.stableTimer);
    clearTimeout(this.watchTimer);
    this.pc.close();
  }
}

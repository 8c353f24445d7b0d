// The room's SFU mode (docs/protocol.md, "SFU rooms"): while the server
// says `mode: sfu`, media goes through one SfuLink to the server's SFU and
// each tile shows the stream the SFU forwards for that peer; the mesh's
// PeerLinks stay up for chat and files but carry no media. The switch is
// made without a gap: our P2P senders go quiet only once the SFU link is
// connected, and a tile changes to its SFU stream only when that stream
// has a frame to show. The SFU also says who speaks (from the audio levels
// in the RTP headers, RFC 6464): a `speaker` event for the room to highlight.

import { SfuLink } from './sfu.js';

export class SfuRoom extends EventTarget {
  /**
   * @param {object} o
   * @param {RTCIceServer[]} o.iceServers
   * @param {boolean} o.relayOnly
   * @param {(msg: object) => void} o.send a signaling message (`sfu`, `view`)
   * @param {(kind: string) => MediaStreamTrack|null} o.localTrack what we publish per kind
   * @param {MediaStream} o.localStream
   * @param {(peer: string) => HTMLVideoElement|null} o.videoOf the tile's video element of a peer
   */
  constructor({ iceServers, relayOnly, send, localTrack, localStream, videoOf }) {
    super();
    this.send = send;
    this.videoOf = videoOf;
    this.streams = new Map(); // publisher peer id -> MediaStream from the SFU
    this.widths = new Map(); // publisher peer id -> width last told the SFU
    this.connected = false;
    this.link = new SfuLink({
      iceServers,
      relayOnly,
      send: (data) => send({ type: 'sfu', data }),
      localTrack,
      localStream,
    });
    this.link.addEventListener('track', ({ detail }) => {
      // `<peer>+N`: another stream of that publisher, its screen.
      const [peer, extra] = detail.peer.split('+');
      if (extra !== undefined) {
        this.screenTrack(peer, detail.stream, detail.track);
        return;
      }
      this.streams.set(detail.peer, detail.stream);
      this.show(detail.peer);
    });
    this.link.addEventListener('state', ({ detail }) => {
      document.body.dataset.sfuState = detail;
      if (detail === 'connected' && !this.connected) {
        this.connected = true;
        this.dispatchEvent(new CustomEvent('connected'));
      }
    });
  }

  /**
   * A publisher's screen arrived: a 'screen' event (detail: {peer, stream})
   * now, and one with `stream: null` when the SFU stops it.
   */
  screenTrack(peer, stream, track) {
    if (track.kind !== 'video') return;
    const gone = () => {
      if (this.closed || stream.getVideoTracks().some((t) => t.readyState === 'live' && t !== track)) return;
      this.dispatchEvent(new CustomEvent('screen', { detail: { peer, stream: null } }));
    };
    stream.addEventListener('removetrack', gone, { once: true });
    track.addEventListener('ended', gone, { once: true });
    this.dispatchEvent(new CustomEvent('screen', { detail: { peer, stream } }));
  }

  /** Publishes `track` as our screen, or stops (null). */
  shareScreen(track) {
    return this.link.shareScreen(track);
  }

  /** Whether the SFU forwards a stream of `peer`. */
  has(peer) {
    return this.streams.has(peer);
  }

  /** Puts `peer`'s SFU stream on its tile once a frame of it decodes. */
  show(peer) {
    const stream = this.streams.get(peer);
    const video = this.videoOf(peer);
    if (!stream || !video || video.srcObject === stream) return;
    const [track] = stream.getVideoTracks();
    const swap = () => {
      if (this.closed || this.streams.get(peer) !== stream) return;
      video.srcObject = stream;
      video.play().catch(() => {});
    };
    // A hidden element decodes the stream first, so the tile keeps its
    // P2P picture until the SFU's has frames (no black flash).
    if (!track || !video.srcObject) { swap(); return; }
    const probe = document.createElement('video');
    probe.muted = true;
    probe.srcObject = new MediaStream([track]);
    const done = () => { probe.srcObject = null; swap(); };
    probe.addEventListener('loadeddata', done, { once: true });
    setTimeout(done, 3000);
    probe.play().catch(() => {});
  }

  /** What the SFU sent: an SDP, or who speaks now (`speaker`). */
  handle(data) {
    if (data?.type === 'speaker') {
      this.dispatchEvent(new CustomEvent('speaker', { detail: String(data.peer ?? '') }));
      return;
    }
    if (data?.type === 'publish-cap') {
      this.link.setPublishCap(Number(data.bps) || 0);
      return;
    }
    this.link.handle(data);
  }

  /** Publishes `track` as our `kind` from now on. */
  replaceTrack(kind, track) {
    return this.link.replaceTrack(kind, track);
  }

  /**
   * Tells the SFU the size each peer's tile is shown at (device pixels,
   * so a phone's sharp screen gets the layer it can show), when it changed.
   */
  sendViews(peers) {
    const ratio = window.devicePixelRatio || 1;
    for (const id of peers) {
      const video = this.videoOf(id);
      const width = video && !document.hidden ? Math.round(video.clientWidth * ratio) : 0;
      if (this.widths.get(id) === width) continue;
      this.widths.set(id, width);
      this.send({ type: 'view', peer: id, width: Math.min(width, 16384) });
    }
  }

  /** Forgets a peer that left. */
  forget(peer) {
    this.streams.delete(peer);
    this.widths.delete(peer);
  }

  close() {
    this.closed = true;
    this.link.close();
    this.streams.clear();
  }
}

// Signaling client: one WebSocket to /ws speaking docs/protocol.md (v1).
// Joins a room, delivers server messages to a callback, keeps the link alive
// with an application ping, and reconnects with backoff when it drops.

export const PROTOCOL_VERSION = 1;

/** Thrown when the server refuses the join (room full, bad password, ...). */
export class JoinRefused extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/**
 * A signaling session. `onMessage(msg)` gets every server message after
 * `joined`; `onStatus(status)` gets 'connecting' | 'connected' | 'reconnecting' | 'closed'.
 */
export class Signaling {
  constructor({ room, name, password, onMessage, onStatus, onJoined }) {
    this.join = { type: 'join', v: PROTOCOL_VERSION, room, name };
    if (password) this.join.password = password;
    this.onMessage = onMessage;
    this.onStatus = onStatus ?? (() => {});
    this.onJoined = onJoined;
    this.ws = null;
    this.closed = false;
    this.attempt = 0;
    this.pingTimer = null;
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/ws`;
  }

  /** Connects and joins; resolves with the `joined` message, rejects with JoinRefused. */
  start() {
    return new Promise((resolve, reject) => {
      let first = true;
      const open = () => {
        this.onStatus(this.attempt === 0 ? 'connecting' : 'reconnecting');
        const ws = new WebSocket(this.url());
        this.ws = ws;
        let joined = false;
        ws.onopen = () => ws.send(JSON.stringify(this.join));
        ws.onmessage = (ev) => {
          let msg;
          try { msg = JSON.parse(ev.data); } catch { return; }
          if (!joined) {
            if (msg.type === 'joined') {
              joined = true;
              this.attempt = 0;
              this.onStatus('connected');
              this.startPing();
              if (first) { first = false; resolve(msg); } else this.onJoined?.(msg);
            } else if (msg.type === 'error') {
              this.closed = true;
              ws.close();
              const err = new JoinRefused(msg.code, msg.message);
              if (first) { first = false; reject(err); } else this.onStatus('closed', err);
            }
            return;
          }
          this.onMessage(msg);
        };
        ws.onclose = () => {
          this.stopPing();
          if (this.ws !== ws || this.closed) return;
          if (first) { first = false; reject(new Error('cannot reach the signaling server')); return; }
          // Reconnect with capped exponential backoff; the app rejoins with a new id.
          this.attempt++;
          this.onStatus('reconnecting');
          const delay = Math.min(10000, 500 * 2 ** Math.min(this.attempt, 5));
          setTimeout(() => { if (!this.closed) open(); }, delay);
        };
      };
      open();
    });
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => this.send({ type: 'ping' }), 15000);
  }

  stopPing() {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /** Sends a protocol message (dropped while disconnected). */
  send(msg) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** Relays `data` as `type` (offer/answer/candidate/message) to peer `to`. */
  relay(type, to, data) {
    this.send({ type, to, data });
  }

  /** Leaves and closes for good. */
  close() {
    this.closed = true;
    this.stopPing();
    this.send({ type: 'leave' });
    this.ws?.close();
    this.onStatus('closed');
  }
}

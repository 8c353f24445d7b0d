// Signaling client: one WebSocket to /ws speaking docs/protocol.md (v1).
// Joins a room, delivers server messages to a callback, keeps the link alive
// with an application ping, and reconnects with jittered backoff when it
// drops or when the server asks (`reconnect`, sent while it drains). Calls
// never depend on this link: a reconnect only re-keys them (see room.js).

export const PROTOCOL_VERSION = 1;

/** Thrown when the server refuses the join (room full, bad password, unauthorized, ...). */
export class JoinRefused extends Error {
  constructor(code, message, reason) {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}

/** Refusals worth retrying later: the server is restarting or busy. */
const RETRYABLE = new Set(['draining', 'too-many-rooms', 'room-full', 'unavailable']);

/** How often a first join refused with `unavailable` is tried again. */
const UNAVAILABLE_RETRIES = 6;

/** Capped exponential backoff with jitter (0.5x–1.5x), in ms. */
function backoff(attempt) {
  const base = Math.min(10000, 500 * 2 ** Math.min(attempt, 5));
  return Math.round(base * (0.5 + Math.random()));
}

/**
 * A signaling session. `onMessage(msg)` gets every server message after
 * `joined`; `onJoined(msg)` gets the `joined` of each later rejoin;
 * `onStatus(status, detail)` gets 'connecting' | 'connected' |
 * 'reconnecting' | 'draining' | 'closed'.
 */
export class Signaling {
  constructor({ room, name, password, token, session, features, onMessage, onStatus, onJoined }) {
    this.join = { type: 'join', v: PROTOCOL_VERSION, room, name };
    if (password) this.join.password = password;
    if (token) this.join.token = token;
    if (session) this.join.session = session;
    // `['sfu']`: this client can take part in SFU rooms.
    if (features?.length) this.join.features = features;
    this.onMessage = onMessage;
    this.onStatus = onStatus ?? (() => {});
    this.onJoined = onJoined;
    this.ws = null;
    this.closed = false;
    this.attempt = 0;
    this.pingTimer = null;
    this.retryTimer = null;
    this.candidate = null; // a replacement connection being tried while `ws` still works
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/ws`;
  }

  /**
   * Opens one WebSocket and joins. Resolves with {ws, joined}; rejects with
   * JoinRefused (the server said no) or Error (no connection).
   */
  connectOnce() {
    return new Promise((resolve, reject) => {
      let settled = false;
      const ws = new WebSocket(this.url());
      const done = (fn, v) => { if (!settled) { settled = true; fn(v); } };
      ws.onopen = () => ws.send(JSON.stringify(this.join));
      ws.onmessage = (ev) => {
        let msg;
        try { msg = JSON.parse(ev.data); } catch { return; }
        if (settled) return this.deliver(ws, msg);
        if (msg.type === 'joined') done(resolve, { ws, joined: msg });
        else if (msg.type === 'error') {
          done(reject, new JoinRefused(msg.code, msg.message, msg.reason));
          ws.close();
        } else if (msg.type === 'reconnect') {
          // Draining before we even joined: the join will be refused; wait for it.
        }
      };
      ws.onclose = () => {
        done(reject, new Error('cannot reach the signaling server'));
        if (settled) this.dropped(ws);
      };
    });
  }

  /** Connects and joins; resolves with the `joined` message, rejects with JoinRefused. */
  async start() {
    this.onStatus('connecting');
    for (let attempt = 0; ; attempt++) {
      try {
        const { ws, joined } = await this.connectOnce();
        this.adopt(ws);
        return joined;
      } catch (err) {
        // A cluster node cut off from Redis for a moment says so: a little
        // later it lets us in (about 30 s of tries in all).
        const again = err instanceof JoinRefused && err.code === 'unavailable' && attempt < UNAVAILABLE_RETRIES;
        if (!again || this.closed) throw err;
        await new Promise((r) => setTimeout(r, backoff(attempt)));
      }
    }
  }

  /** Makes `ws` the connection in use (closing the previous one, without `leave`). */
  adopt(ws) {
    const old = this.ws;
    this.ws = ws;
    this.attempt = 0;
    if (old && old !== ws) old.close(1000, 'replaced');
    this.onStatus('connected');
    this.startPing();
  }

  deliver(ws, msg) {
    if (ws !== this.ws) return;
    if (msg.type === 'reconnect') {
      this.onStatus('draining');
      // Spread the herd: every client of a draining server hears this at once.
      this.scheduleRetry(200 + Math.random() * 1800);
      return;
    }
    this.onMessage(msg);
  }

  /** The connection `ws` closed. */
  dropped(ws) {
    if (ws !== this.ws || this.closed) return;
    this.stopPing();
    this.ws = null;
    this.onStatus('reconnecting');
    this.scheduleRetry(backoff(this.attempt));
  }

  scheduleRetry(delay) {
    if (this.closed || this.retryTimer || this.candidate) return;
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.retry(); }, delay);
  }

  /** One attempt to get a fresh, joined connection; the current one (if any) keeps working meanwhile. */
  async retry() {
    if (this.closed || this.candidate) return;
    this.attempt++;
    this.candidate = this.connectOnce();
    try {
      const { ws, joined } = await this.candidate;
      this.candidate = null;
      if (this.closed) { ws.close(); return; }
      this.adopt(ws);
      this.onJoined?.(joined);
    } catch (err) {
      this.candidate = null;
      if (this.closed) return;
      if (err instanceof JoinRefused && !RETRYABLE.has(err.code)) {
        // E.g. the invite expired meanwhile: calls go on, signaling stays down.
        this.onStatus('closed', err);
        return;
      }
      this.onStatus(this.ws ? 'draining' : 'reconnecting', err);
      this.scheduleRetry(backoff(this.attempt));
    }
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
    clearTimeout(this.retryTimer);
    this.send({ type: 'leave' });
    this.ws?.close();
    this.onStatus('closed');
  }
}

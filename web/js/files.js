// File transfer over one ordered RTCDataChannel: 16 KiB chunks with
// bufferedAmount backpressure, progress on both sides, SHA-256 computed
// incrementally on both sides and compared on arrival. Neither side holds
// the whole file: the sender reads 1 MiB slices of the File, the receiver
// writes to the origin-private file system (or, where that is missing, to
// Blob batches that the browser may keep on disk).
//
// Wire: JSON text {t:'file', id, name, size, mime}, then binary chunks,
// then {t:'end', id, sha256}; the receiver answers {t:'ack', id, ok}. Flow
// control end to end: the receiver reports {t:'written', id, bytes} as its
// disk writes complete, and the sender keeps at most WINDOW bytes beyond
// that in flight, so a slow disk never makes the receiver buffer the file.

import { Sha256 } from './sha256.js';

export const CHUNK = 16 * 1024;
const READ = 1024 * 1024;
const HIGH_WATER = 4 * 1024 * 1024;
const LOW_WATER = 1024 * 1024;
const PROGRESS_MS = 100;
const WRITE_BATCH = 1024 * 1024;
const WINDOW = 16 * 1024 * 1024;
const MAX_NAME = 255;

let nextId = 1;

/** A transfer's public state, shown by the UI. */
function transfer(dir, id, name, size, mime) {
  return { dir, id, name, size, mime, done: 0, state: 'waiting', sha256: null, ok: null, url: null, started: performance.now() };
}

/** Where received bytes go: OPFS when available, else Blob batches. */
async function openSink(mime) {
  try {
    if (typeof navigator !== 'undefined' && navigator.storage?.getDirectory) {
      const root = await navigator.storage.getDirectory();
      const name = `recv-${Date.now()}-${Math.random().toString(36).slice(2)}`;
      const handle = await root.getFileHandle(name, { create: true });
      const writable = await handle.createWritable();
      return {
        kind: 'opfs',
        write: (chunk) => writable.write(chunk),
        finish: async () => { await writable.close(); return handle.getFile(); },
        abort: async () => { try { await writable.abort(); } catch { /* gone */ } root.removeEntry(name).catch(() => {}); },
      };
    }
  } catch (err) {
    console.info('OPFS unavailable, using Blob batches', err);
  }
  const parts = [];
  let batch = [];
  let batchBytes = 0;
  return {
    kind: 'blob',
    write: (chunk) => {
      batch.push(chunk);
      batchBytes += chunk.size ?? chunk.byteLength;
      if (batchBytes >= 8 * 1024 * 1024) {
        parts.push(new Blob(batch));
        batch = [];
        batchBytes = 0;
      }
    },
    finish: async () => new Blob([...parts, new Blob(batch)], { type: mime || 'application/octet-stream' }),
    abort: async () => { parts.length = 0; batch = []; },
  };
}

/** Removes files left in OPFS by earlier sessions (best effort). */
export async function cleanupReceived() {
  try {
    const root = await navigator.storage.getDirectory();
    for await (const name of root.keys()) {
      if (name.startsWith('recv-')) await root.removeEntry(name).catch(() => {});
    }
  } catch { /* no OPFS */ }
}

/**
 * File transfers with one peer. Dispatches 'transfer' events on `target`
 * (detail: the transfer object) whenever one starts, progresses or ends.
 */
export class FileChannel {
  constructor(dc, target) {
    this.dc = dc;
    this.target = target;
    this.outgoing = [];
    this.sending = false;
    this.rx = Promise.resolve();
    this.incoming = null;
    this.byId = new Map();
    this.unacked = new Set(); // sent, verification not yet reported
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = LOW_WATER;
    dc.onmessage = (ev) => {
      const data = ev.data;
      this.rx = this.rx.then(() => this.receive(data)).catch((err) => console.warn('file receive', err));
    };
    dc.onopen = () => this.pump();
    dc.onclose = () => this.failAll('channel closed');
  }

  emit(t) {
    const now = performance.now();
    if (t.state === 'sending' || t.state === 'receiving') {
      if (now - (t.lastEmit ?? 0) < PROGRESS_MS) return;
    }
    t.lastEmit = now;
    this.target.dispatchEvent(new CustomEvent('transfer', { detail: t }));
  }

  /** Queues `file` (a File or Blob with a name) for sending; returns its transfer. */
  send(file) {
    const t = transfer('out', `${nextId++}-${Math.random().toString(36).slice(2, 8)}`,
      (file.name || 'file').slice(0, MAX_NAME), file.size, file.type);
    t.file = file;
    this.outgoing.push(t);
    this.byId.set(t.id, t);
    this.emit(t);
    this.pump();
    return t;
  }

  async pump() {
    if (this.sending || this.dc.readyState !== 'open') return;
    this.sending = true;
    try {
      while (this.outgoing.length && this.dc.readyState === 'open') {
        const t = this.outgoing.shift();
        try {
          await this.sendOne(t);
        } catch (err) {
          t.state = 'failed';
          t.error = String(err);
          this.emit(t);
        }
      }
    } finally {
      this.sending = false;
    }
  }

  drained() {
    return new Promise((resolve) => {
      const done = () => { this.dc.removeEventListener('bufferedamountlow', done); this.dc.removeEventListener('close', done); resolve(); };
      this.dc.addEventListener('bufferedamountlow', done);
      this.dc.addEventListener('close', done);
    });
  }

  /** Resolves on the next `written` report from the receiver (or on close). */
  progressed() {
    return new Promise((resolve) => {
      const done = () => {
        this.dc.removeEventListener('close', done);
        this.onProgress = null;
        resolve();
      };
      this.onProgress = done;
      this.dc.addEventListener('close', done);
    });
  }

  async sendOne(t) {
    const dc = this.dc;
    t.written = 0;
    dc.send(JSON.stringify({ t: 'file', id: t.id, name: t.name, size: t.size, mime: t.mime }));
    t.state = 'sending';
    t.started = performance.now();
    const hash = new Sha256();
    for (let off = 0; off < t.size;) {
      const buf = new Uint8Array(await t.file.slice(off, off + READ).arrayBuffer());
      if (buf.length === 0) throw new Error('file shrank while sending');
      for (let i = 0; i < buf.length; i += CHUNK) {
        if (dc.bufferedAmount > HIGH_WATER) await this.drained();
        while (t.done - t.written > WINDOW && dc.readyState === 'open') await this.progressed();
        if (dc.readyState !== 'open') throw new Error('channel closed');
        const piece = buf.subarray(i, i + CHUNK);
        dc.send(piece);
        hash.update(piece);
        t.done += piece.length;
        this.emit(t);
      }
      off += buf.length;
    }
    t.sha256 = hash.hex();
    dc.send(JSON.stringify({ t: 'end', id: t.id, sha256: t.sha256 }));
    t.state = 'sent';
    delete t.file;
    this.unacked.add(t);
    this.emit(t);
  }

  async receive(data) {
    if (typeof data === 'string') {
      let msg;
      try { msg = JSON.parse(data); } catch { return; }
      if (msg.t === 'file') return this.beginIncoming(msg);
      if (msg.t === 'end') return this.endIncoming(msg);
      if (msg.t === 'written') {
        const t = this.byId.get(String(msg.id));
        if (t && t.dir === 'out' && Number.isFinite(msg.bytes)) t.written = Math.max(t.written ?? 0, msg.bytes);
        this.onProgress?.();
        return;
      }
      if (msg.t === 'ack') {
        const t = this.byId.get(String(msg.id));
        if (t && t.dir === 'out' && this.unacked.delete(t)) {
          t.state = msg.ok ? 'delivered' : 'corrupted';
          t.ok = !!msg.ok;
          this.emit(t);
        }
      }
      return;
    }
    const t = this.incoming;
    if (!t || t.state !== 'receiving') return;
    const bytes = new Uint8Array(data);
    if (t.done + bytes.length > t.size) {
      t.state = 'failed';
      t.error = 'more data than announced';
      await t.sink.abort();
      this.emit(t);
      return;
    }
    t.hash.update(bytes);
    t.done += bytes.length;
    t.batch.push(bytes);
    t.batchBytes += bytes.length;
    if (t.batchBytes >= WRITE_BATCH) this.flush(t);
    this.emit(t);
  }

  /** Queues the batched chunks as one disk write; reports progress when written. */
  flush(t) {
    if (!t.batchBytes) return t.writing;
    // One contiguous buffer per write: a disk write costs an IPC round trip,
    // so 16 KiB writes would cap throughput at a few MiB/s.
    const buf = new Uint8Array(t.batchBytes);
    let off = 0;
    for (const c of t.batch) { buf.set(c, off); off += c.length; }
    const end = t.done;
    t.batch = [];
    t.batchBytes = 0;
    t.writing = t.writing.then(async () => {
      if (t.error) return;
      await t.sink.write(buf);
      if (this.dc.readyState === 'open') this.dc.send(JSON.stringify({ t: 'written', id: t.id, bytes: end }));
    }).catch((err) => {
      t.error = `writing failed: ${err?.message ?? err}`;
    });
    return t.writing;
  }

  async beginIncoming(msg) {
    const size = Number(msg.size);
    if (!Number.isSafeInteger(size) || size < 0 || typeof msg.id !== 'string') return;
    const name = String(msg.name ?? 'file').replace(/[\\/\u0000-\u001f]/g, '_').slice(0, MAX_NAME) || 'file';
    const mime = typeof msg.mime === 'string' && /^[\w.+-]+\/[\w.+-]+$/.test(msg.mime) ? msg.mime : '';
    const t = transfer('in', msg.id.slice(0, 64), name, size, mime);
    t.hash = new Sha256();
    t.batch = [];
    t.batchBytes = 0;
    t.writing = Promise.resolve();
    t.sink = await openSink(mime);
    t.state = 'receiving';
    this.incoming = t;
    this.byId.set(t.id, t);
    this.emit(t);
  }

  async endIncoming(msg) {
    const t = this.incoming;
    if (!t || t.id !== msg.id || t.state !== 'receiving') return;
    this.incoming = null;
    t.sha256 = t.hash.hex();
    delete t.hash;
    await this.flush(t);
    t.ok = !t.error && t.done === t.size && t.sha256 === msg.sha256;
    if (t.ok) {
      const file = await t.sink.finish();
      t.url = URL.createObjectURL(file);
      t.state = 'verified';
    } else {
      await t.sink.abort();
      t.state = t.error ? 'failed' : 'corrupted';
    }
    t.sinkKind = t.sink.kind;
    delete t.sink;
    if (this.dc.readyState === 'open') this.dc.send(JSON.stringify({ t: 'ack', id: t.id, ok: t.ok }));
    this.emit(t);
  }

  failAll(reason) {
    for (const t of [...this.outgoing, ...this.unacked, this.incoming].filter(Boolean)) {
      t.state = 'failed';
      t.error = reason;
      t.sink?.abort();
      this.emit(t);
    }
    this.outgoing = [];
    this.unacked.clear();
    this.incoming = null;
  }

  close() {
    this.failAll('peer left');
  }
}

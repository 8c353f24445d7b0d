// The file-transfer protocol of web/js/files.js, in Node over an in-memory
// data channel pair: bytes and SHA-256 arrive intact through backpressure and
// the flow-control window, a tampered chunk is caught, and a closed channel
// fails the transfer instead of hanging. (No browser: Node has no OPFS, so
// the receiver uses its Blob fallback here; the browser tests cover OPFS.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { FileChannel, CHUNK } from '../../web/js/files.js';

/** One end of an in-memory RTCDataChannel look-alike. */
class FakeChannel extends EventTarget {
  constructor() {
    super();
    this.readyState = 'open';
    this.bufferedAmount = 0;
    this.bufferedAmountLowThreshold = 0;
    this.binaryType = 'arraybuffer';
    this.peer = null;
    this.tamper = null;
    this.sentChunks = 0;
  }

  send(data) {
    if (this.readyState !== 'open') throw new Error('InvalidStateError');
    let payload = data;
    let size = data.length;
    if (typeof data !== 'string') {
      const view = ArrayBuffer.isView(data) ? data : new Uint8Array(data);
      payload = view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
      size = payload.byteLength;
      this.sentChunks++;
      if (this.tamper) this.tamper(this.sentChunks, new Uint8Array(payload));
    }
    this.bufferedAmount += size;
    setImmediate(() => {
      const before = this.bufferedAmount;
      this.bufferedAmount -= size;
      if (before > this.bufferedAmountLowThreshold && this.bufferedAmount <= this.bufferedAmountLowThreshold) {
        this.dispatchEvent(new Event('bufferedamountlow'));
      }
      if (this.peer.readyState === 'open') this.peer.onmessage?.({ data: payload });
    });
  }

  close() {
    for (const end of [this, this.peer]) {
      if (end.readyState === 'closed') continue;
      end.readyState = 'closed';
      end.dispatchEvent(new Event('close'));
      end.onclose?.();
    }
  }
}

function pair() {
  const a = new FakeChannel();
  const b = new FakeChannel();
  a.peer = b;
  b.peer = a;
  const events = { a: new EventTarget(), b: new EventTarget() };
  return { a, b, sender: new FileChannel(a, events.a), receiver: new FileChannel(b, events.b), events };
}

/** Resolves with the first transfer event matching `pred`. */
function until(target, pred, ms = 20_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out')), ms);
    target.addEventListener('transfer', ({ detail }) => {
      if (pred(detail)) { clearTimeout(timer); resolve({ ...detail }); }
    });
  });
}

function fileOf(bytes, name) {
  const blob = new Blob([bytes], { type: 'application/octet-stream' });
  Object.defineProperty(blob, 'name', { value: name });
  return blob;
}

test('a 20 MiB file arrives intact through the window and backpressure', async () => {
  const { sender, events } = pair();
  const data = randomBytes(20 * 1024 * 1024 + 123);
  const received = until(events.b, (t) => t.dir === 'in' && (t.state === 'verified' || t.state === 'corrupted' || t.state === 'failed'));
  const delivered = until(events.a, (t) => t.dir === 'out' && (t.state === 'delivered' || t.state === 'corrupted' || t.state === 'failed'));
  sender.send(fileOf(data, 'big.bin'));
  const t = await received;
  assert.equal(t.state, 'verified');
  assert.equal(t.size, data.length);
  assert.equal(t.sha256, createHash('sha256').update(data).digest('hex'));
  assert.equal(t.name, 'big.bin');
  assert.equal((await delivered).state, 'delivered');
  // The Blob behind the download URL holds exactly the bytes.
  const back = Buffer.from(await (await fetch(t.url)).arrayBuffer());
  assert.ok(back.equals(data));
});

test('chunks are 16 KiB', async () => {
  const { a, sender, events } = pair();
  const data = randomBytes(CHUNK * 3 + 5);
  const done = until(events.b, (t) => t.dir === 'in' && t.state === 'verified');
  sender.send(fileOf(data, 'x'));
  await done;
  assert.equal(a.sentChunks, 4);
});

test('a tampered chunk is detected by SHA-256', async () => {
  const { a, sender, events } = pair();
  a.tamper = (n, bytes) => { if (n === 2) bytes[100] ^= 0xff; };
  const result = until(events.b, (t) => t.dir === 'in' && ['verified', 'corrupted'].includes(t.state));
  const told = until(events.a, (t) => t.dir === 'out' && ['delivered', 'corrupted'].includes(t.state));
  sender.send(fileOf(randomBytes(100_000), 'evil.bin'));
  assert.equal((await result).state, 'corrupted');
  assert.equal((await result).url, null);
  assert.equal((await told).state, 'corrupted');
});

test('closing the channel mid-transfer fails both sides instead of hanging', async () => {
  const { a, sender, events } = pair();
  const failedOut = until(events.a, (t) => t.dir === 'out' && t.state === 'failed');
  const failedIn = until(events.b, (t) => t.dir === 'in' && t.state === 'failed');
  a.tamper = (n) => { if (n === 50) setImmediate(() => a.close()); };
  sender.send(fileOf(randomBytes(4 * 1024 * 1024), 'cut.bin'));
  const [o, i] = await Promise.allSettled([failedOut, failedIn]);
  assert.deepEqual([o.status, i.status], ['fulfilled', 'fulfilled']);
});

test('a hostile sender cannot overrun the announced size or inject a path', async () => {
  const { a, events } = pair();
  const seen = until(events.b, (t) => t.dir === 'in' && t.state === 'failed');
  const announced = until(events.b, (t) => t.dir === 'in' && t.state === 'receiving');
  a.send(JSON.stringify({ t: 'file', id: 'x1', name: '../../etc/passwd', size: 10, mime: 'text/html; evil' }));
  const t = await announced;
  assert.equal(t.name, '.._.._etc_passwd');
  assert.equal(t.mime, '');
  a.send(new Uint8Array(11));
  assert.equal((await seen).error, 'more data than announced');
});

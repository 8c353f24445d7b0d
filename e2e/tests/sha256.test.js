// The web app's incremental SHA-256 against Node's, including the FIPS
// 180-2 vectors, random inputs split at random points, and lengths around
// the 55/56/64-byte padding boundaries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Sha256, sha256Hex } from '../../web/js/sha256.js';

const nodeHex = (buf) => createHash('sha256').update(buf).digest('hex');

test('FIPS 180-2 vectors', () => {
  assert.equal(sha256Hex(new TextEncoder().encode('abc')),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(sha256Hex(new Uint8Array(0)),
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(
    sha256Hex(new TextEncoder().encode('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
  const million = new Sha256();
  const chunk = new Uint8Array(1000).fill(0x61);
  for (let i = 0; i < 1000; i++) million.update(chunk);
  assert.equal(million.hex(), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
});

test('padding boundaries', () => {
  for (let n = 0; n <= 130; n++) {
    const buf = randomBytes(n);
    assert.equal(sha256Hex(buf), nodeHex(buf), `length ${n}`);
  }
});

test('random splits equal one-shot', () => {
  for (let round = 0; round < 50; round++) {
    const buf = randomBytes(Math.floor(Math.random() * 70000));
    const h = new Sha256();
    let off = 0;
    while (off < buf.length) {
      const n = Math.min(buf.length - off, 1 + Math.floor(Math.random() * 20000));
      h.update(buf.subarray(off, off + n));
      off += n;
    }
    assert.equal(h.hex(), nodeHex(buf));
  }
});

test('accepts ArrayBuffer and DataView, refuses reuse', () => {
  const buf = randomBytes(1000);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
  assert.equal(new Sha256().update(ab).hex(), nodeHex(buf));
  assert.equal(new Sha256().update(new DataView(ab, 10, 500)).hex(), nodeHex(buf.subarray(10, 510)));
  const h = new Sha256();
  h.digest();
  assert.throws(() => h.update(buf));
});

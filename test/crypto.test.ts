import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { blobId, deriveKey, NONCE_LEN, open, seal, SEAL_OVERHEAD, sealInto } from '../src/repo/crypto.js';
import { IntegrityError } from '../src/repo/errors.js';
import { maybeCompressSync, decompressSync } from '../src/repo/compress.js';

describe('crypto', () => {
  const key = randomBytes(32);

  it('seal/open round trips, with a fresh nonce each time', () => {
    const msg = Buffer.from('the quick brown fox');
    const a = seal(key, msg);
    const b = seal(key, msg);
    assert.equal(a.length, msg.length + SEAL_OVERHEAD);
    assert.notDeepEqual(a, b);
    assert.deepEqual(open(key, a, 'x'), msg);
    assert.deepEqual(open(key, seal(key, Buffer.alloc(0)), 'x'), Buffer.alloc(0));
  });

  it('never repeats a nonce over many seals (the nonce pool refills from the CSPRNG)', () => {
    const key = randomBytes(32);
    const out = new Uint8Array(64 + SEAL_OVERHEAD);
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const n = i % 2 === 0 ? seal(key, Buffer.from('x')).subarray(0, 12) : out.subarray(0, sealInto(key, Buffer.from('y'), out, 0)).subarray(0, 12);
      const hex = Buffer.from(n).toString('hex');
      assert.notEqual(hex, '000000000000000000000000');
      assert.ok(!seen.has(hex), `nonce ${hex} repeated after ${i} seals`);
      seen.add(hex);
    }
    assert.deepEqual(open(key, out.subarray(0, 1 + SEAL_OVERHEAD), 'blob'), Buffer.from('y'));
  });

  it('seals in place and from elsewhere alike, blobs of many cipher pieces included', () => {
    // Sizes around the 64 KiB piece the cipher takes at a time; in place, the plaintext
    // lies where the sealed blob goes (as in a chunk worker's ring).
    for (const size of [0, 1, 65_535, 65_536, 65_537, 300_000]) {
      const plain = randomBytes(size);
      const ring = Buffer.alloc(size + SEAL_OVERHEAD + 100);
      plain.copy(ring, 50);
      const inPlace = sealInto(key, ring.subarray(50, 50 + size), ring, 50);
      assert.equal(inPlace, size + SEAL_OVERHEAD);
      assert.deepEqual(open(key, ring.subarray(50, 50 + inPlace), 'in place'), plain);
      // Already where the body goes (NONCE_LEN in: the chunk workers read it there).
      const behind = Buffer.alloc(size + SEAL_OVERHEAD + 100);
      plain.copy(behind, 50 + NONCE_LEN);
      const there = sealInto(key, behind.subarray(50 + NONCE_LEN, 50 + NONCE_LEN + size), behind, 50);
      assert.deepEqual(open(key, behind.subarray(50, 50 + there), 'behind the nonce'), plain);
      const out = Buffer.alloc(size + SEAL_OVERHEAD);
      sealInto(key, plain, out, 0);
      assert.deepEqual(open(key, out, 'elsewhere'), plain);
      const withAad = seal(key, plain, Buffer.from('id'));
      assert.deepEqual(open(key, withAad, 'aad', Buffer.from('id')), plain);
      if (size > 0) assert.throws(() => open(key, Buffer.concat([withAad.subarray(0, 20), Buffer.from([withAad[20]! ^ 1]), withAad.subarray(21)]), 'flip', Buffer.from('id')), IntegrityError);
    }
  });

  it('detects tampering in nonce, body and tag, and a wrong key', () => {
    const sealed = seal(key, randomBytes(1000));
    for (const pos of [0, 11, 12, 500, sealed.length - 1]) {
      const t = Buffer.from(sealed);
      t[pos]! ^= 1;
      assert.throws(() => open(key, t, 'blob X'), (e: unknown) => e instanceof IntegrityError && /blob X/.test(e.message));
    }
    assert.throws(() => open(randomBytes(32), sealed, 'y'), IntegrityError);
    assert.throws(() => open(key, sealed.subarray(0, 10), 'short'), IntegrityError);
  });

  it('binds associated data', () => {
    const s = seal(key, Buffer.from('snap'), Buffer.from('id-1'));
    assert.deepEqual(open(key, s, 'x', Buffer.from('id-1')).toString(), 'snap');
    assert.throws(() => open(key, s, 'x', Buffer.from('id-2')), IntegrityError);
  });

  it('blob ids are keyed: the same content has different ids under different keys', () => {
    const data = Buffer.from('a known file');
    assert.equal(blobId(key, data), blobId(key, data));
    assert.notEqual(blobId(key, data), blobId(randomBytes(32), data));
    assert.match(blobId(key, data), /^[0-9a-f]{64}$/);
  });

  it('scrypt derives the same key for the same passphrase and salt, another for another passphrase', async () => {
    const salt = randomBytes(32);
    const p = { N: 1024, r: 8, p: 1 };
    const a = await deriveKey('pass', salt, p);
    assert.deepEqual(await deriveKey('pass', salt, p), a);
    assert.notDeepEqual(await deriveKey('pass2', salt, p), a);
  });

  it('compression: skipped for random data, used for text, round trips', () => {
    assert.equal(maybeCompressSync(randomBytes(1 << 20)), null);
    const text = Buffer.from('lorem ipsum dolor sit amet '.repeat(40000));
    const z = maybeCompressSync(text);
    assert.ok(z && z.length < text.length / 8);
    assert.deepEqual(decompressSync(z!, text.length), text);
    // The fast level (local disks) is read back the same way.
    const fast = maybeCompressSync(text, 'fast');
    assert.ok(fast && fast.length < text.length / 8);
    assert.deepEqual(decompressSync(fast!, text.length), text);
    assert.equal(maybeCompressSync(randomBytes(1 << 20), 'fast'), null);
  });
});

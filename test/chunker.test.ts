import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Chunker, DEFAULT_CHUNKER, gearTable, primeChunker } from '../src/repo/chunker.js';

/** Deterministic pseudo-random bytes. */
function prng(n: number, seed: number): Buffer {
  const key = Buffer.alloc(32, seed);
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

function offsets(lens: number[]): Set<number> {
  const out = new Set<number>();
  let pos = 0;
  for (const l of lens) out.add((pos += l));
  return out;
}

describe('Chunker', () => {
  const seed = Buffer.alloc(32, 7);
  const chunker = new Chunker(gearTable(seed));
  const data = prng(64 * 1024 * 1024, 1);

  it('is deterministic for one seed and covers the input exactly', () => {
    const a = chunker.chunkAll(data);
    const b = new Chunker(gearTable(Buffer.alloc(32, 7))).chunkAll(data);
    assert.deepEqual(a, b);
    assert.equal(a.reduce((s, n) => s + n, 0), data.length);
  });

  it('cuts where it always did: pinned lengths (dedup against a repository needs the same cuts in every version)', () => {
    // Measured with the byte-at-a-time loop; the scan reads two bytes a turn since.
    assert.deepEqual(chunker.chunkAll(data).slice(0, 12), [1138363, 511543, 641135, 1346889, 1134443, 1305482, 1114778, 1086398, 1322998, 1162420, 1117587, 1378579]);
    const small = new Chunker(gearTable(Buffer.alloc(32, 9)), { minSize: 64, avgBits: 8, maxSize: 1024 });
    const lens = small.chunkAll(prng(20_000, 3));
    assert.equal(lens.length, 68);
    assert.deepEqual(lens.slice(0, 20), [298, 368, 570, 587, 306, 309, 306, 128, 262, 330, 280, 282, 368, 272, 302, 277, 301, 285, 215, 381]);
  });

  it('finds the cuts of the gear hash taken one byte at a time, at every parity of start and end', () => {
    // A plain reference of the definition (FastCDC, normalized level 2) on small sizes, so
    // that odd and even offsets, the switch of masks and max-size cuts all occur often.
    const params = { minSize: 16, avgBits: 6, maxSize: 256 };
    const gear = gearTable(Buffer.alloc(32, 5));
    const c = new Chunker(gear, params);
    const maskS = (~0 << (32 - (params.avgBits + 2))) | 0;
    const maskL = (~0 << (32 - (params.avgBits - 2))) | 0;
    const reference = (buf: Uint8Array, start: number): number => {
      const n = Math.min(buf.length - start, params.maxSize);
      if (n <= params.minSize) return n;
      let h = 0;
      for (let i = params.minSize; i < n; i++) {
        h = ((h << 1) + gear[buf[start + i]!]!) | 0;
        if ((h & (i < 2 ** params.avgBits ? maskS : maskL)) === 0) return i + 1;
      }
      return n;
    };
    const bytes = prng(200_000, 4);
    for (let start = 0; start < 4000; start += 3) {
      for (const end of [bytes.length, start + 255, start + 256, start + 64, start + 65]) {
        const slice = bytes.subarray(0, Math.min(end, bytes.length));
        assert.equal(c.scan(slice, start, slice.length, true), reference(slice, start), `start ${start}, end ${end}`);
      }
    }
  });

  it('respects min and max sizes and averages near 1 MiB', () => {
    const lens = chunker.chunkAll(data);
    for (const l of lens.slice(0, -1)) {
      assert.ok(l >= DEFAULT_CHUNKER.minSize && l <= DEFAULT_CHUNKER.maxSize, String(l));
    }
    const avg = data.length / lens.length;
    assert.ok(avg > 700 * 1024 && avg < 1600 * 1024, `avg ${avg}`);
  });

  it('a different seed gives different boundaries (they do not depend on content alone)', () => {
    const other = new Chunker(gearTable(Buffer.alloc(32, 8))).chunkAll(data);
    assert.notDeepEqual(other, chunker.chunkAll(data));
  });

  it('an insert in the middle changes only the chunks near it', () => {
    const before = chunker.chunkAll(data);
    const mid = 32 * 1024 * 1024 + 12345;
    const edited = Buffer.concat([data.subarray(0, mid), randomBytes(1000), data.subarray(mid)]);
    const after = chunker.chunkAll(edited);
    const a = offsets(before);
    // Boundaries after the edit shift by the insert length.
    const b = new Set([...offsets(after)].map((o) => (o > mid ? o - 1000 : o)));
    const lost = [...a].filter((o) => !b.has(o)).length;
    assert.ok(lost <= 2, `lost ${lost} of ${a.size} boundaries`);
    // Bytes in chunks that are not shared.
    const beforeSet = new Set(before.map((_, i) => i));
    assert.ok(beforeSet.size > 30);
  });

  it('a 1-byte flip changes at most two chunks', () => {
    const before = chunker.chunkAll(data);
    const flipped = Buffer.from(data);
    flipped[10 * 1024 * 1024] ^= 0xff;
    const after = chunker.chunkAll(flipped);
    const a = offsets(before);
    const lost = [...a].filter((o) => !offsets(after).has(o)).length;
    assert.ok(lost <= 2, `lost ${lost}`);
  });

  it('handles inputs shorter than the minimum and empty input', () => {
    assert.deepEqual(chunker.chunkAll(Buffer.alloc(0)), []);
    assert.deepEqual(chunker.chunkAll(Buffer.alloc(1000)), [1000]);
  });

  it('cuts zeros at the max size (no content-defined cut in uniform data)', () => {
    const lens = chunker.chunkAll(Buffer.alloc(10 * 1024 * 1024));
    assert.equal(lens[0], DEFAULT_CHUNKER.maxSize);
  });

  it('finds the same cuts in bytes that arrive piece by piece', () => {
    // Random data, then zeros (cuts at the largest size), then a tail shorter than the minimum.
    const input = Buffer.concat([data.subarray(0, 12 * 1024 * 1024), Buffer.alloc(9 * 1024 * 1024), data.subarray(0, 1000)]);
    const whole = chunker.chunkAll(input);
    for (const piece of [1, 4096, 100_000, 256 * 1024, 3 * 1024 * 1024]) {
      assert.deepEqual(chunker.chunkPieces(input, piece), whole, `pieces of ${piece}`);
    }
    assert.equal(chunker.scan(input, 0, DEFAULT_CHUNKER.minSize, false), 0, 'not the end of the file: more is needed');
    assert.equal(chunker.scan(input, 0, 100, true), 100, 'at the end of the file, what is left is one chunk');
  });

  it('primes its scan on tiny chunks, fed whole and in pieces, with the same cuts', () => {
    const { whole, byPiece } = primeChunker(gearTable(seed));
    assert.equal(whole.reduce((s, n) => s + n, 0), 16 * 1024);
    assert.equal(Math.max(...whole), 21, 'some cut at the largest size (21 bytes), none after it');
    assert.ok(whole.some((n) => n < 16), 'some cut before the average');
    for (const lens of byPiece) assert.deepEqual(lens, whole);
  });

  it('measures throughput (reported, not asserted)', () => {
    const t = performance.now();
    chunker.chunkAll(data);
    const mbs = data.length / 1048576 / ((performance.now() - t) / 1000);
    console.log(`# chunker: ${mbs.toFixed(0)} MB/s on random data`);
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { BlobIndex } from '../src/repo/blob-index.js';
import { decodeIndex, encodeIndex, loadIndexInto, type PackEntry } from '../src/repo/pack.js';

describe('BlobIndex', () => {
  it('adds, finds and keeps the first location of an id', () => {
    const idx = new BlobIndex();
    const ids = Array.from({ length: 5000 }, () => randomBytes(32).toString('hex'));
    ids.forEach((id, i) => idx.add(id, { pack: `p${i % 7}`, type: i % 2 ? 'tree' : 'data', offset: i, length: i * 2, rawLength: i * 3, compressed: i % 3 === 0 }));
    assert.equal(idx.size, 5000);
    ids.forEach((id, i) => {
      assert.deepEqual(idx.get(id), { pack: `p${i % 7}`, type: i % 2 ? 'tree' : 'data', offset: i, length: i * 2, rawLength: i * 3, compressed: i % 3 === 0 });
    });
    assert.equal(idx.add(ids[0]!, { pack: 'other', type: 'data', offset: 1, length: 1, rawLength: 1, compressed: false }), false);
    assert.equal(idx.get(ids[0]!)!.pack, 'p0');
    assert.equal(idx.has(randomBytes(32).toString('hex')), false);
    assert.equal(idx.has('zz'), false);
    // The same lookups on ids in bytes, inside a larger buffer (as in a file cache row).
    const row = Buffer.concat([Buffer.from([9, 9, 9]), Buffer.from(ids[42]!, 'hex'), randomBytes(32)]);
    assert.equal(idx.hasAt(row, 3, 32), true);
    assert.equal(idx.hasAt(row, 35, 32), false, 'an id not in the index');
    assert.equal(idx.hasAt(row, 3, 31), false, 'not an id: wrong length');
    assert.equal(idx.hasAt(row, 40, 32), false, 'not an id: past the end');
  });

  it('index objects round trip', () => {
    const entries: PackEntry[] = [
      { id: randomBytes(32).toString('hex'), type: 'data', offset: 0, length: 100, rawLength: 200, compressed: true },
      { id: randomBytes(32).toString('hex'), type: 'tree', offset: 100, length: 50, rawLength: 22, compressed: false },
    ];
    const packs = [{ name: randomBytes(32).toString('hex'), size: 4000, entries }];
    const got: unknown[] = [];
    decodeIndex(encodeIndex(packs), (name, size, es) => got.push({ name, size, entries: es }));
    assert.deepEqual(got, packs);
  });

  it('index objects load straight into a BlobIndex; a truncated one adds nothing', () => {
    const entries: PackEntry[] = Array.from({ length: 50 }, (_, i) => ({
      id: randomBytes(32).toString('hex'),
      type: i % 5 === 0 ? 'tree' : 'data',
      offset: i * 1000,
      length: 900 + i,
      rawLength: 2000 + i,
      compressed: i % 2 === 0,
    }));
    const packs = [
      { name: randomBytes(32).toString('hex'), size: 40_000, entries: entries.slice(0, 30) },
      { name: randomBytes(32).toString('hex'), size: 30_000, entries: entries.slice(30) },
    ];
    const bytes = encodeIndex(packs);
    const idx = new BlobIndex();
    loadIndexInto(bytes, idx);
    assert.equal(idx.size, 50);
    for (const p of packs) {
      assert.equal(idx.packSize(p.name), p.size);
      for (const { id, ...loc } of p.entries) assert.deepEqual(idx.get(id), { ...loc, pack: p.name });
    }
    const other = new BlobIndex();
    assert.throws(() => loadIndexInto(bytes.subarray(0, bytes.length - 10), other), /truncated/);
    assert.equal(other.size, 0);
    const badType = Buffer.from(bytes);
    badType[9 + 40] = 7; // the first entry's type byte
    assert.throws(() => loadIndexInto(badType, other), /bad blob type/);
    assert.equal(other.size, 0);
  });

  it('1M entries: memory estimate (printed, not asserted by time)', () => {
    v8.setFlagsFromString('--expose_gc');
    const gc = vm.runInNewContext('gc') as () => void;
    gc();
    const ids = randomBytes(32 * 1_000_000);
    const before = process.memoryUsage();
    const idx = new BlobIndex();
    const t = performance.now();
    for (let i = 0; i < 1_000_000; i++) {
      idx.add(ids.subarray(i * 32, i * 32 + 32), { pack: `pack${i >> 12}`, type: 'data', offset: i, length: 1 << 20, rawLength: 1 << 20, compressed: false });
    }
    const ms = performance.now() - t;
    gc();
    const afterMem = process.memoryUsage();
    const mb = (afterMem.heapUsed + afterMem.arrayBuffers - before.heapUsed - before.arrayBuffers) / 1048576;
    console.log(`# index: 1M blobs, typed arrays ${(idx.byteSize / 1048576).toFixed(1)} MiB, heap+arrayBuffers delta ${mb.toFixed(1)} MiB, built in ${ms.toFixed(0)} ms`);
    assert.equal(idx.size, 1_000_000);
    assert.ok(idx.byteSize < 150 * 1048576);
  });
});

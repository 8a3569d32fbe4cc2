import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ByteRing, type RingBlock } from '../src/repo/byte-ring.js';

describe('ByteRing', () => {
  it('hands out blocks in order and refuses when full', () => {
    const r = new ByteRing(10);
    const a = r.alloc(4)!;
    const b = r.alloc(4)!;
    assert.equal(a.start, 0);
    assert.equal(b.start, 4);
    assert.equal(r.alloc(3), null, 'only 2 bytes left at the end, none before the oldest block');
    assert.equal(r.used, 8);
    assert.ok(r.alloc(2));
  });

  it('reclaims space from the oldest end only, then wraps', () => {
    const r = new ByteRing(10);
    const a = r.alloc(4)!;
    const b = r.alloc(4)!;
    r.free(b);
    assert.equal(r.alloc(4), null, 'a (the oldest) still holds the ring');
    r.free(a);
    assert.equal(r.used, 0);
    const c = r.alloc(10)!;
    assert.equal(c.start, 0, 'an empty ring starts over');
  });

  it('wraps to the start when the end has no room and keeps blocks apart', () => {
    const r = new ByteRing(10);
    const a = r.alloc(4)!;
    const b = r.alloc(4)!;
    r.free(a);
    const c = r.alloc(4)!;
    assert.equal(c.start, 0, 'wrapped into the space a gave back');
    assert.equal(r.alloc(1), null, 'between c and b nothing is free');
    b.bytes.fill(2);
    c.bytes.fill(3);
    assert.deepEqual([...b.bytes], [2, 2, 2, 2], 'c did not overwrite b');
  });

  it('goes back to the start as soon as a block fits before the oldest one', () => {
    const r = new ByteRing(20);
    const a = r.alloc(4)!;
    const b = r.alloc(4)!;
    r.free(a);
    const big = r.alloc(5)!;
    assert.equal(big.start, 8, 'does not fit before b (the oldest): after it');
    const c = r.alloc(4)!;
    assert.equal(c.start, 0, 'fits before b: at the start, though the end has room');
    assert.equal(r.alloc(1), null, 'between c and b nothing is free');
    assert.equal(b.start, 4);
  });

  it('never lets live blocks overlap under random use', () => {
    const r = new ByteRing(1000);
    const live: RingBlock[] = [];
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    let newest: RingBlock | null = null;
    for (let i = 0; i < 5000; i++) {
      if (live.length > 0 && rand(3) === 0) {
        const gone = live.splice(rand(live.length), 1)[0]!;
        r.free(gone);
        if (gone === newest) newest = null;
        continue;
      }
      if (newest && rand(3) === 0) {
        // Resize the newest block, as a chunk worker grows a chunk being read.
        const grown = r.resize(newest, 1 + rand(300));
        if (!grown) continue;
        live.splice(live.indexOf(newest), 1);
        for (const o of live) assert.ok(grown.start + grown.bytes.length <= o.start || o.start + o.bytes.length <= grown.start, 'overlap after resize');
        live.push((newest = grown));
        continue;
      }
      const b = r.alloc(1 + rand(200));
      if (!b) continue;
      for (const o of live) assert.ok(b.start + b.bytes.length <= o.start || o.start + o.bytes.length <= b.start, 'overlap');
      live.push((newest = b));
    }
    assert.equal(r.used, live.reduce((n, b) => n + b.bytes.length, 0));
  });

  it('resizes the newest block in place, and moves it when the space after it is taken, keeping its bytes', () => {
    const r = new ByteRing(10);
    const a = r.alloc(3)!;
    let b = r.alloc(2)!;
    b.bytes.set([1, 2]);
    b = r.resize(b, 5)!;
    assert.equal(b.start, 3, 'grown in place');
    assert.deepEqual([...b.bytes.subarray(0, 2)], [1, 2]);
    assert.equal(r.used, 8);
    b = r.resize(b, 4)!;
    assert.equal(r.used, 7, 'shrunk in place');
    assert.equal(r.resize(b, 8), null, 'no room after it, none before the oldest block');
    assert.equal(b.bytes.length, 4, 'a refused resize leaves the block as it was');
    r.free(a);
    b.bytes.set([5, 6, 7, 8]);
    const alone = r.resize(b, 8, 2)!;
    assert.equal(alone.start, 0, 'the only block: moved to the start');
    assert.deepEqual([...alone.bytes.subarray(0, 2)], [5, 6], 'the bytes asked for were kept');
    assert.equal(r.used, 8);
    const c = r.alloc(2)!;
    assert.throws(() => r.resize(alone, 9), RangeError, 'only the newest block');
    r.free(alone);
    r.free(c);

    const q = new ByteRing(12);
    const x = q.alloc(6)!;
    q.alloc(1);
    const z = q.alloc(3)!;
    z.bytes.set([7, 8, 9]);
    q.free(x);
    const moved = q.resize(z, 6, 3)!;
    assert.equal(moved.start, 0, 'moved into the space before the oldest block');
    assert.deepEqual([...moved.bytes.subarray(0, 3)], [7, 8, 9]);
    assert.equal(q.used, 7, 'the old place was given back');
  });

  it('rejects sizes it can never hold', () => {
    assert.throws(() => new ByteRing(8).alloc(9), RangeError);
    assert.throws(() => new ByteRing(8).alloc(0), RangeError);
  });

  it('hands out blocks of shared memory given to it (what another thread sees)', () => {
    const memory = new SharedArrayBuffer(16);
    const r = new ByteRing(16, memory);
    const a = r.alloc(4)!;
    const b = r.alloc(4)!;
    a.bytes.fill(7);
    b.bytes.fill(9);
    assert.deepEqual([...new Uint8Array(memory, 0, 8)], [7, 7, 7, 7, 9, 9, 9, 9]);
    assert.throws(() => new ByteRing(32, memory), RangeError, 'memory smaller than the capacity');
  });
});

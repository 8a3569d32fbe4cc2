import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { systemClock } from '../src/node/clock.js';
import { LocalStore } from '../src/store/local-store.js';
import { MemoryStore } from '../src/store/memory-store.js';
import type { Store } from '../src/store/store.js';
import { chainThrottle, throttleStore } from '../src/store/throttled-store.js';
import { TokenBucket } from '../src/store/token-bucket.js';
import { FakeClock } from './helpers/fake-clock.js';
import { PacedSink } from './helpers/paced-sink.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Runs `work` while moving the fake clock in 5 ms steps until it settles. */
async function drive<T>(clock: FakeClock, work: Promise<T>, maxMs = 60_000): Promise<T> {
  let done = false;
  const p = work.finally(() => (done = true));
  for (let t = 0; !done && t < maxMs; t += 5) await clock.advance(5);
  return p;
}

test('a large write is fed through in slices: every 100 ms ≤ 1.2× the limit after the first second, 10 s within 1%', async () => {
  const clock = new FakeClock(0);
  const rate = 256 * KiB;
  const sink = new PacedSink(clock);
  const store = throttleStore(sink, chainThrottle(() => [bucket]));
  const bucket = new TokenBucket(clock, rate);
  await drive(clock, store.write('data/big', Buffer.alloc(rate * 12)));
  assert.ok(sink.sends.length > 500, 'many small slices, not one burst');
  for (let t = 1000; t + 100 <= 11_000; t += 5) {
    assert.ok(sink.bytesIn(t, t + 100) <= rate * 0.1 * 1.2, `100 ms at ${t}: ${sink.bytesIn(t, t + 100)}`);
  }
  const ratio = sink.bytesIn(1000, 11_000) / (rate * 10);
  assert.ok(Math.abs(ratio - 1) < 0.01, `10 s ratio ${ratio}`);
});

test('the effective limit is the lowest of the chain, and every level counts the bytes', async () => {
  const clock = new FakeClock(0);
  const node = new TokenBucket(clock, 1 * MiB);
  const job = new TokenBucket(clock, 100 * KiB);
  const sink = new PacedSink(clock);
  const store = throttleStore(sink, chainThrottle(() => [job, node]));
  await drive(clock, store.write('data/x', Buffer.alloc(300 * KiB)));
  const last = sink.sends[sink.sends.length - 1]!.at;
  assert.ok(last >= 2900 && last <= 3000, `300 KiB at 100 KiB/s took ${last} ms`);
  assert.ok(node.takeDuration(0) === 0 && job.sliceBytes() < node.sliceBytes());
});

test('two writers sharing the node bucket get a fair half each', async () => {
  const clock = new FakeClock(0);
  const node = new TokenBucket(clock, 1 * MiB);
  const sink = new PacedSink(clock);
  const a = throttleStore(sink, chainThrottle(() => [node]));
  const b = throttleStore(sink, chainThrottle(() => [node]));
  const writeMany = async (store: Store, prefix: string) => {
    for (let i = 0; clock.nowMs() < 11_000; i++) await store.write(`${prefix}/${i}`, Buffer.alloc(300 * KiB));
  };
  await drive(clock, Promise.all([writeMany(a, 'a'), writeMany(b, 'b')]));
  const aBytes = sink.bytesIn(1000, 11_000, 'a/');
  const bBytes = sink.bytesIn(1000, 11_000, 'b/');
  const share = aBytes / (aBytes + bBytes);
  assert.ok(Math.abs(share - 0.5) < 0.02, `share of a: ${share}`);
  assert.ok(Math.abs((aBytes + bBytes) / (10 * MiB) - 1) < 0.02, `total ${(aBytes + bBytes) / MiB} MiB in 10 s`);
});

test('a store that ignores pacing is paced after the fact', async () => {
  const clock = new FakeClock(0);
  const bucket = new TokenBucket(clock, 100 * KiB);
  let counted = 0;
  const store = throttleStore(new MemoryStore(), chainThrottle(() => [bucket], { onSent: (n) => (counted += n) }));
  await drive(clock, store.write('data/a', Buffer.alloc(200 * KiB)));
  assert.equal(counted, 200 * KiB);
  assert.ok(clock.nowMs() >= 1950, `paid 2 s for 200 KiB: ${clock.nowMs()}`);
  assert.deepEqual(await store.read('data/a'), Buffer.alloc(200 * KiB));
});

test('a pack file adopted by a local store is paid for like a write of its size, then published', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'nj-throttle-'));
  try {
    const clock = new FakeClock(0);
    const bucket = new TokenBucket(clock, 100 * KiB);
    let counted = 0;
    const checked: [string, number][] = [];
    const throttle = { ...chainThrottle(() => [bucket], { onSent: (n) => (counted += n) }), beforeWrite: async (name: string, size: number) => void checked.push([name, size]) };
    const store = throttleStore(new LocalStore(dir), throttle);
    assert.ok(store.spool, 'a local store offers its spool through the throttle');
    const file = join(store.spool.dir, '.nj-tmp-pack-test');
    await writeFile(file, Buffer.alloc(300 * KiB, 5));
    await drive(clock, store.spool.adopt('data/ab/abcd', file));
    assert.deepEqual(checked, [['data/ab/abcd', 300 * KiB]], 'the budget was asked first');
    assert.equal(counted, 300 * KiB);
    assert.ok(clock.nowMs() >= 1950, `paid ~3 s (first 100 KiB burst) for 300 KiB: ${clock.nowMs()}`);
    assert.deepEqual(await store.read('data/ab/abcd'), Buffer.alloc(300 * KiB, 5));
    await assert.rejects(stat(file), { code: 'ENOENT' }, 'the prepared file is gone');
    assert.ok(!(new MemoryStore() as Store).spool, 'stores without files have no spool');
    assert.ok(!throttleStore(new MemoryStore(), throttle).spool);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('integration: uploading to a local: target at 1 MiB/s for ~3 s achieves the limit (±25%)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'nj-throttle-'));
  try {
    const rate = 1 * MiB;
    const bucket = new TokenBucket(systemClock, rate);
    const store = throttleStore(new LocalStore(dir), chainThrottle(() => [bucket]));
    const started = systemClock.nowMs();
    let sent = 0;
    for (let i = 0; systemClock.nowMs() - started < 3000; i++) {
      await store.write(`data/${i}`, Buffer.alloc(256 * KiB, i));
      sent += 256 * KiB;
    }
    const seconds = (systemClock.nowMs() - started) / 1000;
    const ratio = sent / seconds / rate;
    assert.ok(ratio > 0.75 && ratio < 1.25, `achieved ${(sent / seconds / MiB).toFixed(3)} MiB/s`);
    assert.equal((await new LocalStore(dir).stat('data/0'))?.size, 256 * KiB);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

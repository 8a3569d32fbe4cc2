import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenBucket } from '../src/store/token-bucket.js';
import { FakeClock } from './helpers/fake-clock.js';

const KiB = 1024;

test('at 1000 B/s, taking 500 B beyond the burst requires waiting 0.5 s', () => {
  const clock = new FakeClock(0);
  const bucket = new TokenBucket(clock, 1000);
  const burst = bucket.burstBytes();
  assert.equal(bucket.takeDuration(burst), 0, 'the burst allowance is free');
  assert.equal(bucket.takeDuration(500), 500);
  assert.equal(bucket.takeDuration(500), 1000, 'debt accumulates');
});

test('tokens refill with time, up to the burst size only', async () => {
  const clock = new FakeClock(0);
  const bucket = new TokenBucket(clock, 100 * KiB);
  bucket.takeDuration(bucket.burstBytes());
  await clock.advance(60_000); // a long idle time must not bank a minute of tokens
  const burst = bucket.burstBytes();
  assert.equal(bucket.takeDuration(burst), 0);
  assert.equal(bucket.takeDuration(10 * KiB), 100);
});

test('a rate change applies immediately to the next take', () => {
  const clock = new FakeClock(0);
  const bucket = new TokenBucket(clock, 1000);
  bucket.takeDuration(bucket.burstBytes());
  bucket.setRate(4000);
  assert.equal(bucket.takeDuration(2000), 500);
  bucket.setRate(null);
  assert.equal(bucket.takeDuration(10_000_000), 0, 'off means no limit');
  assert.equal(bucket.bytesPerSecond, null);
});

test('sending in slices keeps every 100 ms within 1.15× and 10 s within 1% of the limit', async () => {
  const clock = new FakeClock(0);
  const rate = 256 * KiB;
  const bucket = new TokenBucket(clock, rate);
  const sentAt: Array<[number, number]> = [];
  const total = rate * 12;
  for (let sent = 0; sent < total; ) {
    const n = Math.min(bucket.sliceBytes(), total - sent);
    await clock.advance(bucket.takeDuration(n)); // what take() would sleep
    sentAt.push([clock.nowMs(), n]);
    sent += n;
  }
  const bytesIn = (from: number, to: number) => sentAt.filter(([t]) => t >= from && t < to).reduce((a, [, n]) => a + n, 0);
  for (let t = 1000; t + 100 <= 11_000; t += 10) assert.ok(bytesIn(t, t + 100) <= rate * 0.1 * 1.15, `100 ms at ${t}`);
  const tenSeconds = bytesIn(1000, 11_000);
  assert.ok(Math.abs(tenSeconds / (rate * 10) - 1) < 0.01, `10 s ratio ${tenSeconds / (rate * 10)}`);
});

test('take() waits exactly, and a limit changed mid-wait re-times the waiting caller', async () => {
  const clock = new FakeClock(0);
  const bucket = new TokenBucket(clock, 1000);
  await bucket.take(bucket.burstBytes()); // the burst
  let doneAt = -1;
  void bucket.take(1000).then(() => (doneAt = clock.nowMs()));
  await clock.advance(400);
  assert.equal(doneAt, -1, 'still waiting at 0.4 s of 1 s');
  bucket.setRate(10_000); // 400 bytes were earned at the old rate; 600 more take 60 ms now
  await clock.advance(59);
  assert.equal(doneAt, -1);
  await clock.advance(1);
  assert.equal(doneAt, 460);
});

test('take() serves concurrent callers first come, first served and honours abort', async () => {
  const clock = new FakeClock(0);
  const bucket = new TokenBucket(clock, 1000);
  await bucket.take(bucket.burstBytes());
  const order: string[] = [];
  const abort = new AbortController();
  const a = bucket.take(100).then(() => order.push('a'));
  const b = bucket.take(100, abort.signal).then(
    () => order.push('b'),
    (err: Error) => order.push(`b:${err.name}`),
  );
  const c = bucket.take(100).then(() => order.push('c'));
  assert.equal(bucket.waiting, 3);
  abort.abort();
  await clock.advance(100);
  assert.deepEqual(order, ['b:AbortError', 'a']);
  await clock.advance(100);
  await Promise.all([a, b, c]);
  assert.deepEqual(order, ['b:AbortError', 'a', 'c'], 'the aborted caller took nothing: c needed only 200 ms');
});

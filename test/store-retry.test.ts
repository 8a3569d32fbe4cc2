import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStore } from '../src/store/memory-store.js';
import { withRetry, isTransient } from '../src/store/retrying-store.js';
import { NotFoundError, StoreError, type Store } from '../src/store/store.js';
import { FakeClock } from './helpers/fake-clock.js';

/** A store whose calls fail transiently a given number of times first. */
function flaky(inner: Store, failures: number, makeError = () => new StoreError('503 Slow Down')): Store & { calls: number } {
  let left = failures;
  const wrap =
    <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      flakyStore.calls++;
      if (left-- > 0) throw makeError();
      return fn(...a);
    };
  const flakyStore = {
    calls: 0,
    location: inner.location,
    list: inner.list.bind(inner),
    stat: wrap(inner.stat.bind(inner)),
    read: wrap(inner.read.bind(inner)),
    write: wrap(inner.write.bind(inner)),
    delete: wrap(inner.delete.bind(inner)),
    close: inner.close.bind(inner),
  };
  return flakyStore;
}

test('transient failures are retried with growing, capped waits and then succeed', async () => {
  const clock = new FakeClock('2026-01-01T00:00:00Z');
  const mem = new MemoryStore();
  const inner = flaky(mem, 3);
  const waits: number[] = [];
  const store = withRetry(inner, { clock, random: () => 0.999, baseDelayMs: 100, maxDelayMs: 300, onRetry: (_e, _n, ms) => waits.push(ms) });
  const done = store.write('data/x', Buffer.from('hello'));
  await clock.advance(10_000);
  await done;
  assert.deepEqual(waits, [100, 200, 300]);
  assert.equal(inner.calls, 4);
  assert.equal((await mem.read('data/x')).toString(), 'hello');
});

test('permanent errors are not retried', async () => {
  const clock = new FakeClock(0);
  const inner = flaky(new MemoryStore(), 1, () => new NotFoundError('mem', 'data/y'));
  const store = withRetry(inner, { clock });
  await assert.rejects(store.read('data/y'), NotFoundError);
  assert.equal(inner.calls, 1);
});

test('gives up after maxAttempts with the last error', async () => {
  const clock = new FakeClock(0);
  const inner = flaky(new MemoryStore(), 100);
  const store = withRetry(inner, { clock, maxAttempts: 3, baseDelayMs: 10 });
  const p = assert.rejects(store.stat('data/z'), /Slow Down/);
  await clock.advance(1000);
  await p;
  assert.equal(inner.calls, 3);
});

test('Retry-After on an error sets the minimum wait', async () => {
  const clock = new FakeClock(0);
  const inner = flaky(new MemoryStore(), 1, () => Object.assign(new StoreError('429'), { retryAfterMs: 5000 }));
  const waits: number[] = [];
  const store = withRetry(inner, { clock, random: () => 0, onRetry: (_e, _n, ms) => waits.push(ms) });
  const p = store.stat('data/a');
  await clock.advance(6000);
  assert.equal(await p, null);
  assert.deepEqual(waits, [5000]);
});

test('network error codes count as transient, programming errors do not', () => {
  assert.equal(isTransient(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), true);
  assert.equal(isTransient(new TypeError('bug')), false);
  assert.equal(isTransient(new StoreError('io')), true);
});

test('a write whose answer was lost but which landed succeeds on retry; a different object of that name still fails', async () => {
  const clock = new FakeClock(0);
  const mem = new MemoryStore();
  let lose = true;
  const lossy: Store = {
    ...mem,
    location: mem.location,
    list: mem.list.bind(mem),
    stat: mem.stat.bind(mem),
    read: mem.read.bind(mem),
    delete: mem.delete.bind(mem),
    close: mem.close.bind(mem),
    write: async (name, data) => {
      await mem.write(name, data);
      if (lose) {
        lose = false;
        throw new StoreError('connection reset after upload');
      }
    },
  };
  const store = withRetry(lossy, { clock, random: () => 0 });
  const p = store.write('data/landed', Buffer.from('abc'));
  await clock.advance(1000);
  await p;
  await mem.write('data/other', Buffer.from('theirs'));
  lose = true;
  const q = assert.rejects(store.write('data/other', Buffer.from('mine!!')), /already exists/);
  await clock.advance(1000);
  await q;
});

import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { describe, it } from 'node:test';
import { RepoLockedError } from '../src/repo/errors.js';
import { Repository, type RepoOptions } from '../src/repo/repository.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { FakeClock } from './helpers/fake-clock.js';

const T0 = '2025-03-01T12:00:00Z';
const base = (clock: FakeClock, host: string, extra: Partial<RepoOptions> = {}): RepoOptions => ({
  clock, hostname: host, workers: 1, kdf: { N: 1024, r: 8, p: 1 }, ...extra,
});

async function lockNames(store: MemoryStore): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list('locks/')) out.push(o.name);
  return out;
}

describe('Repository locks', () => {
  it('shared locks coexist; an exclusive lock conflicts with any other; release removes the object', async () => {
    const store = new MemoryStore();
    const clock = new FakeClock(T0);
    const a = await Repository.init(store, 'pw', base(clock, 'host-a'));
    const b = await Repository.open(store, 'pw', base(clock, 'host-b'));
    const la = await a.lock(false);
    const lb = await b.lock(false);
    await assert.rejects(b.lock(true), (e: unknown) => e instanceof RepoLockedError && /locked by host-a|locked by host-b/.test(e.message));
    await la.release();
    await lb.release();
    await lb.release(); // idempotent
    assert.deepEqual(await lockNames(store), []);
    const x = await a.lock(true);
    await assert.rejects(b.lock(false), (e: unknown) => e instanceof RepoLockedError && /exclusively by host-a/.test(e.message));
    await x.release();
    await a.close();
    await b.close();
  });

  it('sharedLock: a backup lock is taken while opening, handed over once, released by close when never taken', async () => {
    const store = new MemoryStore();
    const clock = new FakeClock(T0);
    const a = await Repository.init(store, 'pw', base(clock, 'host-a'));
    const b = await Repository.open(store, 'pw', base(clock, 'host-b', { sharedLock: true }));
    assert.equal((await lockNames(store)).length, 1);
    const held = b.takeOpeningLock();
    assert.ok(held && !held.exclusive);
    assert.equal(b.takeOpeningLock(), null);
    await assert.rejects(a.lock(true), (e: unknown) => e instanceof RepoLockedError && /locked by host-b/.test(e.message));
    await held.release();
    assert.deepEqual(await lockNames(store), []);

    const c = await Repository.open(store, 'pw', base(clock, 'host-c', { sharedLock: true }));
    assert.equal((await lockNames(store)).length, 1);
    await c.close();
    assert.deepEqual(await lockNames(store), []);

    // An exclusive lock (prune) refuses the open, which leaves no lock and no open repository behind.
    const x = await a.lock(true);
    await assert.rejects(Repository.open(store, 'pw', base(clock, 'host-d', { sharedLock: true })), (e: unknown) => e instanceof RepoLockedError && /exclusively by host-a/.test(e.message));
    assert.equal((await lockNames(store)).length, 1);
    await x.release();
    await a.close();
    await b.close();
  });

  it('a lock not refreshed for 30 min is stale and removed; a refreshed one is not', async () => {
    const store = new MemoryStore();
    const deadClock = new FakeClock(T0); // never advanced: its holder "crashed" and never refreshes
    const liveClock = new FakeClock(T0);
    const dead = await Repository.init(store, 'pw', base(deadClock, 'host-dead'));
    const other = await Repository.open(store, 'pw', base(liveClock, 'host-live'));
    await dead.lock(true);
    await assert.rejects(other.lock(false), RepoLockedError);
    await liveClock.advance(29 * 60 * 1000);
    await assert.rejects(other.lock(false), RepoLockedError);
    await liveClock.advance(2 * 60 * 1000);
    const l = await other.lock(true);
    assert.equal((await lockNames(store)).length, 1);

    // The live holder refreshes every 5 min: after 40 min its lock is still fresh for a third instance.
    const third = await Repository.open(store, 'pw', base(new FakeClock(liveClock.nowMs() + 40 * 60 * 1000), 'host-3'));
    await liveClock.advance(40 * 60 * 1000);
    await assert.rejects(third.lock(false), RepoLockedError);
    assert.equal((await lockNames(store)).length, 1);
    await l.release();
    assert.deepEqual(await lockNames(store), []);
    await Promise.all([dead.close(), other.close(), third.close()]);
  });

  it('a lock of a dead process on the same host is stale at once', async () => {
    const store = new MemoryStore();
    const clock = new FakeClock(T0);
    const ghost = await Repository.init(store, 'pw', base(clock, hostname(), { pid: 2 ** 22 + 4321 }));
    await ghost.lock(true);
    const me = await Repository.open(store, 'pw', base(clock, hostname()));
    const l = await me.lock(true);
    assert.equal((await lockNames(store)).length, 1);
    await l.release();
    await Promise.all([ghost.close(), me.close()]);
  });
});

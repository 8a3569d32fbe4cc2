import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../src/node/clock.js';
import { FingerprintMismatchError, NodeObjectExistsError, openNodeStore, type NodeStore } from '../src/store/node-store.js';
import { withRetry } from '../src/store/retrying-store.js';
import { StoreError } from '../src/store/store.js';
import { runStoreContract } from './helpers/store-contract.js';
import { startStorageFixture, type StorageFixture } from './helpers/storage-node.js';

const clock = systemClock;

for (const listen of ['127.0.0.1', '::1']) {
  runStoreContract(`node (https on ${listen}, pinned fingerprint)`, async () => {
    // The contract deletes objects, so this client is not append-only.
    const fx = await startStorageFixture({ storage: [`listen = ${listen}`], clients: ['peer.append_only = false'] });
    assert.ok(fx.service.url.startsWith(listen === '::1' ? 'https://[::1]:' : 'https://127.0.0.1:'));
    const { token } = await fx.addClient('peer');
    const store = await openNodeStore(await fx.target('home', token), { clock, pageSize: 64 });
    return { store, cleanup: () => fx.cleanup() };
  });
}

describe('node: target against a real storage service', () => {
  let fx: StorageFixture;
  let token: string;
  before(async () => {
    fx = await startStorageFixture({ storage: ['max_object_size = 64KiB'], clients: ['small.quota = 10KiB'] });
    ({ token } = await fx.addClient('peer'));
  });
  after(() => fx.cleanup());

  it('refuses a peer whose certificate does not match the pinned fingerprint, permanently, naming the alias', async () => {
    const store = await openNodeStore(await fx.target('parents', token, 'ab'.repeat(32)), { clock });
    try {
      await assert.rejects(store.stat('config'), (e: unknown) => {
        assert.ok(e instanceof FingerprintMismatchError, String(e));
        assert.equal(e.permanent, true);
        assert.equal(e.code, 'NJ_STORE_FINGERPRINT');
        assert.match(e.message, /"parents"/);
        assert.match(e.message, /parents\.fingerprint/);
        return true;
      });
      // The retry decorator gives up at once.
      const retried = withRetry(store, { clock, baseDelayMs: 1000 });
      const t0 = clock.nowMs();
      await assert.rejects(retried.write('data/x', Buffer.from('x')), FingerprintMismatchError);
      assert.ok(clock.nowMs() - t0 < 900);
    } finally {
      await store.close();
    }
  });

  it('a wrong token is a permanent NJ_STORE_AUTH error after the service\'s delay', async () => {
    const store = await openNodeStore(await fx.target('parents', 'x'.repeat(43)), { clock });
    const t0 = clock.nowMs();
    try {
      await assert.rejects(store.stat('config'), (e: unknown) => {
        assert.ok(e instanceof StoreError);
        assert.equal(e.code, 'NJ_STORE_AUTH');
        assert.equal(e.permanent, true);
        assert.match(e.message, /parents\.token_file/);
        assert.doesNotMatch(e.message, /xxxxxxxx/);
        return true;
      });
      assert.ok(clock.nowMs() - t0 >= 900);
    } finally {
      await store.close();
    }
  });

  it('maps append-only, size and quota refusals to permanent errors with the peer\'s message', async () => {
    const store = await openNodeStore(await fx.target('p', token), { clock });
    const { token: smallToken } = await fx.addClient('small');
    const small = await openNodeStore(await fx.target('p', smallToken), { clock });
    try {
      await store.write('data/aa/one', Buffer.from('one'));
      await assert.rejects(store.delete('data/aa/one'), (e: unknown) => {
        assert.ok(e instanceof StoreError);
        assert.equal(e.code, 'NJ_STORE_FORBIDDEN');
        assert.equal(e.permanent, true);
        assert.match(e.message, /append-only/);
        return true;
      });
      await store.write('locks/l1', Buffer.from('lock'));
      await store.delete('locks/l1'); // own locks may always be removed
      assert.equal(await store.stat('locks/l1'), null);
      await assert.rejects(store.write('data/big', randomBytes(65 * 1024)), (e: unknown) => {
        assert.ok(e instanceof StoreError);
        assert.equal(e.code, 'NJ_STORE_TOO_LARGE');
        assert.equal(e.permanent, true);
        return true;
      });
      await small.write('data/a', randomBytes(8 * 1024));
      await assert.rejects(small.write('data/b', randomBytes(4 * 1024)), (e: unknown) => {
        assert.ok(e instanceof StoreError);
        assert.equal(e.code, 'NJ_STORE_QUOTA');
        assert.equal(e.permanent, true);
        assert.match(e.message, /quota exceeded: client "small" stores 8 KiB of its 10 KiB quota/);
        return true;
      });
      const info = await small.info();
      assert.deepEqual(
        { ...info },
        { client: 'small', appendOnly: true, canDelete: false, quota: 10 * 1024, usedBytes: 8 * 1024, objects: 1, freeBytes: 2 * 1024, maxObjectSize: 64 * 1024 },
      );
    } finally {
      await store.close();
      await small.close();
    }
  });

  it('a rewrite of identical content is an ObjectExistsError marked sameContent', async () => {
    const store = await openNodeStore(await fx.target('p', token), { clock });
    try {
      const data = randomBytes(1000);
      await store.write('data/cc/same', data);
      await assert.rejects(store.write('data/cc/same', data), (e: unknown) => e instanceof NodeObjectExistsError && e.sameContent);
      await assert.rejects(store.write('data/cc/same', randomBytes(1000)), (e: unknown) => e instanceof NodeObjectExistsError && !e.sameContent);
    } finally {
      await store.close();
    }
  });

  it('reports a completed backup, which the storage node shows for the client', async () => {
    const store = await openNodeStore(await fx.target('p', token), { clock });
    try {
      await store.reportBackupCompleted({ job: 'photos', snapshot: 'abc123', completedAt: new Date('2025-01-02T03:04:05Z') });
      const status = (await fx.service.clients()).find((c) => c.name === 'peer')!;
      assert.equal(status.lastBackup?.job, 'photos');
      assert.equal(status.lastBackup?.snapshot, 'abc123');
      assert.equal(status.lastBackup?.completedAt, '2025-01-02T03:04:05.000Z');
      assert.ok(status.lastBackupAt !== null && Math.abs(Date.parse(status.lastBackupAt) - clock.nowMs()) < 10_000);
      assert.ok(status.lastSeenAt !== null);
    } finally {
      await store.close();
    }
  });
});

describe('node: target while the peer goes away', () => {
  it('with withRetry, a write made while the peer is down completes once it is back', async () => {
    const fx = await startStorageFixture({ clients: ['peer.append_only = false'] });
    const { token } = await fx.addClient('peer');
    const store: NodeStore = await openNodeStore(await fx.target('parents', token), { clock, connectTimeoutMs: 2000 });
    try {
      await store.write('data/before', Buffer.from('before'));
      await fx.service.close();
      // Without retries the failure is transient (the retry layer will wait for the peer).
      await assert.rejects(store.stat('data/before'), (e: unknown) => e instanceof StoreError && !e.permanent && e.code === 'NJ_STORE_NET');
      const retries: number[] = [];
      const retried = withRetry(store, { clock, baseDelayMs: 100, maxDelayMs: 200, maxAttempts: 50, onRetry: (_e, n) => retries.push(n) });
      const data = randomBytes(200_000);
      const writing = retried.write('data/during', data);
      await clock.sleep(400);
      await fx.restart();
      await writing;
      assert.ok(retries.length >= 1);
      assert.deepEqual(await retried.read('data/during'), data);
      assert.deepEqual((await retried.read('data/before')).toString(), 'before');
    } finally {
      await store.close();
      await fx.cleanup();
    }
  });
});

describe('node: target over plain HTTP (plain_http = true)', () => {
  it('works without a certificate, and the service makes none; multi-MiB objects round-trip', async () => {
    const fx = await startStorageFixture({ storage: ['plain_http = true'] });
    try {
      assert.ok(fx.service.url.startsWith('http://'));
      assert.equal(fx.service.fingerprint, null);
      const { token } = await fx.addClient('peer');
      const store = await openNodeStore(await fx.target('lan', token, null), { clock });
      await store.write('snapshots/s1', Buffer.from('snap'));
      assert.equal((await store.read('snapshots/s1')).toString(), 'snap');
      // Large bodies go out as a stream of slices.
      const big = randomBytes(3 * 1024 * 1024 + 17);
      await store.write('data/big', big);
      assert.deepEqual(await store.read('data/big'), big);
      assert.deepEqual(await store.read('data/big', { offset: 1024 * 1024, length: 5 }), big.subarray(1024 * 1024, 1024 * 1024 + 5));
      await store.close();
    } finally {
      await fx.cleanup();
    }
  });
});

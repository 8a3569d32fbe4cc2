import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openBackupDb } from '../src/backupdb/index.js';
import { runBackup, type RunResult } from '../src/jobs/backup-run.js';
import { restoreSnapshot } from '../src/jobs/restore.js';
import { systemClock } from '../src/node/clock.js';
import { Repository } from '../src/repo/repository.js';
import { withRetry } from '../src/store/retrying-store.js';
import { openS3Store } from '../src/store/s3-store.js';
import type { Store } from '../src/store/store.js';
import { jobSpec, TEST_KDF } from './helpers/backup-env.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { compareTrees, createTree, removeDir, tempDir } from './helpers/fixture-tree.js';
import { bucketName, s3Target, startS3rver, startSwift, swiftSkipReason, type S3TestServer } from './helpers/s3-servers.js';

const MiB = 1024 * 1024;
const RETRY = { clock: systemClock, maxAttempts: 12, baseDelayMs: 2, maxDelayMs: 40 } as const;

/** One "node": its own store, repository, backupdb and lock; closes in reverse order. */
async function backupAs(
  dir: string,
  nodeName: string,
  store: Store,
  source: string,
  opts: { init: boolean },
): Promise<{ result: RunResult; repo: Repository; close(): Promise<void> }> {
  const ropts = { clock: systemClock, kdf: TEST_KDF, workers: 1, hostname: nodeName };
  const repo = opts.init ? await Repository.init(store, 'test passphrase', ropts) : await Repository.open(store, 'test passphrase', ropts);
  const db = await openBackupDb(join(dir, `${nodeName}.sqlite`), { clock: systemClock });
  const lock = await repo.lock(false);
  try {
    const result = await runBackup({ repo, fileCache: db.fileCache, job: jobSpec(source, { name: nodeName }), clock: systemClock, host: nodeName });
    return {
      result,
      repo,
      close: async () => {
        await repo.close();
        await db.close();
      },
    };
  } finally {
    await lock.release();
  }
}

for (const kind of ['s3rver', 'swift'] as const) {
  const skip = kind === 'swift' ? swiftSkipReason() : null;
  describe(`backup and restore through the S3 store on ${kind}`, { skip: skip ?? false }, () => {
    let server: S3TestServer;
    let dir: string;
    let bucket: string;
    const closers: Array<() => Promise<void>> = [];

    const store = async (alias: string, prefix: string, endpoint?: string): Promise<Store> => {
      const target = await s3Target(server, { alias, bucket, prefix, keyDir: dir, ...(endpoint ? { endpoint } : {}) });
      // Small multipart threshold, so packs above 6 MiB go up in parts.
      const raw = await openS3Store(target, { clock: systemClock, requestTimeoutMs: 10_000, multipartThresholdBytes: 6 * MiB, partSizeBytes: 5 * MiB });
      closers.push(() => raw.close());
      return withRetry(raw, RETRY);
    };
    const source = async (name: string, bigBytes: number): Promise<string> => {
      const src = join(dir, name);
      await mkdir(src);
      await createTree(src, {
        docs: { dir: { 'a.txt': { file: `${name}\n`.repeat(5000) }, 'empty.txt': { file: '' } } },
        'big.bin': { file: randomBytes(bigBytes) },
        'shared.bin': { file: Buffer.alloc(300_000, 7) },
        link: { symlink: 'docs/a.txt' },
        'exec.sh': { file: '#!/bin/sh\n', mode: 0o755 },
      });
      return src;
    };

    before(async () => {
      dir = await tempDir('nj-s3-backup-');
      server = kind === 'swift' ? await startSwift() : await startS3rver();
      bucket = bucketName(`bk-${kind}`);
      await server.createBucket(bucket);
    });
    after(async () => {
      for (const c of closers.reverse()) await c().catch(() => {});
      await server?.stop();
      await removeDir(dir);
    });

    it('backs up through a faulty link (503, SlowDown, resets, cut GETs), restores byte for byte, check --read-data passes', async () => {
      const proxy: FaultProxy = await startFaultProxy(server.endpoint, { status503: 0.05, slowDown: 0.05, reset: 0.05, truncateGet: 0.3, seed: 11 });
      closers.push(() => proxy.close());
      const src = await source('solo', 8 * MiB);
      const s = await store('offsite', 'solo', proxy.url);
      const node = await backupAs(dir, 'solo', s, src, { init: true });
      closers.push(() => node.close());
      assert.equal(node.result.status, 'complete', JSON.stringify(node.result.stats.warnings));
      const dest = join(dir, 'restore-solo');
      await restoreSnapshot(node.repo, node.result.snapshot!, null, dest);
      assert.deepEqual(await compareTrees(src, dest), []);
      const report = await node.repo.check({ readData: true });
      assert.ok(report.ok, JSON.stringify(report.problems));
      assert.ok(report.bytesVerified > 8 * MiB);
      // The 8 MiB pack went up in parts.
      assert.ok(proxy.requests.some((r) => r.startsWith('PUT ') && /[?&]partNumber=2/.test(r)), 'a multipart upload');
      const c = proxy.counts;
      assert.ok(c.status503 + c.slowDown + c.reset > 0 && c.truncateCut + c.truncateShort > 0, JSON.stringify(c));
    });

    it('two nodes back up into one repository at once while a third repository shares the bucket', async () => {
      const [srcA, srcB, srcC] = await Promise.all([source('node-a', 2 * MiB), source('node-b', 2 * MiB), source('node-c', MiB)]);
      // Node A creates the shared repository; B opens it; C has its own beside it.
      const storeA = await store('shared', 'team/repo');
      const init = await Repository.init(storeA, 'test passphrase', { clock: systemClock, kdf: TEST_KDF, workers: 1 });
      await init.close();
      const storeB = await store('shared', 'team/repo');
      const storeC = await store('mine', 'team/repo-c');
      const [a, b, c] = await Promise.all([
        backupAs(dir, 'node-a', storeA, srcA, { init: false }),
        backupAs(dir, 'node-b', storeB, srcB, { init: false }),
        backupAs(dir, 'node-c', storeC, srcC, { init: true }),
      ]);
      closers.push(() => a.close(), () => b.close(), () => c.close());
      for (const n of [a, b, c]) assert.equal(n.result.status, 'complete', JSON.stringify(n.result.stats.warnings));

      // A fresh reader of the shared repository sees both snapshots, and both restore.
      const reader = await Repository.open(await store('shared', 'team/repo'), 'test passphrase', { clock: systemClock, workers: 1 });
      closers.push(() => reader.close());
      const snaps = await reader.listSnapshots();
      assert.deepEqual(snaps.map((s) => s.host).sort(), ['node-a', 'node-b']);
      for (const [name, src] of [['node-a', srcA], ['node-b', srcB]] as const) {
        const dest = join(dir, `restore-${name}`);
        await restoreSnapshot(reader, snaps.find((s) => s.host === name)!, null, dest);
        assert.deepEqual(await compareTrees(src, dest), []);
      }
      const report = await reader.check({ readData: true });
      assert.ok(report.ok, JSON.stringify(report.problems));
      assert.equal(report.snapshots, 2);
      // The repository beside it is separate.
      assert.equal((await c.repo.listSnapshots()).length, 1);
      assert.notEqual(c.repo.id, reader.id);
      const destC = join(dir, 'restore-node-c');
      await restoreSnapshot(c.repo, c.result.snapshot!, null, destC);
      assert.deepEqual(await compareTrees(srcC, destC), []);
    });
  });
}

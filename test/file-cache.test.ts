import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BackupDbError,
  decodeDir,
  decodeDirRecord,
  encodeDir,
  keyName,
  nameKey,
  openBackupDb,
  type BackupDb,
  type CachedDir,
  type CachedDirInfo,
  type CachedDirRecord,
  type CachedFile,
} from '../src/backupdb/index.js';
import { FakeClock } from './helpers/fake-clock.js';

let tmp: string;
let seq = 0;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'nightjar-filecache-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function withDb<T>(fn: (db: BackupDb, path: string) => Promise<T>): Promise<T> {
  const path = join(tmp, `cache-${++seq}.sqlite`);
  const db = await openBackupDb(path, { clock: new FakeClock('2026-01-01T00:00:00Z') });
  try {
    return await fn(db, path);
  } finally {
    await db.close();
  }
}

const ID_A = 'a'.repeat(64);
const ID_B = '0123456789abcdef'.repeat(4);

function file(over: Partial<CachedFile> = {}): CachedFile {
  return {
    size: 1234,
    mtimeNs: 1_767_225_600_123_456_789n, // 2026, beyond 2^53
    ctimeNs: 1_767_225_601_987_654_321n,
    inode: 1234567n,
    dev: 2049n,
    content: [ID_A],
    ...over,
  };
}

/** A directory from name bytes → file, keyed the way the cache keys it. */
function dirOf(entries: [Buffer, CachedFile][]): CachedDir {
  return new Map(entries.map(([name, f]) => [nameKey(name), f]));
}

const NON_UTF8_NAME = Buffer.from([0x66, 0xff, 0xfe]); // "f" then two bytes that are never UTF-8
const NON_UTF8_DIR = Buffer.from([0x70, 0x68, 0x6f, 0x74, 0x6f, 0x73, 0x2f, 0xe9, 0x74, 0xe9]); // "photos/\xe9t\xe9" (latin-1)

describe('file cache', () => {
  it('round-trips entries byte-exactly: non-UTF-8 names, bigint times and inodes, several ids, extra', async () => {
    await withDb(async (db) => {
      const entries = dirOf([
        [NON_UTF8_NAME, file()],
        [Buffer.from('empty'), file({ size: 0, content: [] })],
        [Buffer.from('big.iso'), file({ size: 4 * 2 ** 30, content: [ID_A, ID_B, ID_A] })],
        [
          Buffer.from('1969.txt'),
          file({ mtimeNs: -86_400_000_000_001n, ctimeNs: 0n, inode: 2n ** 63n + 5n, dev: 2n ** 64n - 1n }),
        ],
        [Buffer.from('with-extra'), file({ extra: Buffer.from([0, 1, 2, 255]) })],
        [Buffer.from('日本語.txt'), file()],
      ]);
      await db.fileCache.saveDirs('repo-1', 'b1', [{ dir: NON_UTF8_DIR, entries }]);
      const loaded = await db.fileCache.loadDir('repo-1', 'b1', NON_UTF8_DIR);
      assert.ok(loaded);
      assert.deepEqual(loaded, entries);
      const f = loaded.get(nameKey(NON_UTF8_NAME));
      assert.ok(f, 'found by the raw name bytes');
      assert.equal(typeof f.mtimeNs, 'bigint');
      assert.deepEqual(keyName([...loaded.keys()][0]!), NON_UTF8_NAME);
      assert.equal(loaded.get(nameKey(Buffer.from('日本語.txt')))?.size, 1234);
      assert.equal(loaded.get(nameKey(Buffer.from('empty')))?.extra, undefined);
    });
  });

  it('is keyed by repository id and job: another repository or job sees nothing', async () => {
    await withDb(async (db) => {
      const dir = Buffer.from('docs');
      await db.fileCache.saveDirs('repo-1', 'b1', [{ dir, entries: dirOf([[Buffer.from('a'), file()]]) }]);
      assert.equal(await db.fileCache.loadDir('repo-2', 'b1', dir), null);
      assert.equal(await db.fileCache.loadDir('repo-1', 'b2', dir), null);
      assert.equal((await db.fileCache.loadDirs('repo-2', 'b1', [dir])).size, 0);
      assert.deepEqual(await db.fileCache.listDirs('repo-2', 'b1'), []);
      assert.equal((await db.fileCache.loadDir('repo-1', 'b1', dir))?.size, 1);
    });
  });

  it('tells an uncached directory (null) from a cached empty one (empty map)', async () => {
    await withDb(async (db) => {
      await db.fileCache.saveDirs('r', 'j', [{ dir: Buffer.from('empty'), entries: new Map() }]);
      assert.deepEqual(await db.fileCache.loadDir('r', 'j', Buffer.from('empty')), new Map());
      assert.equal(await db.fileCache.loadDir('r', 'j', Buffer.from('other')), null);
      assert.equal(await db.fileCache.loadDir('r', 'j', Buffer.from('')), null);
    });
  });

  it('replaces a directory on save (an upsert, not a merge)', async () => {
    await withDb(async (db) => {
      const dir = Buffer.from('d');
      await db.fileCache.saveDirs('r', 'j', [
        { dir, entries: dirOf([[Buffer.from('old'), file()], [Buffer.from('kept'), file()]]) },
      ]);
      const next = dirOf([[Buffer.from('kept'), file({ size: 99 })], [Buffer.from('new'), file()]]);
      await db.fileCache.saveDirs('r', 'j', [{ dir, entries: next }]);
      assert.deepEqual(await db.fileCache.loadDir('r', 'j', dir), next);
      assert.equal((await db.fileCache.stats()).dirs, 1);
    });
  });

  it('saves many directories in one call (beyond one statement) and loads them in batches', async () => {
    await withDb(async (db) => {
      const rows = Array.from({ length: 1200 }, (_, i) => ({
        dir: Buffer.from(`dir/${i}`),
        entries: dirOf([[Buffer.from(`f${i}`), file({ size: i })]]),
      }));
      await db.fileCache.saveDirs('r', 'j', rows);
      const wanted = [rows[0]!.dir, rows[700]!.dir, rows[1199]!.dir, Buffer.from('nope')];
      const loaded = await db.fileCache.loadDirs('r', 'j', wanted);
      assert.deepEqual([...loaded.keys()].sort(), ['dir/0', 'dir/1199', 'dir/700']);
      assert.equal(loaded.get('dir/700')?.get('f700')?.size, 700);
      assert.equal((await db.fileCache.listDirs('r', 'j')).length, 1200);
      assert.equal(await db.fileCache.deleteDirs('r', 'j', [rows[0]!.dir, Buffer.from('nope')]), 1);
      assert.equal(await db.fileCache.loadDir('r', 'j', rows[0]!.dir), null);
    });
  });

  it('loads rows with their info in batches, leaving out uncached and damaged ones', async () => {
    await withDb(async (db) => {
      const info = { tree: ID_A, digest: Buffer.alloc(32, 7), subdirs: new Map([['x', ID_B]]) };
      const rows = Array.from({ length: 300 }, (_, i) => ({
        dir: Buffer.from(`d/${i}`),
        entries: dirOf([[Buffer.from('f'), file({ size: i })]]),
        ...(i % 2 === 0 ? { info } : {}),
      }));
      await db.fileCache.saveDirs('repo-1', 'b1', rows);
      await db.db.run("UPDATE file_cache SET entries = X'0907' WHERE dir = ?", [Buffer.from('d/5')]);
      const want = [...rows.map((r) => r.dir), Buffer.from('not/cached')];
      const got = await db.fileCache.loadDirRecords('repo-1', 'b1', want);
      assert.equal(got.size, 299);
      assert.equal(got.get('d/5'), undefined, 'a damaged row is uncached');
      assertRecord(got.get('d/2')!, rows[2]!.entries, info);
      assertRecord(got.get('d/3')!, rows[3]!.entries, null);
      assert.equal((await db.fileCache.loadDirRecords('repo-2', 'b1', want)).size, 0, 'another repository sees nothing');
    });
  });

  it('says whether a repository and job have any rows (a first run skips the lookups)', async () => {
    await withDb(async (db) => {
      assert.equal(await db.fileCache.hasRows('repo-1', 'b1'), false);
      await db.fileCache.saveDirs('repo-1', 'b1', [{ dir: Buffer.from('a'), entries: dirOf([[Buffer.from('f'), file({ size: 1 })]]) }]);
      assert.equal(await db.fileCache.hasRows('repo-1', 'b1'), true);
      assert.equal(await db.fileCache.hasRows('repo-2', 'b1'), false, 'another repository');
      assert.equal(await db.fileCache.hasRows('repo-1', 'b2'), false, 'another job');
      await db.fileCache.deleteDirs('repo-1', 'b1', [Buffer.from('a')]);
      assert.equal(await db.fileCache.hasRows('repo-1', 'b1'), false, 'the set is there but empty');
    });
  });

  it('drops by repository and by job', async () => {
    await withDb(async (db) => {
      const dir = Buffer.from('x');
      const entries = dirOf([[Buffer.from('f'), file()]]);
      for (const [repo, job] of [
        ['r1', 'b1'],
        ['r1', 'b2'],
        ['r2', 'b1'],
      ] as const) {
        await db.fileCache.loadDir(repo, job, dir); // memoizes nothing for unknown sets
        await db.fileCache.saveDirs(repo, job, [{ dir, entries }]);
      }
      assert.equal(await db.fileCache.dropRepo('r1'), 2);
      assert.equal(await db.fileCache.loadDir('r1', 'b1', dir), null);
      assert.equal(await db.fileCache.loadDir('r1', 'b2', dir), null);
      assert.ok(await db.fileCache.loadDir('r2', 'b1', dir));
      assert.equal(await db.fileCache.dropJob('b1'), 1);
      assert.equal(await db.fileCache.loadDir('r2', 'b1', dir), null);
      assert.equal(await db.fileCache.dropRepo('r1'), 0); // idempotent
      // Saving after a drop recreates the set.
      await db.fileCache.saveDirs('r1', 'b1', [{ dir, entries }]);
      assert.ok(await db.fileCache.loadDir('r1', 'b1', dir));
      assert.deepEqual(await db.fileCache.stats(), { sets: 1, dirs: 1, bytes: encodeDir(entries).length });
    });
  });

  it('saves nothing of a batch that holds an unencodable entry', async () => {
    await withDb(async (db) => {
      const good = { dir: Buffer.from('good'), entries: dirOf([[Buffer.from('f'), file()]]) };
      const bad = { dir: Buffer.from('bad'), entries: dirOf([[Buffer.from('f'), file({ content: ['not-hex!'] })]]) };
      await assert.rejects(db.fileCache.saveDirs('r', 'j', [good, bad]), (err: unknown) => {
        assert.ok(err instanceof BackupDbError);
        assert.equal(err.code, 'BACKUPDB_INVALID_ARGUMENT');
        return true;
      });
      assert.equal(await db.fileCache.loadDir('r', 'j', good.dir), null);
      const utf16Key = new Map([['ünïcödé→', file()]]);
      await assert.rejects(db.fileCache.saveDirs('r', 'j', [{ dir: good.dir, entries: utf16Key }]), /not a nameKey/);
    });
  });

  it('keeps the cache across a reopen', async () => {
    const entries = dirOf([[NON_UTF8_NAME, file()]]);
    const path = await withDb(async (db, p) => {
      await db.fileCache.saveDirs('r', 'j', [{ dir: NON_UTF8_DIR, entries }]);
      return p;
    });
    const db = await openBackupDb(path, { clock: new FakeClock(0) });
    try {
      assert.deepEqual(await db.fileCache.loadDir('r', 'j', NON_UTF8_DIR), entries);
    } finally {
      await db.close();
    }
  });
});

/** A decoded row holds `files` and `info`, and offers the files' content ids without decoding them. */
function assertRecord(r: CachedDirRecord, files: CachedDir, info: CachedDirInfo | null): void {
  assert.deepEqual(r.info, info);
  const ids: string[] = [];
  assert.equal(
    r.everyContentId((buf, at, length) => ids.push(buf.toString('hex', at, at + length)) > 0),
    true,
  );
  assert.deepEqual(ids, [...files.values()].flatMap((f) => f.content));
  assert.equal(r.everyContentId(() => false), ids.length === 0, 'stops at the first id that fails the test');
  assert.deepEqual(r.files, files);
}

describe('file cache encoding', () => {
  it('is compact: under 80 bytes for a one-chunk file with a 15-byte name', () => {
    const one = encodeDir(dirOf([[Buffer.from('IMG_20260101.jpg'), file()]]));
    assert.ok(one.length < 80, `${one.length} bytes`);
  });

  it('keeps version 1 without directory info, and round-trips the info (version 2) and a listing key (version 3)', () => {
    const files = dirOf([[NON_UTF8_NAME, file()], [Buffer.from('b'), file({ content: [] })]]);
    const v1 = encodeDir(files);
    assert.equal(v1[0], 1, 'rows without info stay readable by older versions');
    assertRecord(decodeDirRecord(v1), files, null);
    const info = {
      tree: ID_B,
      digest: Buffer.from('0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20', 'hex'),
      subdirs: new Map([
        [nameKey(NON_UTF8_NAME), ID_A],
        ['sub', ID_B],
      ]),
    };
    const v2 = encodeDir(files, info);
    assert.equal(v2[0], 2);
    assertRecord(decodeDirRecord(v2), files, info);
    assert.deepEqual(decodeDir(v2), files, 'decodeDir gives the files of either version');
    const withListing = { ...info, listing: Buffer.alloc(32, 7) };
    const v3 = encodeDir(files, withListing);
    assert.equal(v3[0], 3, 'version 3 when the info has a listing key');
    assertRecord(decodeDirRecord(v3), files, withListing);
    assertRecord(decodeDirRecord(encodeDir(files, { ...info, listing: null })), files, info);
    assert.throws(
      () => decodeDirRecord(v2.subarray(0, v2.length - 1)),
      (err: unknown) => err instanceof BackupDbError && err.code === 'BACKUPDB_CORRUPT_ENTRY',
    );
    assert.throws(
      () => encodeDir(files, { ...info, tree: 'not hex' }),
      (err: unknown) => err instanceof BackupDbError && err.code === 'BACKUPDB_INVALID_ARGUMENT',
    );
  });

  it('rejects damaged blobs with BACKUPDB_CORRUPT_ENTRY', () => {
    const good = encodeDir(dirOf([[Buffer.from('a'), file()], [Buffer.from('b'), file()]]));
    for (const bad of [good.subarray(0, good.length - 3), Buffer.concat([good, Buffer.from([0])]), Buffer.from([9, 0]), Buffer.alloc(0)]) {
      assert.throws(
        () => decodeDir(bad),
        (err: unknown) => err instanceof BackupDbError && err.code === 'BACKUPDB_CORRUPT_ENTRY',
      );
    }
  });
});

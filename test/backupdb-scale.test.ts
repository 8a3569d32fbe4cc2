import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { it } from 'node:test';
import { nameKey, openBackupDb, type CachedDirRow, type CachedFile } from '../src/backupdb/index.js';
import { systemClock } from '../src/node/clock.js';

/**
 * Not a timed assertion: prints how long the file cache takes for 100k files in 5k
 * directories (written in batches of 500 directories, then loaded one directory at a
 * time, as the engine does). The brief asks for 100k unchanged files skipped "in a few
 * seconds"; the cache's share of that is what this shows.
 */
it('file cache at scale: 100k files in 5k directories, saved in batches, loaded dir by dir', async (t) => {
  const dirs = 5_000;
  const perDir = 20;
  const tmp = await mkdtemp(join(tmpdir(), 'nightjar-scale-'));
  try {
    const path = join(tmp, 'backupdb.sqlite');
    const db = await openBackupDb(path, { clock: systemClock });
    const rows: CachedDirRow[] = [];
    for (let d = 0; d < dirs; d++) {
      const entries = new Map<string, CachedFile>();
      for (let f = 0; f < perDir; f++) {
        const n = d * perDir + f;
        entries.set(nameKey(Buffer.from(`IMG_${String(n).padStart(6, '0')}.jpg`)), {
          size: 1_000_000 + n,
          mtimeNs: 1_767_225_600_000_000_000n + BigInt(n),
          ctimeNs: 1_767_225_600_000_000_000n + BigInt(n),
          inode: BigInt(1_000_000 + n),
          dev: 2049n,
          content: [n.toString(16).padStart(64, '0')],
        });
      }
      rows.push({ dir: Buffer.from(`photos/${Math.floor(d / 100)}/album-${d}`), entries });
    }

    const t0 = performance.now();
    for (let i = 0; i < rows.length; i += 500) await db.fileCache.saveDirs('repo', 'b1', rows.slice(i, i + 500));
    const t1 = performance.now();
    let files = 0;
    for (const row of rows) {
      const cached = await db.fileCache.loadDir('repo', 'b1', row.dir);
      files += cached!.size;
    }
    const t2 = performance.now();
    await db.close();
    const size = (await stat(path)).size + (await stat(`${path}-wal`).catch(() => ({ size: 0 }))).size;
    assert.equal(files, dirs * perDir);
    t.diagnostic(
      `save ${((t1 - t0) / 1000).toFixed(2)} s, load ${((t2 - t1) / 1000).toFixed(2)} s ` +
        `(${files} files, ${dirs} dirs, database ${(size / 2 ** 20).toFixed(1)} MiB)`,
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

import assert from 'node:assert/strict';
import { appendFile, lstat, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { nameKey } from '../src/backupdb/index.js';
import { entryFromStat, type BackupRepository } from '../src/jobs/backup-run.js';
import { restoreSnapshot } from '../src/jobs/restore.js';
import { EntriesDigest, entriesDigest } from '../src/repo/tree-codec.js';
import type { TreeEntry } from '../src/repo/types.js';
import { backup, backupSuite, jobSpec, spyRepo, type BackupEnv } from './helpers/backup-env.js';
import { compareTrees, createTree, removeDir, tempDir } from './helpers/fixture-tree.js';

/** spyRepo that also counts tree loads and saves. */
function treeSpy(repo: BackupRepository) {
  const spy = spyRepo(repo);
  const counts = { loadTree: 0, saveTree: 0 };
  return {
    counts,
    repo: {
      ...spy,
      get id() {
        return repo.id;
      },
      loadTree: (id: string) => {
        counts.loadTree++;
        return repo.loadTree(id);
      },
      saveTree: (t: Parameters<BackupRepository['saveTree']>[0]) => {
        counts.saveTree++;
        return repo.saveTree(t);
      },
    } as BackupRepository & { saveFileCalls: Buffer[] },
  };
}

describe('backup walk of unchanged and changed directories', () => {
  let dir: string;
  let src: string;
  let env: BackupEnv;
  backupSuite(
    async (s) => {
      const deep: Record<string, { file: string } | { dir: Record<string, { file: string }> }> = {};
      for (let i = 0; i < 40; i++) deep[`f${i}`] = { file: `file ${i}\n` };
      await createTree(s, {
        a: { dir: { b: { dir: { c: { dir: { 'leaf.txt': { file: 'leaf' } } }, 'b.txt': { file: 'b' } } } } },
        many: { dir: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`d${String(i).padStart(2, '0')}`, { dir: { x: { file: `x${i}` } } }])) },
        flat: { dir: deep },
        gone: { dir: { g1: { file: 'g1' }, g2: { file: 'g2' }, sub: { dir: { g3: { file: 'g3' } } } } },
        'top.txt': { file: 'top' },
        link: { symlink: 'top.txt' },
      });
    },
    (suite) => ({ dir, src, env } = suite),
  );

  it('re-runs an unchanged tree without loading or saving a single tree, to the same root tree', async () => {
    const first = await backup(env, jobSpec(src));
    assert.equal(first.status, 'complete');
    const s = treeSpy(env.repo);
    const again = await backup(env, jobSpec(src), { repo: s.repo });
    assert.equal(again.status, 'complete');
    assert.equal(again.snapshot!.tree, first.snapshot!.tree);
    assert.equal(s.counts.loadTree, 0, 'cache rows stand for the previous trees');
    assert.equal(s.counts.saveTree, 0, 'every tree id reused');
    assert.equal(s.repo.saveFileCalls.length, 0);
    const st = again.stats;
    assert.equal(st.filesUnchanged, first.stats.filesTotal);
    assert.equal(st.filesPrevious, first.stats.filesTotal);
    assert.equal(st.filesRemoved + st.filesNew + st.filesChanged, 0);
    assert.equal(st.dirs, first.stats.dirs);
  });

  it('finds changes deep down, new, removed and retyped entries, and restores exactly', async () => {
    await appendFile(join(src, 'a', 'b', 'c', 'leaf.txt'), ' changed');
    await writeFile(join(src, 'many', 'd17', 'new.txt'), 'new');
    await rm(join(src, 'gone'), { recursive: true }); // 3 files removed, one in a subdirectory
    await rm(join(src, 'flat', 'f3'));
    await mkdir(join(src, 'flat', 'f3')); // a file became a directory: removed + a new directory
    await writeFile(join(src, 'flat', 'f3', 'inside'), 'inside');
    await rename(join(src, 'flat', 'f4'), join(src, 'flat', 'f4-renamed')); // removed + new
    const s = treeSpy(env.repo);
    const r = await backup(env, jobSpec(src), { repo: s.repo });
    assert.equal(r.status, 'complete');
    const st = r.stats;
    assert.equal(st.filesChanged, 1);
    assert.equal(st.changedReasons.size, 1);
    assert.equal(st.filesNew, 3); // new.txt, f3/inside, f4-renamed
    assert.equal(st.filesRemoved, 5); // gone/g1, g2, sub/g3, flat/f3, flat/f4
    assert.equal(s.repo.saveFileCalls.length, 4); // leaf.txt and the three new ones
    // Only the directories on the changed paths got new trees: root, a, a/b, a/b/c, many, many/d17, flat, flat/f3.
    assert.equal(s.counts.saveTree, 8);
    // Trees are loaded only to count the removed directory's files (gone, gone/sub).
    assert.equal(s.counts.loadTree, 2);
    const dest = join(dir, 'restore-1');
    await restoreSnapshot(env.repo, r.snapshot!, null, dest);
    assert.deepEqual(await compareTrees(src, dest), []);
  });

  it('loads the previous tree when the cache row was written for another tree, and still counts right', async () => {
    const before = await backup(env, jobSpec(src));
    // A row whose info names some other tree (as after a run that was cancelled after
    // checkpointing): it must not stand for the previous snapshot's tree.
    const row = (await env.db.fileCache.loadDirRecords(env.repo.id, 'b1', [Buffer.from('flat')])).get(nameKey(Buffer.from('flat')))!;
    assert.ok(row.info, 'rows of complete directories carry their tree');
    await env.db.fileCache.saveDirs(env.repo.id, 'b1', [
      { dir: Buffer.from('flat'), entries: row.files, info: { ...row.info, tree: 'ab'.repeat(32), digest: Buffer.alloc(32) } },
    ]);
    await rm(join(src, 'flat', 'f5'));
    const s = treeSpy(env.repo);
    const r = await backup(env, jobSpec(src), { repo: s.repo });
    assert.equal(r.status, 'complete');
    assert.equal(r.stats.filesRemoved, 1);
    assert.equal(r.stats.filesPrevious, before.stats.filesTotal);
    assert.equal(r.stats.filesUnchanged, before.stats.filesTotal - 1);
    assert.equal(s.counts.loadTree, 1, 'flat: its row did not name the previous tree');
    assert.equal(s.repo.saveFileCalls.length, 0);
    // The row was written again for the new tree: the next run loads nothing.
    const s2 = treeSpy(env.repo);
    const r2 = await backup(env, jobSpec(src), { repo: s2.repo });
    assert.equal(r2.snapshot!.tree, r.snapshot!.tree);
    assert.equal(s2.counts.loadTree + s2.counts.saveTree, 0);
  });

  it('reads a file again when a blob it names is missing, even in an unchanged directory', async () => {
    const s = treeSpy(env.repo);
    const missing = new Set<string>();
    const tree = await env.repo.loadTree((await env.repo.findSnapshot('latest')).tree);
    const top = tree.entries.find((e) => e.name.toString() === 'top.txt')!;
    for (const id of top.content!) missing.add(id);
    const repo: BackupRepository = { ...s.repo, hasBlob: (id: string) => !missing.has(id) && env.repo.hasBlob(id) };
    Object.defineProperty(repo, 'id', { get: () => env.repo.id });
    const r = await backup(env, jobSpec(src), { repo });
    assert.equal(r.status, 'complete');
    assert.equal(s.repo.saveFileCalls.length, 1);
    assert.equal(s.repo.saveFileCalls[0]!.toString(), join(src, 'top.txt'));
    assert.equal(r.stats.filesChanged, 1);
  });
});

describe('backup walk of directories listed as last time', () => {
  let dir: string;
  let src: string;
  let env: BackupEnv;
  backupSuite(
    async (s) => {
      await createTree(s, {
        top: {
          dir: {
            mid: { dir: { deep: { dir: { 'leaf.txt': { file: 'leaf' }, 'other.txt': { file: 'other' } } }, 'm.txt': { file: 'm' } } },
            't.txt': { file: 't' },
            'link-to-t': { symlink: 't.txt' },
            pipe: { fifo: true },
            'hard-t': { hardlink: 'top/t.txt' },
          },
        },
        skipped: { dir: { 'keep.txt': { file: 'keep' }, 'drop.tmp': { file: 'excluded' } } },
        'root.txt': { file: 'root' },
      });
    },
    (suite) => ({ dir, src, env } = suite),
  );
  const job = () => jobSpec(src, { exclude: ['*.tmp'] });
  /** The same source backed up from nothing (another snapshot series: no cache rows, no previous tree). */
  const fromScratch = () => backup(env, jobSpec(src, { name: 'scratch', exclude: ['*.tmp'] }));
  const counts = (r: Awaited<ReturnType<typeof backup>>) => {
    const { filesTotal, bytesTotal, dirs, symlinks, specials, skipped } = r.stats;
    return { filesTotal, bytesTotal, dirs, symlinks, specials, skipped };
  };

  it('keeps the listing in the cache row of each directory nothing was left out of', async () => {
    await backup(env, job());
    const rows = await env.db.fileCache.loadDirRecords(env.repo.id, 'b1', ['', 'top', 'top/mid', 'skipped'].map((d) => Buffer.from(d)));
    for (const d of ['', 'top', 'top/mid']) assert.equal(rows.get(d)?.info?.listing?.length, 32, `row of "${d}"`);
    assert.equal(rows.get('skipped')?.info?.listing ?? null, null, 'drop.tmp was excluded: the listing is gone through every run');
  });

  it('gives the tree and counts of a walk from nothing, unchanged or with a change deep down', async () => {
    const unchanged = await backup(env, job());
    const scratch = await fromScratch();
    assert.equal(unchanged.snapshot!.tree, scratch.snapshot!.tree);
    assert.deepEqual(counts(unchanged), counts(scratch));
    assert.equal(unchanged.stats.filesUnchanged, unchanged.stats.filesTotal);
    assert.equal(unchanged.stats.filesPrevious, unchanged.stats.filesTotal);

    // top and top/mid list as before; their trees change with top/mid/deep's, built from
    // the cached files, the symlink's target, the fifo and the new subtree.
    await appendFile(join(src, 'top', 'mid', 'deep', 'leaf.txt'), ' grown');
    const changed = await backup(env, job());
    const scratch2 = await fromScratch();
    assert.equal(changed.snapshot!.tree, scratch2.snapshot!.tree);
    assert.deepEqual(counts(changed), counts(scratch2));
    assert.equal(changed.stats.filesChanged, 1);
    assert.equal(changed.stats.filesUnchanged, changed.stats.filesTotal - 1);
    const dest = join(dir, 'restored');
    await restoreSnapshot(env.repo, changed.snapshot!, null, dest);
    assert.deepEqual(await compareTrees(src, dest), ['/skipped/drop.tmp: only in first']);

    // The rows were written again for the new trees: the next run reuses them as they are.
    const s = treeSpy(env.repo);
    const again = await backup(env, job(), { repo: s.repo });
    assert.equal(again.snapshot!.tree, changed.snapshot!.tree);
    assert.equal(s.counts.loadTree + s.counts.saveTree, 0);
  });
});

describe('entriesDigest', () => {
  const base: TreeEntry = {
    name: Buffer.from('a.txt'),
    type: 'file',
    mode: 0o100644,
    uid: 1000,
    gid: 1000,
    mtimeNs: 1_767_225_600_123_456_789n,
    ctimeNs: 1_767_225_601_987_654_321n,
    size: 12,
    inode: 2n ** 63n + 7n,
    dev: 2049n,
    nlink: 1,
    content: ['a'.repeat(64)],
  };

  it('is stable across calls (a reused scratch buffer leaves no trace)', () => {
    const d1 = entriesDigest([base]);
    entriesDigest(Array.from({ length: 5000 }, (_, i) => ({ ...base, name: Buffer.from(`n${i}`), content: ['f'.repeat(64), 'e'.repeat(64)] })));
    const odd = { ...base, name: Buffer.from('abc') }; // leaves the next entry unaligned
    entriesDigest([odd, odd]);
    assert.deepEqual(entriesDigest([base]), d1);
    assert.deepEqual(entriesDigest([odd, base]), entriesDigest([{ ...odd }, { ...base }]));
  });

  it("gives an unchanged file's stat and content the digest of the entry the walk would build", async () => {
    const dir = await tempDir();
    try {
      await writeFile(join(dir, 'f'), 'content');
      const st = await lstat(join(dir, 'f'), { bigint: true });
      const content = ['d'.repeat(64)];
      const entry = entryFromStat({ name: Buffer.from('f'), type: 'file', stat: st, descend: false }, content);
      const viaStat = new EntriesDigest().add(base).addFile(Buffer.from('f'), st, content).digest();
      assert.deepEqual(viaStat, entriesDigest([base, entry]));
      assert.notDeepEqual(new EntriesDigest().addFile(Buffer.from('f'), st, []).digest(), entriesDigest([entry]));
    } finally {
      await removeDir(dir);
    }
  });

  it('changes with every field encodeTree writes', () => {
    const d = entriesDigest([base]).toString('hex');
    const variants: Partial<TreeEntry>[] = [
      { name: Buffer.from('b.txt') },
      { type: 'symlink' },
      { mode: 0o100600 },
      { uid: 0 },
      { gid: 0 },
      { mtimeNs: base.mtimeNs + 1n },
      { ctimeNs: base.ctimeNs - 1n },
      { size: 13 },
      { inode: 5n },
      { dev: 2050n },
      { nlink: 2 },
      { rdev: 0 },
      { atimeNs: 0n },
      { content: [] },
      { content: ['b'.repeat(64)] },
      { content: ['a'.repeat(64), 'a'.repeat(64)] },
      { subtree: 'c'.repeat(64) },
      { linkTarget: Buffer.alloc(0) },
      { mtimeNs: base.mtimeNs + 2n ** 64n }, // beyond a 64-bit slot
      { inode: base.inode + 2n ** 64n },
    ];
    const seen = new Set([d]);
    for (const v of variants) {
      const x = entriesDigest([{ ...base, ...v }]).toString('hex');
      assert.ok(!seen.has(x), `digest unchanged by ${JSON.stringify(Object.keys(v))}`);
      seen.add(x);
    }
    const { content: _c, ...noContent } = base;
    void _c;
    assert.notEqual(entriesDigest([noContent]).toString('hex'), entriesDigest([{ ...base, content: [] }]).toString('hex'));
    assert.notEqual(entriesDigest([]).toString('hex'), d);
  });
});

import assert from 'node:assert/strict';
import { appendFile, chmod, chown, lstat, mkdir, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { restoreSnapshot } from '../src/jobs/restore.js';
import { backup, backupSuite, jobSpec, openBackupEnv, spyRepo, type BackupEnv } from './helpers/backup-env.js';
import { compareTrees, createTree, hashFile } from './helpers/fixture-tree.js';

const SPARSE_SIZE = 1024 ** 3; // 1 GiB of holes: read at page-cache speed, stored as one chunk, restored as holes
const past = Date.parse('2023-03-04T05:06:07.123Z');

describe('backup and restore round trip', () => {
  let dir: string;
  let src: string;
  let env: BackupEnv;
  backupSuite(
    async (s) => {
      const latin1Name = Buffer.from([0x63, 0x61, 0x66, 0xe9]); // "café" in latin1: not UTF-8
      const junk = Buffer.from([0xff, 0xfe, 0x80, 0x01, 0x7f]);
      await createTree(s, [
        ['docs', { dir: { 'a.txt': { file: 'hello\n'.repeat(1000), mtimeMs: past }, 'empty.txt': { file: '' } } }],
        [latin1Name, { file: 'latin-1 named file', mode: 0o640 }],
        [junk, { dir: [[Buffer.from([0xc3, 0x28]), { file: 'invalid utf-8 sequence name' }]] }],
        ['empty-dir', { dir: {}, mode: 0o750, mtimeMs: past }],
        ['exec.sh', { file: '#!/bin/sh\necho hi\n', mode: 0o755 }],
        ['setuid', { file: 'x', mode: 0o4755 }],
        ['readonly-dir', { dir: { inside: { file: 'ro' } }, mode: 0o555 }],
        ['dangling', { symlink: 'does/not/exist' }],
        ['loop-a', { symlink: 'loop-b' }],
        ['loop-b', { symlink: 'loop-a' }],
        ['abs-link', { symlink: '/etc/passwd' }],
        ['link-to-dir', { symlink: 'docs' }],
        ['hard-1', { file: 'shared by hard links' }],
        ['hard-2', { hardlink: 'hard-1' }],
        ['docs-hard', { hardlink: 'docs/a.txt' }],
        ['fifo', { fifo: true, mode: 0o600 }],
        ['sparse.img', { sparse: SPARSE_SIZE }],
        ['random.bin', { file: Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251)) }],
      ]);
    },
    (suite) => ({ dir, src, env } = suite),
  );

  it('restores an awkward tree byte for byte with modes, mtimes, symlinks, hard links and a FIFO', async () => {
    const result = await backup(env, jobSpec(src));
    assert.equal(result.status, 'complete', JSON.stringify(result.stats.warnings));
    const s = result.stats;
    assert.equal(s.filesTotal, 12);
    assert.equal(s.filesNew, 12);
    assert.equal(s.symlinks, 5);
    assert.equal(s.specials, 1);
    assert.ok(s.bytesNew < 8 * 1024 * 1024, `sparse zeros dedup to one chunk (bytesNew ${s.bytesNew})`);
    const dest = join(dir, 'restore-all');
    const rs = await restoreSnapshot(env.repo, result.snapshot!, null, dest);
    assert.deepEqual(rs.warnings, []);
    assert.equal(rs.hardLinks, 2);
    assert.deepEqual(await compareTrees(src, dest), []);
    // The sparse file came back sparse (holes), not 2 GiB of written zeros.
    const st = await stat(join(dest, 'sparse.img'));
    assert.equal(st.size, SPARSE_SIZE);
    assert.ok(st.blocks * 512 < 1024 * 1024, `restored sparse file allocates ${st.blocks * 512} bytes`);
  });

  it('re-runs with nothing changed without reading a single file', async () => {
    const spy = spyRepo(env.repo);
    const result = await backup(env, jobSpec(src), { repo: spy });
    assert.equal(result.status, 'complete');
    assert.equal(spy.saveFileCalls.length, 0);
    assert.equal(result.stats.bytesRead, 0);
    assert.equal(result.stats.filesUnchanged, 12);
    assert.equal(result.stats.filesRemoved, 0);
    assert.equal(result.stats.bytesWritten, 0);
  });

  it('counts new, changed (with reasons) and removed files and reads only those', async () => {
    await appendFile(join(src, 'docs', 'a.txt'), 'more\n');
    await writeFile(join(src, 'new.txt'), 'new file');
    await rm(join(src, 'exec.sh'));
    await utimes(join(src, 'random.bin'), past / 1000, past / 1000);
    await rm(join(src, 'sparse.img')); // checked above; spares hashing it again
    const spy = spyRepo(env.repo);
    const result = await backup(env, jobSpec(src), { repo: spy });
    assert.equal(result.status, 'complete');
    const s = result.stats;
    assert.equal(s.filesNew, 1);
    assert.equal(s.filesRemoved, 2);
    // a.txt and its hard link docs-hard (same inode: its ctime changed too), random.bin
    assert.equal(s.filesChanged, 3);
    assert.equal(s.changedReasons.size, 2);
    assert.equal(s.changedReasons.mtime, 3);
    // docs-hard is a hard link to a.txt: read once
    assert.equal(spy.saveFileCalls.length, 3);
    const dest = join(dir, 'restore-2');
    await restoreSnapshot(env.repo, result.snapshot!, null, dest);
    assert.deepEqual(await compareTrees(src, dest), []);
  });

  it('restores one directory into DEST, and one file as DEST/name', async () => {
    const snap = await env.repo.findSnapshot('latest');
    const d1 = join(dir, 'one-dir');
    await restoreSnapshot(env.repo, snap, '/docs', d1);
    assert.deepEqual(await compareTrees(join(src, 'docs'), d1), []);
    const d2 = join(dir, 'one-file');
    await restoreSnapshot(env.repo, snap, 'random.bin', d2);
    assert.deepEqual(await readdir(d2), ['random.bin']);
    assert.equal(await hashFile(join(d2, 'random.bin')), await hashFile(join(src, 'random.bin')));
    await assert.rejects(restoreSnapshot(env.repo, snap, 'docs/nope', join(dir, 'x')), /no such file/);
  });

  it('never writes outside DEST, whatever names a tree holds', async () => {
    // The repository refuses such names on save; a damaged or hostile one could still hold them.
    const entries = ['..', '.', 'a/b', 'ok', 'ok', 'nul\0'].map((n) => ({
      name: Buffer.from(n),
      type: 'file' as const,
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtimeNs: 0n,
      ctimeNs: 0n,
      size: 0,
      inode: 1n,
      dev: 1n,
      nlink: 1,
      content: [],
    }));
    const fake = {
      loadTree: async () => ({ entries }),
      readFileContent: async () => {},
    };
    const dest = join(dir, 'evil', 'dest');
    const rs = await restoreSnapshot(fake, { tree: 'root' }, null, dest);
    assert.equal(rs.warningCount, 5);
    assert.deepEqual(await readdir(join(dir, 'evil')), ['dest']);
    assert.deepEqual(await readdir(dest), ['ok']);
    // A symlink planted in DEST where a directory goes is replaced, not followed.
    const snap = await env.repo.findSnapshot('latest');
    const d3 = join(dir, 'planted');
    await mkdir(d3);
    const outside = join(dir, 'outside');
    await mkdir(outside);
    const { symlink } = await import('node:fs/promises');
    await symlink(outside, join(d3, 'docs'));
    await restoreSnapshot(env.repo, snap, null, d3);
    assert.deepEqual(await readdir(outside), []);
    assert.ok((await lstat(join(d3, 'docs'))).isDirectory());
  });

  it('does not trust the cache for another repository (cache keyed by repository id)', async () => {
    const small = join(dir, 'small-src');
    await mkdir(small);
    await createTree(small, { a: { file: 'a' }, b: { file: 'b' }, c: { dir: { d: { file: 'd' } } } });
    assert.equal((await backup(env, jobSpec(small, { name: 'small' }))).status, 'complete');
    const other = await openBackupEnv(dir, { repoDir: join(dir, 'repo2') });
    try {
      await other.db.close();
      const spy = spyRepo(other.repo);
      const result = await backup({ ...other, db: env.db }, jobSpec(small, { name: 'small' }), { repo: spy });
      assert.equal(result.status, 'complete');
      assert.equal(result.stats.filesUnchanged, 0);
      assert.equal(spy.saveFileCalls.length, 3);
    } finally {
      await other.repo.close();
      await other.store.close();
    }
  });

  it('restores directory modes after contents (a read-only directory still gets its files)', async () => {
    const snap = await env.repo.findSnapshot('latest', { job: 'b1' });
    const dest = join(dir, 'ro');
    await restoreSnapshot(env.repo, snap, 'readonly-dir', dest);
    assert.equal((await stat(dest)).mode & 0o777, 0o555);
    assert.deepEqual(await readdir(dest), ['inside']);
    await chmod(dest, 0o755);
  });

  it('restores ownership into a setgid directory of another group (root only)', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async () => {
    const snap = await env.repo.findSnapshot('latest', { job: 'b1' });
    const parent = join(dir, 'setgid-parent');
    await mkdir(parent);
    await chown(parent, 0, 4321);
    await chmod(parent, 0o2775);
    const dest = join(parent, 'out'); // made by the restore: inherits setgid and group 4321
    await restoreSnapshot(env.repo, snap, 'docs', dest, { restoreOwnership: true });
    const st = await stat(join(dest, 'a.txt'));
    assert.equal(st.gid, 0, "the file has its own group back, not the directory's");
    assert.equal(st.mode & 0o777, (await stat(join(src, 'docs', 'a.txt'))).mode & 0o777);
  });
});

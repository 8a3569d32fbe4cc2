import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkDeletionRatio, checkSourceBeforeRun } from '../src/jobs/mass-delete-guard.js';
import { displayPath, walk, Walker, type DirListing, type WalkWarning } from '../src/jobs/walk.js';
import { systemClock } from '../src/node/clock.js';
import { Repository } from '../src/repo/repository.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { FakeClock } from './helpers/fake-clock.js';
import { createTree, removeDir, tempDir } from './helpers/fixture-tree.js';

const latin = (b: Buffer) => b.toString('latin1');

async function collect(walker: Walker) {
  const sink = { warnings: [] as WalkWarning[], skipped: [] as DirListing['skipped'] };
  const items: { path: string; type: string }[] = [];
  for await (const it of walk(walker, sink)) items.push({ path: latin(it.path), type: it.entry.type });
  return { items, sink };
}

describe('walker', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir();
  });
  after(async () => {
    await removeDir(dir);
  });

  it('walks depth-first in sorted name-byte order, keeping non-UTF-8 names byte-exact', async () => {
    const root = join(dir, 'order');
    await mkdir(root);
    const bad = Buffer.from([0x66, 0xff, 0xfe, 0x2e, 0x74]); // "f\xff\xfe.t"
    await createTree(root, [
      ['b', { dir: { z: { file: 'z' }, a: { file: 'a' } } }],
      ['a.txt', { file: 'x' }],
      [bad, { file: 'latin' }],
      ['B', { file: '' }],
      ['c', { symlink: 'b' }],
      ['fifo', { fifo: true }],
    ]);
    const { items, sink } = await collect(new Walker(root, { clock: systemClock }));
    assert.deepEqual(items.map((i) => i.path), ['B', 'a.txt', 'b', 'b/a', 'b/z', 'c', 'fifo', latin(bad)]);
    assert.equal(items.find((i) => i.path === 'c')!.type, 'symlink', 'symlink to a dir is not followed');
    assert.equal(items.find((i) => i.path === 'fifo')!.type, 'fifo');
    assert.deepEqual(sink.warnings, []);
    assert.equal(displayPath(bad), 'f\\xff\\xfe.t');
  });

  it('applies gitignore-style excludes, anchored patterns, directory-only patterns and negation', async () => {
    const root = join(dir, 'excl');
    await mkdir(root);
    await createTree(root, {
      'a.log': { file: '1' },
      'keep.log': { file: '1' },
      build: { dir: { 'out.o': { file: '1' } } },
      src: { dir: { build: { file: 'a file named build' }, 'x.ts': { file: '1' }, top: { file: 't' } } },
      top: { file: 't' },
      cache: { dir: { deep: { dir: { 'x.tmp': { file: '1' }, 'y.txt': { file: '1' } } } } },
    });
    const walker = new Walker(root, { clock: systemClock, exclude: ['*.log', '!keep.log', 'build/', '/top', '**/*.tmp'] });
    const { items, sink } = await collect(walker);
    assert.deepEqual(items.map((i) => i.path), [
      'cache',
      'cache/deep',
      'cache/deep/y.txt',
      'keep.log',
      'src',
      'src/build',
      'src/top',
      'src/x.ts',
    ]);
    assert.deepEqual(sink.skipped.map((s) => latin(s.path)).sort(), ['a.log', 'build', 'cache/deep/x.tmp', 'top']);
  });

  it('skips files over max_file_size and files younger than min_file_age (by the injected clock)', async () => {
    const root = join(dir, 'size-age');
    await mkdir(root);
    const base = Date.parse('2024-05-01T12:00:00Z');
    await createTree(root, {
      small: { file: 'x'.repeat(10), mtimeMs: base - 3_600_000 },
      big: { file: 'x'.repeat(1000), mtimeMs: base - 3_600_000 },
      young: { file: 'y', mtimeMs: base - 60_000 },
    });
    const clock = new FakeClock(base);
    const walker = new Walker(root, { clock, maxFileSize: 100, minFileAgeMs: 10 * 60_000 });
    const { items, sink } = await collect(walker);
    assert.deepEqual(items.map((i) => i.path), ['small']);
    assert.deepEqual(
      sink.skipped.map((s) => [latin(s.path), s.reason]).sort(),
      [
        ['big', 'too-large'],
        ['young', 'too-young'],
      ],
    );
    await clock.advance(3_600_000);
    const later = await collect(new Walker(root, { clock, minFileAgeMs: 10 * 60_000 }));
    assert.deepEqual(later.items.map((i) => i.path), ['big', 'small', 'young']);
  });

  it('never descends into a skipped directory (the repository inside the source)', async () => {
    const root = join(dir, 'repo-inside');
    await mkdir(root);
    await createTree(root, { repo: { dir: { data: { file: 'pack' } } }, file: { file: 'f' } });
    const { stat } = await import('node:fs/promises');
    const st = await stat(join(root, 'repo'), { bigint: true });
    const walker = new Walker(root, { clock: systemClock, skipDirs: [{ dev: st.dev, ino: st.ino }] });
    const { items, sink } = await collect(walker);
    assert.deepEqual(items.map((i) => i.path), ['file']);
    assert.deepEqual(sink.skipped.map((s) => s.reason), ['repository']);
  });

  it('reports an unlistable path as a warning instead of failing', async () => {
    const root = join(dir, 'vanish');
    await mkdir(root);
    await writeFile(join(root, 'f'), 'x');
    const walker = new Walker(root, { clock: systemClock });
    const listing = await walker.listDir(Buffer.from('no-such-dir'));
    assert.equal(listing.readable, false);
    assert.match(listing.warnings[0]!.message, /vanished/);
  });

  it('lists the same through a repository worker (Repository.listDir) as through libuv', async () => {
    const root = join(dir, 'lister');
    await mkdir(root);
    const bad = Buffer.from([0x66, 0xff, 0xfe]);
    await createTree(root, [
      ['d', { dir: { 'x.log': { file: 'x' }, y: { file: 'yy' } } }],
      [bad, { file: 'latin' }],
      ['link', { symlink: 'nowhere' }],
      ['fifo', { fifo: true }],
      ['big', { file: 'b'.repeat(500) }],
      ['e', { dir: {} }],
    ]);
    const repo = await Repository.init(new MemoryStore(), 'pw', { clock: systemClock, workers: 1, kdf: { N: 1024, r: 8, p: 1 } });
    try {
      const opts = { clock: systemClock, exclude: ['*.log'], maxFileSize: 100 };
      const plain = new Walker(root, opts);
      const viaWorker = new Walker(root, { ...opts, lister: (p: Buffer) => repo.listDir(p) });
      for (const rel of ['', 'd', 'e', 'missing']) {
        const a = await plain.listDir(Buffer.from(rel));
        const b = await viaWorker.listDir(Buffer.from(rel));
        const view = (l: DirListing) => ({
          readable: l.readable,
          skipped: l.skipped.map((x) => [latin(x.path), x.reason]),
          warnings: l.warnings.map((w) => [latin(w.path), w.message]),
          entries: l.entries.map((e) => {
            const st = e.stat;
            return [latin(e.name), e.type, e.descend, st.dev, st.ino, st.mode, st.nlink, st.uid, st.gid, st.rdev, st.size, st.mtimeNs, st.ctimeNs];
          }),
        });
        assert.deepEqual(view(b), view(a), `listing of "${rel}"`);
      }
    } finally {
      await repo.close();
    }
  });
});

describe('mass-deletion guard', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir();
  });
  after(async () => {
    await removeDir(dir);
  });

  it('refuses a missing source, naming it and asking about the drive', async () => {
    const r = await checkSourceBeforeRun(join(dir, 'missing'), null, { oneFileSystem: false });
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.refusal.code, 'source-missing');
      assert.match(r.refusal.message, /does not exist.*mounted/);
    }
  });

  it('refuses a source that is not a directory', async () => {
    await writeFile(join(dir, 'plain'), 'x');
    const r = await checkSourceBeforeRun(join(dir, 'plain'), null, { oneFileSystem: false });
    assert.equal(r.ok ? null : r.refusal.code, 'source-not-directory');
  });

  it('refuses an empty source only when the previous snapshot had files', async () => {
    await mkdir(join(dir, 'empty'));
    const first = await checkSourceBeforeRun(join(dir, 'empty'), null, { oneFileSystem: false });
    assert.equal(first.ok, true);
    const again = await checkSourceBeforeRun(join(dir, 'empty'), { files: 12 }, { oneFileSystem: false });
    assert.equal(again.ok ? null : again.refusal.code, 'source-empty');
    if (!again.ok) assert.match(again.refusal.message, /12 files.*--allow-mass-delete/);
  });

  it('with one_file_system, refuses a source on another device than before', async () => {
    await mkdir(join(dir, 'dev'));
    await writeFile(join(dir, 'dev', 'f'), 'x');
    const r = await checkSourceBeforeRun(join(dir, 'dev'), { files: 1, sourceDev: 987654321n }, { oneFileSystem: true });
    assert.equal(r.ok ? null : r.refusal.code, 'source-other-device');
    const off = await checkSourceBeforeRun(join(dir, 'dev'), { files: 1, sourceDev: 987654321n }, { oneFileSystem: false });
    assert.equal(off.ok, true);
  });

  it('refuses when more than max_delete_ratio of the previous files are gone', () => {
    assert.equal(checkDeletionRatio('/s', 100, 50, 0.5), null);
    assert.equal(checkDeletionRatio('/s', 100, 51, 0.5)?.code, 'too-many-deleted');
    assert.match(checkDeletionRatio('/s', 100, 51, 0.5)!.message, /lost 51 of .* 100 files \(51%/);
    assert.equal(checkDeletionRatio('/s', 0, 0, 0.5), null);
  });
});

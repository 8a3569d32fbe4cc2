import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp, readdirSync, readFileSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { blobId } from '../src/repo/crypto.js';
import { WrongPassphraseError, RepoNotFoundError, RepoExistsError, SnapshotNotFoundError } from '../src/repo/errors.js';
import { Repository, type RepoOptions, type SnapshotCache } from '../src/repo/repository.js';
import type { Tree, TreeEntry } from '../src/repo/types.js';
import { LocalStore } from '../src/store/local-store.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { FakeClock } from './helpers/fake-clock.js';

const PASS = 'correct horse battery staple';
const opts = (clock = new FakeClock('2025-01-01T00:00:00Z')): RepoOptions => ({ clock, workers: 2, kdf: { N: 1024, r: 8, p: 1 } });

/** Text-like compressible bytes. */
function textBytes(n: number, seed = 1): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'nightjar', 'backup', 'window', 'chunk', 'pack', 'index'];
  const parts: string[] = [];
  let x = seed;
  let len = 0;
  while (len < n) {
    x = (x * 1103515245 + 12345) >>> 0;
    const w = words[x % words.length]! + (x % 97) + ' ';
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

function fileEntry(name: string | Buffer, content: string[], size: number): TreeEntry {
  return {
    name: typeof name === 'string' ? Buffer.from(name) : name,
    type: 'file',
    mode: 0o100644,
    uid: 1000,
    gid: 1000,
    mtimeNs: 1_700_000_000_123_456_789n,
    ctimeNs: 1_700_000_000_999_999_999n,
    size,
    inode: 2n ** 63n - 5n,
    dev: 66306n,
    nlink: 1,
    content,
  };
}

describe('Repository round trip on a local store', () => {
  let dir: string;
  let src: string;
  before(async () => {
    dir = await fsp.mkdtemp(path.join(tmpdir(), 'nj-repo-'));
    src = path.join(dir, 'src');
    await fsp.mkdir(src);
  });
  after(() => fsp.rm(dir, { recursive: true, force: true }));

  it('saves files and trees, writes a snapshot, reopens and reads back byte-exact', async () => {
    const store = new LocalStore(path.join(dir, 'repo'));
    const repo = await Repository.init(store, PASS, { ...opts(), packSize: 4 * 1024 * 1024 });
    const files = {
      'empty': Buffer.alloc(0),
      'small.txt': Buffer.from('hello nightjar\n'),
      'text.log': textBytes(9 * 1024 * 1024),
      'random.bin': randomBytes(6 * 1024 * 1024 + 17),
    };
    const entries: TreeEntry[] = [];
    for (const [name, data] of Object.entries(files)) {
      await fsp.writeFile(path.join(src, name), data);
      const r = await repo.saveFile(Buffer.from(path.join(src, name)), {});
      assert.equal(r.size, data.length);
      assert.equal(r.bytesRead, data.length);
      assert.equal(r.changedWhileRead, false);
      entries.push(fileEntry(name, r.content, data.length));
    }
    const odd = Buffer.from([0x66, 0xff, 0xfe, 0x2e, 0x74]); // not UTF-8
    entries.push({ ...fileEntry(odd, [], 0), type: 'symlink', linkTarget: Buffer.from([0x2e, 0x2e, 0xc3]), content: undefined });
    const sub: Tree = { entries: [fileEntry('inner', [], 0)] };
    const subId = await repo.saveTree(sub);
    entries.push({ ...fileEntry('subdir', [], 0), type: 'dir', content: undefined, subtree: subId });
    const treeId = await repo.saveTree({ entries });
    const snap = await repo.saveSnapshot({ tree: treeId, host: 'h', job: 'j', target: 't:x', source: src, tags: ['a'], stats: { files: 4 } });
    await repo.close();

    const againStore = new LocalStore(path.join(dir, 'repo'));
    const again = await Repository.open(againStore, PASS, opts());
    assert.equal(again.id, repo.id);
    const latest = await again.findSnapshot('latest');
    assert.equal(latest.id, snap.id);
    assert.deepEqual(latest.stats, { files: 4 });
    assert.equal((await again.findSnapshot(snap.id.slice(0, 6))).id, snap.id);
    const tree = await again.loadTree(latest.tree);
    assert.equal(tree.entries.length, 6);
    // Sorted by name bytes; non-UTF-8 names and link targets exact; bigints exact.
    const names = tree.entries.map((e) => e.name);
    assert.deepEqual(names, [...names].sort(Buffer.compare));
    const link = tree.entries.find((e) => e.type === 'symlink')!;
    assert.deepEqual(link.name, odd);
    assert.deepEqual(link.linkTarget, Buffer.from([0x2e, 0x2e, 0xc3]));
    for (const e of tree.entries.filter((x) => x.type === 'file')) {
      assert.equal(e.inode, 2n ** 63n - 5n);
      assert.equal(e.mtimeNs, 1_700_000_000_123_456_789n);
      const parts: Buffer[] = [];
      await again.readFileContent(e.content!, async (c) => void parts.push(c));
      assert.ok(Buffer.concat(parts).equals(files[e.name.toString() as keyof typeof files]), e.name.toString());
    }
    const dirEntry = tree.entries.find((e) => e.type === 'dir')!;
    assert.deepEqual((await again.loadTree(dirEntry.subtree!)).entries[0]!.name, Buffer.from('inner'));
    const report = await again.check({ readData: true });
    assert.deepEqual(report.problems, []);
    assert.ok(report.ok);
    assert.deepEqual(report.unreferencedPacks, []);
    await again.close();
    await againStore.close(); // its range-read handles (the caller closes the store, as openTarget's callers do)
  });

  it('lists snapshots through the snapshot cache: only new objects are read, pruned ones leave it, a bad entry is read again', async () => {
    const store = new MemoryStore();
    const reads: string[] = [];
    const read = store.read.bind(store);
    store.read = (name, range) => (name.startsWith('snapshots/') && reads.push(name), read(name, range));
    let saved = new Map<string, Buffer>();
    let saves = 0;
    const snapshotCache: SnapshotCache = { load: async () => new Map(saved), save: async (m) => void ((saved = new Map(m)), saves++) };
    const clock = new FakeClock('2025-01-01T00:00:00Z');
    const repo = await Repository.init(store, PASS, { ...opts(clock), snapshotCache });
    const tree = await repo.saveTree({ entries: [] });
    const ids: string[] = [];
    for (const job of ['a', 'b', 'c']) {
      ids.push((await repo.saveSnapshot({ tree, host: 'h', job, target: 't', source: '/s' })).id);
      await clock.advance(1000);
    }
    const byJob = (list: { job: string }[]) => list.map((x) => x.job);
    assert.deepEqual(byJob(await repo.listSnapshots()), ['a', 'b', 'c']);
    assert.equal(reads.length, 3);
    assert.deepEqual([...saved.keys()].sort(), [...ids].sort());
    // Nothing new: no snapshot object read, the cache not written again.
    reads.length = 0;
    assert.deepEqual(byJob(await repo.listSnapshots()), ['a', 'b', 'c']);
    assert.deepEqual(reads, []);
    assert.equal(saves, 1);
    // A snapshot removed from the store (prune) leaves the list and the cache.
    await store.delete(`snapshots/${ids[1]}`);
    assert.deepEqual(byJob(await repo.listSnapshots()), ['a', 'c']);
    assert.deepEqual(reads, []);
    assert.deepEqual([...saved.keys()].sort(), [ids[0], ids[2]].sort());
    // A damaged (or foreign) entry is not believed: that object is read from the store.
    const bad = Buffer.from(saved.get(ids[2]!)!);
    bad[bad.length - 1]! ^= 1;
    saved.set(ids[2]!, bad);
    assert.deepEqual(byJob(await repo.listSnapshots()), ['a', 'c']);
    assert.deepEqual(reads, [`snapshots/${ids[2]}`]);
    assert.ok(saved.get(ids[2]!)!.equals(await read(`snapshots/${ids[2]}`)));
    await repo.close();
  });

  it('a wrong passphrase gets WrongPassphraseError with a clear message', async () => {
    await assert.rejects(Repository.open(new LocalStore(path.join(dir, 'repo')), 'nope', opts()), (e: unknown) => {
      assert.ok(e instanceof WrongPassphraseError);
      assert.match(e.message, /wrong passphrase/);
      return true;
    });
  });

  it('open of an empty store is RepoNotFoundError; init twice is RepoExistsError; openOrInit does both', async () => {
    const store = new LocalStore(path.join(dir, 'other'));
    await assert.rejects(Repository.open(store, PASS, opts()), RepoNotFoundError);
    const a = await Repository.openOrInit(store, PASS, opts());
    assert.equal(a.created, true);
    await assert.rejects(Repository.init(store, PASS, opts()), RepoExistsError);
    const b = await Repository.openOrInit(store, PASS, opts());
    assert.equal(b.created, false);
    assert.equal(b.repo.id, a.repo.id);
    await assert.rejects(b.repo.findSnapshot('latest'), SnapshotNotFoundError);
    await a.repo.close();
    await b.repo.close();
  });

  it('init with startWorkers: its threads boot at once, and end with a failed init (a store that refuses the config)', async () => {
    const threads = () => readdirSync('/proc/self/task').length;
    const base = threads();
    const store = new MemoryStore();
    const write = store.write.bind(store);
    store.write = async (name, data) => {
      if (name === 'config') {
        // The threads were started before the key was derived and written.
        assert.ok(threads() >= base + 2, `chunk threads running while the objects are written (${threads()} vs ${base})`);
        throw Object.assign(new Error('disk full'), { code: 'ENOSPC' });
      }
      return write(name, data);
    };
    await assert.rejects(Repository.init(store, PASS, { ...opts(), startWorkers: true }), /disk full/);
    for (let i = 0; i < 100 && threads() > base; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(threads(), base, 'no chunk thread left behind');
    // A store that takes it: the new repository stores a file with the threads it started.
    const ok = await Repository.init(new MemoryStore(), PASS, { ...opts(), startWorkers: true });
    await fsp.writeFile(path.join(src, 'early.txt'), textBytes(100_000));
    const saved = await ok.saveFile(Buffer.from(path.join(src, 'early.txt')), {});
    assert.equal(saved.size, 100_000);
    await ok.close();
  });

  it('chunk threads run 10 nice steps below the process (Linux), the main thread as it was', { skip: process.platform !== 'linux' }, async () => {
    const nice = (tid: string): number => {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    };
    const base = getPriority();
    const repo = await Repository.init(new MemoryStore(), PASS, { ...opts(), startWorkers: true });
    await fsp.writeFile(path.join(src, 'nice.txt'), textBytes(10_000));
    await repo.saveFile(Buffer.from(path.join(src, 'nice.txt')), {}); // both threads are up
    const target = Math.min(19, base + 10);
    let values = readdirSync('/proc/self/task').map(nice);
    // The second thread may still be booting (it lowers its priority first thing).
    for (let i = 0; i < 100 && values.filter((v) => v === target).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      values = readdirSync('/proc/self/task').map(nice);
    }
    await repo.close();
    assert.equal(nice(String(process.pid)), base, 'the main thread keeps its priority');
    assert.equal(values.filter((v) => v === target).length, 2, `two chunk threads nicer (${values.join(' ')})`);
  });

  it('a chunk waiting for another file\'s reservation when its own file ends claims nothing (no blob left reserved for nobody)', async () => {
    const repo = await Repository.init(new MemoryStore(), PASS, opts());
    const file = Buffer.from(path.join(src, 'waits.txt'));
    const data = textBytes(50_000); // one chunk: its id is the whole file's
    await fsp.writeFile(file.toString(), data);
    const internals = repo as unknown as { claim(id: string): boolean | Promise<boolean>; unclaim(id: string): void };
    const id = blobId(repo.masterKeys.idKey, data);
    assert.equal(internals.claim(id), true, 'the test holds the reservation, as a file storing it would');
    const claim = internals.claim.bind(repo);
    let waiting!: () => void;
    const waited = new Promise<void>((r) => (waiting = r));
    internals.claim = (x) => {
      const r = claim(x);
      if (typeof r !== 'boolean') waiting();
      return r;
    };
    const ac = new AbortController();
    const saving = repo.saveFile(file, { signal: ac.signal });
    await waited;
    ac.abort(new Error('stopped'));
    await assert.rejects(saving, /stopped/);
    // The holder gives up: the waiting claim goes on, for a file that has ended.
    internals.unclaim(id);
    await new Promise((r) => setTimeout(r, 50));
    internals.claim = claim;
    let timer: NodeJS.Timeout | undefined;
    const next = new AbortController();
    try {
      const again = await Promise.race([
        repo.saveFile(file, { signal: next.signal }),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the next file waits for a reservation nobody holds')), 5000))),
      ]);
      assert.equal(again.bytesNew, data.length, 'the next file with that content stores it');
    } finally {
      clearTimeout(timer);
      next.abort(); // a file still waiting (the defect) must not keep the test alive
      await repo.close();
    }
  });

  it('dedups: the same file twice adds no new blob bytes; compression is skipped for random data', async () => {
    const store = new LocalStore(path.join(dir, 'dedup'));
    const repo = await Repository.init(store, PASS, opts());
    const data = randomBytes(5 * 1024 * 1024);
    await fsp.writeFile(path.join(src, 'a.bin'), data);
    await fsp.writeFile(path.join(src, 'b.bin'), data);
    const a = await repo.saveFile(Buffer.from(path.join(src, 'a.bin')), {});
    assert.equal(a.bytesNew, data.length);
    // Random data is stored uncompressed: sealed size = raw + 28 bytes per blob.
    assert.equal(a.bytesWritten, data.length + 28 * a.content.length);
    const b = await repo.saveFile(Buffer.from(path.join(src, 'b.bin')), {});
    assert.deepEqual(b.content, a.content);
    assert.equal(b.bytesNew, 0);
    assert.equal(b.bytesWritten, 0);
    await repo.flush();
    for (const id of a.content) assert.ok(repo.hasBlob(id));
    // A reopened repository dedups against the index.
    await repo.close();
    const again = await Repository.open(store, PASS, opts());
    const c = await again.saveFile(Buffer.from(path.join(src, 'a.bin')), {});
    assert.equal(c.bytesNew, 0);
    // Text compresses.
    await fsp.writeFile(path.join(src, 't.txt'), textBytes(3 * 1024 * 1024, 7));
    const t = await again.saveFile(Buffer.from(path.join(src, 't.txt')), {});
    assert.ok(t.bytesWritten < t.bytesNew / 2, `${t.bytesWritten} vs ${t.bytesNew}`);
    await again.close();
  });

  it('concurrent saveFile of identical files stores each blob once', async () => {
    const store = new LocalStore(path.join(dir, 'conc'));
    const repo = await Repository.init(store, PASS, opts());
    const data = randomBytes(3 * 1024 * 1024);
    const paths = [0, 1, 2, 3].map((i) => path.join(src, `same${i}`));
    await Promise.all(paths.map((p) => fsp.writeFile(p, data)));
    const rs = await Promise.all(paths.map((p) => repo.saveFile(Buffer.from(p), {})));
    assert.equal(rs.reduce((s, r) => s + r.bytesNew, 0), data.length);
    await repo.flush();
    const report = await repo.check({ readData: true });
    assert.ok(report.ok);
    assert.equal(report.blobs, rs[0]!.content.length);
    await repo.close();
  });

  it('files repeating one chunk, or holding the same chunks in opposite orders, save concurrently', async () => {
    // Each chunk waits for a blob reserved by an earlier chunk of its own file, or of the
    // other file, which itself waits for this file's: blobs must not queue behind chunks.
    const repo = await Repository.init(new LocalStore(path.join(dir, 'order')), PASS, opts());
    const data = randomBytes(6 * 1024 * 1024);
    const lens = repo.makeChunker().chunkAll(data);
    assert.ok(lens.length >= 3, 'random data gives several chunks');
    const c0 = data.subarray(0, lens[0]!);
    const c1 = data.subarray(lens[0]!, lens[0]! + lens[1]!);
    const a = path.join(src, 'order-a');
    const b = path.join(src, 'order-b');
    const z = path.join(src, 'zeros');
    await fsp.writeFile(a, Buffer.concat([c0, c1]));
    await fsp.writeFile(b, Buffer.concat([c1, c0]));
    await fsp.writeFile(z, Buffer.alloc(24 * 1024 * 1024));
    for (let round = 0; round < 3; round++) {
      const rs = await Promise.all([a, b, z].map((p) => repo.saveFile(Buffer.from(p), {})));
      assert.deepEqual(rs[1]!.content, [rs[0]!.content[1], rs[0]!.content[0]]);
      assert.ok(new Set(rs[2]!.content).size === 1 && rs[2]!.content.length >= 6);
    }
    await repo.flush();
    assert.ok((await repo.check({ readData: true })).ok);
    await repo.close();
  });

  it('saveFile rejects with the fs error for a missing file, and the repository stays usable', async () => {
    const repo = await Repository.init(new LocalStore(path.join(dir, 'err')), PASS, opts());
    await assert.rejects(repo.saveFile(Buffer.from(path.join(src, 'nope')), {}), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
    await assert.rejects(repo.saveFile(Buffer.from(src), {}), (e: NodeJS.ErrnoException) => e.code === 'EISDIR');
    const r = await repo.saveFile(Buffer.from(path.join(src, 'small.txt')), {});
    assert.equal(r.size, 15);
    await repo.close();
  });

  it('saveFile honours the gate and the abort signal', async () => {
    const repo = await Repository.init(new LocalStore(path.join(dir, 'gate')), PASS, opts());
    await fsp.writeFile(path.join(src, 'g.bin'), randomBytes(4 * 1024 * 1024));
    let gated = 0;
    const r = await repo.saveFile(Buffer.from(path.join(src, 'g.bin')), { gate: async () => void gated++ });
    assert.equal(gated, r.content.length);
    const ac = new AbortController();
    const p = repo.saveFile(Buffer.from(path.join(src, 'text.log')), {
      signal: ac.signal,
      gate: async () => ac.abort(new Error('suspended')),
    });
    await assert.rejects(p, /suspended/);
    await repo.flush();
    assert.ok((await repo.check({})).ok);
    await repo.close();
  });
});

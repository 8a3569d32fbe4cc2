import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Repository, type RepoOptions } from '../src/repo/repository.js';
import type { TreeEntry } from '../src/repo/types.js';
import { LocalStore } from '../src/store/local-store.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { StoreError, type Store } from '../src/store/store.js';
import { FakeClock } from './helpers/fake-clock.js';

const PASS = 'pw';
const opts = (): RepoOptions => ({ clock: new FakeClock('2025-01-01T00:00:00Z'), workers: 1, kdf: { N: 1024, r: 8, p: 1 } });

function entry(name: string, extra: Partial<TreeEntry>): TreeEntry {
  return {
    name: Buffer.from(name), type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: 1n, ctimeNs: 1n, size: 0,
    inode: 1n, dev: 1n, nlink: 1, ...extra,
  };
}

/** A store whose writes under `index/` fail, like a kill between pack and index writes. */
class NoIndexStore extends MemoryStore {
  killIndex = false;
  override async write(name: string, data: Buffer): Promise<void> {
    if (this.killIndex && name.startsWith('index/')) throw new StoreError('killed', { code: 'NJ_TEST_KILL' });
    return super.write(name, data);
  }
}

/** Saves /docs/a.bin and /docs/b.txt and /top.bin; returns the snapshot id and the content of a.bin. */
async function populate(repo: Repository, dir: string) {
  const files = { 'a.bin': randomBytes(300_000), 'b.txt': Buffer.from('b'.repeat(5000)), 'top.bin': randomBytes(1000) };
  const res: Record<string, string[]> = {};
  for (const [n, d] of Object.entries(files)) {
    await fsp.writeFile(path.join(dir, n), d);
    res[n] = (await repo.saveFile(Buffer.from(path.join(dir, n)), {})).content;
  }
  const docs = await repo.saveTree({
    entries: [entry('a.bin', { content: res['a.bin']!, size: 300_000 }), entry('b.txt', { content: res['b.txt']!, size: 5000 })],
  });
  const root = await repo.saveTree({
    entries: [entry('docs', { type: 'dir', subtree: docs }), entry('top.bin', { content: res['top.bin']!, size: 1000 })],
  });
  const snap = await repo.saveSnapshot({ tree: root, host: 'h', job: 'j', target: 't', source: '/src' });
  return { snap, res };
}

describe('Repository check', () => {
  let dir: string;
  before(async () => {
    dir = await fsp.mkdtemp(path.join(tmpdir(), 'nj-check-'));
  });
  after(() => fsp.rm(dir, { recursive: true, force: true }));

  it('a flipped byte in a pack: check --read-data names the pack and the snapshot path; plain check does not read data', async () => {
    const store = new LocalStore(path.join(dir, 'tamper'));
    const repo = await Repository.init(store, PASS, opts());
    const { snap, res } = await populate(repo, dir);
    assert.ok((await repo.check({ readData: true })).ok);
    // Find a.bin's pack and flip a byte inside its blob.
    const loc = (repo as unknown as { index: { get(id: string): { pack: string; offset: number } } }).index.get(res['a.bin']![0]!)!;
    const obj = `data/${loc.pack.slice(0, 2)}/${loc.pack}`;
    const file = path.join(store.root, obj);
    const bytes = await fsp.readFile(file);
    bytes[loc.offset + 100]! ^= 0x40;
    await fsp.chmod(file, 0o644);
    await fsp.writeFile(file, bytes);
    await repo.close();
    await store.close(); // the caller closes the store (its range-read handles), as openTarget's callers do

    const againStore = new LocalStore(store.root);
    const again = await Repository.open(againStore, PASS, opts());
    const report = await again.check({ readData: true });
    assert.equal(report.ok, false);
    const p = report.problems.find((x) => x.object === obj);
    assert.ok(p, JSON.stringify(report.problems));
    assert.ok(p.affected.includes(`${snap.id}:/docs/a.bin`), JSON.stringify(p.affected));
    assert.ok(!p.affected.some((a) => a.endsWith('/top.bin')));
    // Reading the damaged blob fails loudly.
    await assert.rejects(again.readBlob(res['a.bin']![0]!), /integrity check failed/);
    await again.close();
    await againStore.close();
  });

  it('a deleted pack: check names it as missing with the dependent paths', async () => {
    const store = new MemoryStore();
    const repo = await Repository.init(store, PASS, opts());
    const { snap } = await populate(repo, dir);
    const packs: string[] = [];
    for await (const o of store.list('data/')) packs.push(o.name);
    for (const p of packs) await store.delete(p);
    const report = await repo.check({});
    assert.equal(report.ok, false);
    const all = report.problems.flatMap((p) => p.affected);
    assert.ok(all.includes(`${snap.id}:/`), JSON.stringify(report.problems));
    assert.ok(report.problems.every((p) => p.kind === 'missing-pack'));
    await repo.close();
  });

  it('a kill between packs and index leaves a repository that opens and checks clean (orphan packs are reported, not damage)', async () => {
    const store = new NoIndexStore();
    const good = await Repository.init(store, PASS, opts());
    const { snap } = await populate(good, dir);
    await good.close();
    const repo = await Repository.open(store, PASS, opts());
    await fsp.writeFile(path.join(dir, 'new.bin'), randomBytes(200_000));
    // Saves go into a pack; the index write "dies".
    store.killIndex = true;
    await repo.saveFile(Buffer.from(path.join(dir, 'new.bin')), {});
    await assert.rejects(repo.flush(), /killed/);
    await assert.rejects(repo.saveTree({ entries: [] }), /killed/);
    await repo.close();
    store.killIndex = false;

    const after = await Repository.open(store, PASS, opts());
    const report = await after.check({ readData: true });
    assert.ok(report.ok, JSON.stringify(report.problems));
    assert.equal(report.unreferencedPacks.length, 1);
    assert.equal(report.snapshots, 1);
    assert.equal((await after.listSnapshots())[0]!.id, snap.id);
    await after.close();
  });

  it('a damaged index object is reported by name and does not stop open', async () => {
    const store = new MemoryStore();
    const repo = await Repository.init(store, PASS, opts());
    await populate(repo, dir);
    await repo.close();
    const idx: string[] = [];
    for await (const o of store.list('index/')) idx.push(o.name);
    store.tamper(idx[0]!, (b) => void (b[b.length - 1]! ^= 1));
    const again = await Repository.open(store, PASS, opts());
    const report = await again.check({});
    assert.ok(report.problems.some((p) => p.object === idx[0] && p.kind === 'bad-index'));
    await again.close();
  });

  it('two instances writing into one store at once both produce valid snapshots', async () => {
    const store: Store = new MemoryStore();
    const a = await Repository.init(store, PASS, opts());
    const b = await Repository.open(store, PASS, opts());
    await fsp.mkdir(path.join(dir, 'a'), { recursive: true });
    await fsp.mkdir(path.join(dir, 'b'), { recursive: true });
    await Promise.all([populate(a, path.join(dir, 'a')), populate(b, path.join(dir, 'b'))]);
    const c = await Repository.open(store, PASS, opts());
    const report = await c.check({ readData: true });
    assert.ok(report.ok, JSON.stringify(report.problems));
    assert.equal(report.snapshots, 2);
    await Promise.all([a.close(), b.close(), c.close()]);
  });
});

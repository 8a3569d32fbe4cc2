import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { prune, PruneRefusedError } from '../src/repo/prune.js';
import { Repository, type RepoOptions } from '../src/repo/repository.js';
import type { TreeEntry } from '../src/repo/types.js';
import { LocalStore } from '../src/store/local-store.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { StoreError } from '../src/store/store.js';
import { FakeClock } from './helpers/fake-clock.js';

const PASS = 'pw';
const opts = (): RepoOptions => ({ clock: new FakeClock('2026-11-01T00:00:00Z'), workers: 1, kdf: { N: 1024, r: 8, p: 1 }, packSize: 64 * 1024 });

function entry(name: string, content: string[], size: number): TreeEntry {
  return { name: Buffer.from(name), type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: 1n, ctimeNs: 1n, size, inode: 1n, dev: 1n, nlink: 1, content };
}

/** A store whose listing of one prefix fails. */
class FailingListStore extends MemoryStore {
  failPrefix: string | null = null;
  override async *list(prefix: string) {
    if (this.failPrefix !== null && prefix.startsWith(this.failPrefix)) throw new StoreError('listing failed: 503', { code: 'NJ_TEST' });
    yield* super.list(prefix);
  }
}

let dir: string;
before(async () => {
  dir = await fsp.mkdtemp(path.join(tmpdir(), 'nj-prune-'));
});
after(() => fsp.rm(dir, { recursive: true, force: true }));

/** Snapshot i holds one shared file and one file of its own (200 KiB random: its own packs). */
async function makeSnapshots(repo: Repository, n: number): Promise<{ id: string; own: Buffer; shared: Buffer }[]> {
  const shared = randomBytes(100_000);
  await fsp.writeFile(path.join(dir, 'shared'), shared);
  const out = [];
  for (let i = 0; i < n; i++) {
    const own = randomBytes(200_000);
    const f = path.join(dir, `own${i}`);
    await fsp.writeFile(f, own);
    const a = await repo.saveFile(Buffer.from(path.join(dir, 'shared')));
    const b = await repo.saveFile(Buffer.from(f));
    const tree = await repo.saveTree({ entries: [entry('own', b.content, own.length), entry('shared', a.content, shared.length)] });
    await repo.flush();
    const snap = await repo.saveSnapshot({ tree, host: 'h', job: 'j', target: 't', source: '/s' });
    out.push({ id: snap.id, own, shared });
  }
  return out;
}

async function readFile(repo: Repository, snapId: string, name: string): Promise<Buffer> {
  const snap = await repo.loadSnapshot(snapId);
  const tree = await repo.loadTree(snap.tree);
  const e = tree.entries.find((x) => x.name.toString() === name)!;
  const parts: Buffer[] = [];
  await repo.readFileContent(e.content!, async (c) => void parts.push(Buffer.from(c)));
  return Buffer.concat(parts);
}

describe('prune', () => {
  it("removes pack files a killed backup left in a local repository, once they are a day old", async () => {
    const root = path.join(dir, 'spool-repo');
    const store = new LocalStore(root);
    const repo = await Repository.init(store, PASS, opts()); // clock: 2026-11-01T00:00Z
    await makeSnapshots(repo, 1);
    const stale = path.join(root, '.nj-tmp-pack-0123456789abcdef');
    const recent = path.join(root, '.nj-tmp-pack-fedcba9876543210');
    await fsp.writeFile(stale, randomBytes(1000));
    await fsp.writeFile(recent, randomBytes(1000));
    await fsp.utimes(stale, new Date('2026-10-30T23:00:00Z'), new Date('2026-10-30T23:00:00Z'));
    await fsp.utimes(recent, new Date('2026-10-31T12:00:00Z'), new Date('2026-10-31T12:00:00Z'));
    await repo.close();
    const reopened = await Repository.open(store, PASS, opts());
    const report = await prune(reopened, {});
    await reopened.close();
    assert.equal(report.spoolFilesRemoved, 1);
    await assert.rejects(fsp.stat(stale), { code: 'ENOENT' });
    await fsp.stat(recent); // under a day old: it may belong to a live backup
    const again = await Repository.open(store, PASS, opts());
    const dry = await prune(again, { dryRun: true });
    await again.close();
    assert.equal(dry.spoolFilesRemoved, 0);
  });

  it('after forgetting snapshots frees their packs; the rest restores and check --read-data passes', async () => {
    const store = new MemoryStore();
    const repo = await Repository.init(store, PASS, opts());
    const snaps = await makeSnapshots(repo, 4);
    await repo.close();
    // forget the two oldest
    await store.delete(`snapshots/${snaps[0]!.id}`);
    await store.delete(`snapshots/${snaps[1]!.id}`);
    const countData = async () => {
      let n = 0;
      let bytes = 0;
      for await (const o of store.list('data/')) (n++, (bytes += o.size));
      return { n, bytes };
    };
    const before = await countData();

    const r1 = await Repository.open(store, PASS, opts());
    const dry = await prune(r1, { dryRun: true });
    assert.ok(dry.deletedPacks.length > 0);
    assert.deepEqual(await countData(), before, 'a dry run deletes nothing');
    const report = await prune(r1, {});
    await r1.close();
    assert.equal(report.snapshots, 2);
    assert.ok(report.bytesFreed >= 2 * 200_000, `freed ${report.bytesFreed}`);
    const afterCount = await countData();
    assert.equal(before.bytes - afterCount.bytes, report.bytesFreed);

    const r2 = await Repository.open(store, PASS, opts());
    const check = await r2.check({ readData: true });
    assert.ok(check.ok, JSON.stringify(check.problems));
    assert.deepEqual(check.unreferencedPacks, []);
    for (const s of snaps.slice(2)) {
      assert.ok((await readFile(r2, s.id, 'own')).equals(s.own));
      assert.ok((await readFile(r2, s.id, 'shared')).equals(s.shared));
    }
    // A second prune has nothing left to do.
    const again = await prune(r2, {});
    assert.equal(again.bytesFreed, 0);
    // The exclusive lock was released.
    await (await r2.lock(false)).release();
    await r2.close();
  });

  it('repacks a mostly-garbage pack: its live blob moves, the old pack goes, everything still reads', async () => {
    const store = new MemoryStore();
    const repo = await Repository.init(store, PASS, { ...opts(), packSize: 1024 * 1024 });
    // Five small files share one pack; snapshot 1 has all five, snapshot 2 only the first.
    const files = Array.from({ length: 5 }, () => randomBytes(20_000));
    const contents: string[][] = [];
    for (const [i, d] of files.entries()) {
      const f = path.join(dir, `small${i}`);
      await fsp.writeFile(f, d);
      contents.push((await repo.saveFile(Buffer.from(f))).content);
    }
    const all = await repo.saveTree({ entries: files.map((d, i) => entry(`f${i}`, contents[i]!, d.length)) });
    const one = await repo.saveTree({ entries: [entry('f0', contents[0]!, files[0]!.length)] });
    await repo.flush();
    const s1 = await repo.saveSnapshot({ tree: all, host: 'h', job: 'j', target: 't', source: '/s' });
    const s2 = await repo.saveSnapshot({ tree: one, host: 'h', job: 'j', target: 't', source: '/s' });
    await repo.close();
    await store.delete(`snapshots/${s1.id}`);

    const r1 = await Repository.open(store, PASS, opts());
    const report = await prune(r1, {});
    await r1.close();
    assert.equal(report.repackedPacks.length, 1, JSON.stringify(report));
    assert.equal(report.newPacks.length, 1);
    assert.ok(report.bytesFreed >= 4 * 20_000, `freed ${report.bytesFreed}`);
    const r2 = await Repository.open(store, PASS, opts());
    const check = await r2.check({ readData: true });
    assert.ok(check.ok, JSON.stringify(check.problems));
    assert.deepEqual(check.unreferencedPacks, []);
    assert.ok((await readFile(r2, s2.id, 'f0')).equals(files[0]!));
    await r2.close();
  });

  it('refuses when a listing fails, and deletes nothing', async () => {
    const store = new FailingListStore();
    const repo = await Repository.init(store, PASS, opts());
    await makeSnapshots(repo, 2);
    await repo.close();
    const names = async () => {
      const out: string[] = [];
      for (const p of ['data/', 'index/', 'snapshots/']) for await (const o of store.list(p)) out.push(o.name);
      return out.sort();
    };
    const before = await names();
    for (const prefix of ['snapshots/', 'index/', 'data/']) {
      const r = await Repository.open(store, PASS, opts());
      store.failPrefix = prefix;
      await assert.rejects(prune(r, {}), PruneRefusedError);
      store.failPrefix = null;
      await r.close();
    }
    assert.deepEqual(await names(), before);
  });

  it('refuses on an empty snapshot listing while the index names packs', async () => {
    const store = new MemoryStore();
    const repo = await Repository.init(store, PASS, opts());
    const snaps = await makeSnapshots(repo, 1);
    await repo.close();
    await store.delete(`snapshots/${snaps[0]!.id}`);
    const r = await Repository.open(store, PASS, opts());
    await assert.rejects(prune(r, {}), /no snapshots were listed/);
    await r.close();
  });

  it('refuses while another writer holds a lock', async () => {
    const store = new MemoryStore();
    const repo = await Repository.init(store, PASS, opts());
    await makeSnapshots(repo, 1);
    const backupLock = await repo.lock(false);
    const other = await Repository.open(store, PASS, opts());
    await assert.rejects(prune(other, {}), /locked/);
    await backupLock.release();
    await repo.close();
    await other.close();
  });
});

describe('nightjar forget and prune (CLI)', () => {
  it('two runs, forget keeps the newest, prune frees the rest, check --read-data passes', async () => {
    const { runCli } = await import('./helpers/cli.js');
    const node = path.join(dir, 'node');
    const src = path.join(dir, 'cli-src');
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'a.bin'), randomBytes(300_000));
    assert.equal((await runCli(['create-node', node, '--source', src])).code, 0);
    const cfgFile = path.join(node, 'node.cfg');
    const cfg = await fsp.readFile(cfgFile, 'utf8');
    await fsp.writeFile(cfgFile, cfg.replace(/^(b1\.target = .*)$/m, '$1\nb1.keep = last 1'));
    const run1 = await runCli(['run-job', 'b1', '-d', node]);
    assert.equal(run1.code, 0, run1.stdout + run1.stderr);
    await fsp.writeFile(path.join(src, 'a.bin'), randomBytes(300_000));
    const run2 = await runCli(['run-job', 'b1', '-d', node]);
    assert.equal(run2.code, 0, run2.stdout + run2.stderr);

    const dry = await runCli(['forget', '-d', node, '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const plan = JSON.parse(dry.stdout) as { snapshots: { keep: boolean; reasons: string[] }[] };
    assert.deepEqual(plan.snapshots.map((s) => s.keep).sort(), [false, true]);
    const forget = await runCli(['forget', '-d', node]);
    assert.equal(forget.code, 0, forget.stderr);
    assert.match(forget.stdout, /1 snapshot forgotten, 1 kept/);
    const pr = await runCli(['prune', '-d', node, '--json']);
    assert.equal(pr.code, 0, pr.stderr);
    const [report] = JSON.parse(pr.stdout) as { bytesFreed: number }[];
    assert.ok(report!.bytesFreed >= 300_000, pr.stdout);
    const check = await runCli(['check', '-d', node, '--read-data']);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    const restore = path.join(dir, 'restored');
    const rs = await runCli(['restore', '-d', node, 'latest', restore]);
    assert.equal(rs.code, 0, rs.stdout + rs.stderr);
    const found: string[] = [];
    const walkDir = async (d: string): Promise<void> => {
      for (const e of await fsp.readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walkDir(path.join(d, e.name));
        else found.push(path.join(d, e.name));
      }
    };
    await walkDir(restore);
    const restored = found.find((f) => f.endsWith('a.bin'));
    assert.ok(restored, found.join('\n'));
    assert.ok((await fsp.readFile(restored)).equals(await fsp.readFile(path.join(src, 'a.bin'))), 'the kept snapshot restores the newest content');
  });
});

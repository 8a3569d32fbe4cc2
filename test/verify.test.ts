import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Repository, type RepoOptions } from '../src/repo/repository.js';
import { listPacks, packsInSubset, parseDataSubset, subsetForCycle, verifyPacks } from '../src/repo/verify.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { FakeClock } from './helpers/fake-clock.js';

const opts = (): RepoOptions => ({ clock: new FakeClock('2026-11-01T00:00:00Z'), workers: 1, kdf: { N: 1024, r: 8, p: 1 }, packSize: 32 * 1024 });
const fakePacks = Array.from({ length: 500 }, (_, i) => createHash('sha256').update(String(i)).digest('hex'));

describe('verify subset rotation', () => {
  for (const percent of [10, 25, 33, 50, 100]) {
    it(`${percent}%: ceil(100/${percent}) cycles read every pack exactly once`, () => {
      const cycles = Math.ceil(100 / percent);
      const seen = new Map<string, number>();
      for (let c = 0; c < cycles; c++) {
        const subset = subsetForCycle(percent, c);
        const picked = packsInSubset(fakePacks, subset);
        // about the share asked for
        assert.ok(Math.abs(picked.length - fakePacks.length / cycles) < fakePacks.length / cycles / 2 + 10, `${picked.length}`);
        for (const p of picked) seen.set(p, (seen.get(p) ?? 0) + 1);
      }
      assert.equal(seen.size, fakePacks.length);
      assert.ok([...seen.values()].every((n) => n === 1));
      // the next cycle starts the rotation again
      assert.deepEqual(subsetForCycle(percent, cycles), subsetForCycle(percent, 0));
    });
  }

  it('parses n/t and P%; refuses nonsense', () => {
    assert.deepEqual(parseDataSubset('2/5'), { bucket: 1, of: 5 });
    assert.deepEqual(parseDataSubset('10%', 13), { bucket: 3, of: 10 });
    for (const bad of ['0/5', '6/5', '0%', '101%', 'x']) assert.throws(() => parseDataSubset(bad), RangeError);
  });
});

describe('verifyPacks', () => {
  let dir: string;
  before(async () => {
    dir = await fsp.mkdtemp(path.join(tmpdir(), 'nj-verify-'));
  });
  after(() => fsp.rm(dir, { recursive: true, force: true }));

  it('passes on clean packs and names a damaged one', async () => {
    const store = new MemoryStore();
    const repo = await Repository.init(store, 'pw', opts());
    for (let i = 0; i < 4; i++) {
      const f = path.join(dir, `f${i}`);
      await fsp.writeFile(f, randomBytes(50_000));
      await repo.saveFile(Buffer.from(f));
    }
    await repo.flush();
    const packs = await listPacks(repo);
    assert.ok(packs.length >= 3);
    const clean = await verifyPacks(repo, packs);
    assert.deepEqual(clean.problems, []);
    assert.ok(clean.bytesRead >= 200_000);

    const victim = packs[1]!;
    const name = `data/${victim.slice(0, 2)}/${victim}`;
    const bytes = Buffer.from(await store.read(name));
    bytes[100]! ^= 1;
    await store.delete(name);
    await store.write(name, bytes);
    const damaged = await verifyPacks(repo, packs);
    assert.deepEqual(damaged.problems.map((p) => p.pack), [victim]);
    await repo.close();
  });
});

describe('nightjar check --read-data-subset', () => {
  it('reads back the bucket asked for; a damaged pack fails the check', async () => {
    const { runCli, tempDir } = await import('./helpers/cli.js');
    const { dir: root, cleanup } = await tempDir('nj-verify-cli-');
    try {
      const node = path.join(root, 'node');
      const src = path.join(root, 'src');
      await fsp.mkdir(src);
      await fsp.writeFile(path.join(src, 'a.bin'), randomBytes(100_000));
      assert.equal((await runCli(['create-node', node, '--source', src])).code, 0);
      assert.equal((await runCli(['run-job', 'b1', '-d', node])).code, 0);
      const ok = await runCli(['check', '-d', node, '--read-data-subset', '1/1']);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /read back \(subset 1\/1\)/);
      const bad = await runCli(['check', '-d', node, '--read-data-subset', '0/3']);
      assert.equal(bad.code, 2);

      const packsDir = path.join(node, 'repository', 'data');
      const sub = (await fsp.readdir(packsDir))[0]!;
      const packFile = path.join(packsDir, sub, (await fsp.readdir(path.join(packsDir, sub)))[0]!);
      const bytes = await fsp.readFile(packFile);
      bytes[10]! ^= 0x80;
      await fsp.chmod(packFile, 0o644);
      await fsp.writeFile(packFile, bytes);
      const damaged = await runCli(['check', '-d', node, '--read-data-subset', '100%']);
      assert.equal(damaged.code, 1, damaged.stdout + damaged.stderr);
      assert.match(damaged.stdout, /DAMAGED data\//);
    } finally {
      await cleanup();
    }
  });
});

import assert from 'node:assert/strict';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { backup, backupSuite, jobSpec, type BackupEnv } from './helpers/backup-env.js';

describe('mass-deletion guard in a run', () => {
  let dir: string;
  let src: string;
  let env: BackupEnv;
  backupSuite(
    async (s) => {
      for (let i = 0; i < 10; i++) await writeFile(join(s, `f${i}`), `file ${i}`);
    },
    (suite) => ({ dir, src, env } = suite),
  );
  before(async () => assert.equal((await backup(env, jobSpec(src))).status, 'complete'));

  const snapshots = async () => (await env.repo.listSnapshots()).length;

  it('refuses a source that is gone (unmounted drive) and writes no snapshot', async () => {
    await rename(src, `${src}.away`);
    try {
      const before = await snapshots();
      const r = await backup(env, jobSpec(src));
      assert.equal(r.status, 'refused');
      assert.equal(r.refusal?.code, 'source-missing');
      assert.equal(await snapshots(), before);
      const forced = await backup(env, jobSpec(src), { allowMassDelete: true });
      assert.equal(forced.status, 'refused', 'a missing source cannot be backed up even when forced');
    } finally {
      await rename(`${src}.away`, src);
    }
  });

  it('refuses an emptied source unless --allow-mass-delete', async () => {
    const empty = join(dir, 'empty-src');
    await mkdir(join(empty, 'x'), { recursive: true });
    await writeFile(join(empty, 'x', 'a'), 'a');
    assert.equal((await backup(env, jobSpec(empty, { name: 'e' }))).status, 'complete');
    await rm(join(empty, 'x'), { recursive: true });
    const r = await backup(env, jobSpec(empty, { name: 'e' }));
    assert.equal(r.status, 'refused');
    assert.equal(r.refusal?.code, 'source-empty');
    const forced = await backup(env, jobSpec(empty, { name: 'e' }), { allowMassDelete: true });
    assert.equal(forced.status, 'complete');
    assert.ok(forced.snapshot);
  });

  it('refuses when more than max_delete_ratio of the files are gone, and counts them', async () => {
    for (let i = 0; i < 6; i++) await rm(join(src, `f${i}`));
    const before = await snapshots();
    const r = await backup(env, jobSpec(src));
    assert.equal(r.status, 'refused');
    assert.equal(r.refusal?.code, 'too-many-deleted');
    assert.equal(r.stats.filesRemoved, 6);
    assert.match(r.refusal!.message, /lost 6 of the previous snapshot's 10 files \(60%/);
    assert.equal(await snapshots(), before);
    assert.equal((await backup(env, jobSpec(src, { maxDeleteRatio: 0.7 }))).status, 'complete');
  });

  it('with one_file_system, refuses a source now on another device', async () => {
    const prev = await env.repo.findSnapshot('latest', { job: 'b1' });
    // A previous snapshot taken when the source was on device 4242.
    await env.repo.saveSnapshot({
      tree: prev.tree,
      host: 'test',
      job: 'b1',
      target: 'local:b1',
      source: src,
      stats: { ...(prev.stats as object), sourceDev: '4242' },
      time: new Date(Date.parse(prev.time) + 1000),
    });
    const r = await backup(env, jobSpec(src, { oneFileSystem: true }));
    assert.equal(r.status, 'refused');
    assert.equal(r.refusal?.code, 'source-other-device');
    assert.equal((await backup(env, jobSpec(src, { oneFileSystem: true }), { allowMassDelete: true })).status, 'complete');
  });

  it('a dry run reports what would be stored and writes nothing', async () => {
    await writeFile(join(src, 'new-1'), 'n1');
    await writeFile(join(src, 'f9'), 'changed content');
    const before = await snapshots();
    const r = await backup(env, jobSpec(src), { dryRun: true });
    assert.equal(r.status, 'complete');
    assert.equal(r.snapshot, undefined);
    assert.equal(r.stats.filesNew, 1);
    assert.equal(r.stats.filesChanged, 1);
    assert.equal(r.stats.bytesRead, 2 + 15);
    assert.equal(await snapshots(), before);
    const real = await backup(env, jobSpec(src));
    assert.equal(real.stats.filesNew, 1, 'the dry run did not update the cache');
    assert.equal(real.stats.filesChanged, 1);
  });
});

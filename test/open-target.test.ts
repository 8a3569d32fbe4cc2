import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock } from '../src/node/clock.js';
import type { NodeConfig, TargetConfig } from '../src/node/config/types.js';
import { PassphraseFileError, withEachTarget, withSnapshot } from '../src/node/open-target.js';
import { Repository } from '../src/repo/repository.js';
import type { Snapshot } from '../src/repo/types.js';
import { LocalStore } from '../src/store/local-store.js';
import { StoreError } from '../src/store/store.js';
import { TEST_KDF } from './helpers/backup-env.js';
import { tempDir } from './helpers/cli.js';

function localTarget(alias: string, location: string, passphraseFile: string): TargetConfig {
  return {
    alias, kind: 'local', url: `local:${location}`, location, passphraseFile, bandwidth: null, budget: null,
    tokenFile: null, fingerprint: null, endpoint: null, region: null, pathStyle: false, accessKeyFile: null, secretKeyFile: null, storageClass: null,
  };
}

/** A repository in `location` holding one snapshot of `job`. */
async function repoWithSnapshot(location: string, job: string, time: Date): Promise<Snapshot> {
  const store = new LocalStore(location);
  const repo = await Repository.init(store, 'pw', { clock: systemClock, kdf: TEST_KDF, workers: 1 });
  try {
    return await repo.saveSnapshot({ tree: 'ab'.repeat(32), host: 'h', job, target: job, source: '/src', time });
  } finally {
    await repo.close();
    await store.close();
  }
}

test('each target in turn (the next opened meanwhile): unreachable ones skipped, snapshots found in any target, other errors thrown', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const pass = join(dir, 'passphrase');
    await writeFile(pass, 'pw\n');
    await writeFile(join(dir, 'a-file'), 'not a directory');
    const s1 = await repoWithSnapshot(join(dir, 'r1'), 'j1', new Date('2026-01-01T00:00:00Z'));
    const s2 = await repoWithSnapshot(join(dir, 'r2'), 'j2', new Date('2026-02-01T00:00:00Z'));
    const t1 = localTarget('t1', join(dir, 'r1'), pass);
    const bad = localTarget('bad', join(dir, 'a-file', 'repo'), pass); // its store fails: a StoreError
    const t2 = localTarget('t2', join(dir, 'r2'), pass);

    const visited: string[] = [];
    const skipped: string[] = [];
    const n = await withEachTarget([t1, bad, t2], { clock: systemClock, workers: 1 }, (t, err) => {
      assert.ok(err instanceof StoreError);
      skipped.push(t.alias);
    }, async (t, opened) => {
      assert.equal(opened.target, t);
      visited.push(`${t.alias}:${(await opened.repo.listSnapshots()).map((s) => s.id).join(',')}`);
    });
    assert.equal(n, 1);
    assert.deepEqual(skipped, ['bad']);
    assert.deepEqual(visited, [`t1:${s1.id}`, `t2:${s2.id}`]);

    const config = { jobs: {}, targets: { t1, bad, t2 } } as unknown as NodeConfig;
    const found = (ref: string) => withSnapshot(config, ref, { clock: systemClock, workers: 1 }, async (o, s) => `${o.target.alias}:${s.id}`);
    assert.equal(await found(s1.id.slice(0, 10)), `t1:${s1.id}`);
    assert.equal(await found('latest'), `t2:${s2.id}`);

    // A missing passphrase file is the user's mistake, not an unreachable target: it ends the command.
    const noPass = localTarget('nopass', join(dir, 'r1'), join(dir, 'missing'));
    await assert.rejects(withEachTarget([noPass, t2], { clock: systemClock }, () => assert.fail('not a StoreError'), async () => {}), PassphraseFileError);
    const withNoPass = { jobs: {}, targets: { t2, noPass } } as unknown as NodeConfig;
    await assert.rejects(withSnapshot(withNoPass, 'latest', { clock: systemClock }, async () => 0), PassphraseFileError);
  } finally {
    await cleanup();
  }
});

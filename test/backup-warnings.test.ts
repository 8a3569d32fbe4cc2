import assert from 'node:assert/strict';
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BackupRepository } from '../src/jobs/backup-run.js';
import { restoreSnapshot } from '../src/jobs/restore.js';
import { backup, jobSpec, openBackupEnv, spyRepo, type BackupEnv } from './helpers/backup-env.js';
import { removeDir, tempDir } from './helpers/fixture-tree.js';

const endsWith = (p: Buffer, name: string) => p.toString('latin1').endsWith(`/${name}`);

/**
 * The repository's workers lstat each file right after reading it (SaveFileResult.statAfter),
 * so a change made after saveFile returns is a later change, not one "while read". To
 * simulate a change during the read with an `after` hook, drop statAfter: the engine then
 * lstats the file itself, after the hook.
 */
function withoutStatAfter<T extends BackupRepository>(repo: T): T {
  const saveFile: BackupRepository['saveFile'] = async (path, o) => {
    const r = await repo.saveFile(path, o);
    delete r.statAfter;
    return r;
  };
  return new Proxy(repo, { get: (t, k, r) => (k === 'saveFile' ? saveFile : Reflect.get(t, k, r)) });
}

describe('bad files are warnings, the run ends partial and keeps its snapshot', () => {
  let dir: string;
  let env: BackupEnv;
  let n = 0;
  const freshSource = async (files: Record<string, string>) => {
    const src = join(dir, `src${n++}`);
    await mkdir(src);
    for (const [name, content] of Object.entries(files)) await writeFile(join(src, name), content);
    return src;
  };
  before(async () => {
    dir = await tempDir();
    env = await openBackupEnv(dir);
  });
  after(async () => {
    await env.close();
    await removeDir(dir);
  });

  it('a file that vanishes before it is read is a warning', async () => {
    const src = await freshSource({ keep: 'k', vanish: 'v' });
    const spy = spyRepo(env.repo, { before: (p) => (endsWith(p, 'vanish') ? rm(p) : undefined) });
    const r = await backup(env, jobSpec(src, { name: `w${n}` }), { repo: spy });
    assert.equal(r.status, 'partial');
    assert.ok(r.snapshot, 'the snapshot is kept');
    assert.deepEqual(r.stats.warnings, [{ path: 'vanish', message: 'cannot read file: vanished during the backup' }]);
    const dest = join(dir, `out${n}`);
    await restoreSnapshot(env.repo, r.snapshot!, null, dest);
    assert.equal(await readFile(join(dest, 'keep'), 'utf8'), 'k');
  });

  it('an unreadable file (EACCES from the reader) is a warning', async () => {
    const src = await freshSource({ ok: 'o', locked: 'l' });
    const spy = spyRepo(env.repo, {
      before: (p) => {
        if (endsWith(p, 'locked')) throw Object.assign(new Error(`EACCES: permission denied, open '${p}'`), { code: 'EACCES', path: p.toString() });
      },
    });
    const r = await backup(env, jobSpec(src, { name: `w${n}` }), { repo: spy });
    assert.equal(r.status, 'partial');
    assert.equal(r.stats.warnings[0]!.message, 'cannot read file: permission denied');
  });

  it('a file replaced by a directory is a warning', async () => {
    const src = await freshSource({ ok: 'o', morph: 'm' });
    const spy = spyRepo(env.repo, {
      before: async (p) => {
        if (endsWith(p, 'morph')) {
          await rm(p);
          await mkdir(p);
        }
      },
    });
    const r = await backup(env, jobSpec(src, { name: `w${n}` }), { repo: spy });
    assert.equal(r.status, 'partial');
    assert.equal(r.stats.warningCount, 1);
    assert.match(r.stats.warnings[0]!.message, /replaced by a directory|cannot read file/);
  });

  it('a file that changed while read is read once more and stored consistent, without a warning', async () => {
    const src = await freshSource({ growing: 'start' });
    let appended = false;
    const spy = spyRepo(env.repo, {
      after: async (p) => {
        if (!appended) {
          appended = true;
          await appendFile(p, '+more');
        }
      },
    });
    const r = await backup(env, jobSpec(src, { name: `w${n}` }), { repo: withoutStatAfter(spy) });
    assert.equal(r.status, 'complete');
    assert.equal(spy.saveFileCalls.length, 2);
    const dest = join(dir, `out${n}`);
    await restoreSnapshot(env.repo, r.snapshot!, null, dest);
    assert.equal(await readFile(join(dest, 'growing'), 'utf8'), 'start+more');
  });

  it('a file that keeps changing is stored once more with a warning, and not cached', async () => {
    const src = await freshSource({ log: 'line\n' });
    const spy = spyRepo(env.repo, { after: (p) => appendFile(p, 'line\n') });
    const job = jobSpec(src, { name: `w${n}` });
    const r = await backup(env, job, { repo: withoutStatAfter(spy) });
    assert.equal(r.status, 'partial');
    assert.equal(spy.saveFileCalls.length, 2);
    assert.match(r.stats.warnings[0]!.message, /changed while being read/);
    const again = spyRepo(env.repo);
    const r2 = await backup(env, job, { repo: again });
    assert.equal(again.saveFileCalls.length, 1, 'an inconsistent file is read again next time');
    assert.equal(r2.status, 'complete');
  });
});

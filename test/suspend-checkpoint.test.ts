/**
 * The engine at a closed gate: one checkpoint before parking (repository flushed, finished
 * directories' cache rows saved, onCheckpoint parked), onUnpark once when it goes on; and
 * finish_file lets started files finish while the window is closed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RunGate } from '../src/jobs/run-gate.js';
import { GATE_SLOT, GATE_WINDOW } from '../src/jobs/scheduler.js';
import { systemClock } from '../src/node/clock.js';
import { Repository } from '../src/repo/repository.js';
import { backup, jobSpec, openBackupEnv, spyRepo, TEST_KDF } from './helpers/backup-env.js';
import { tempDir } from './helpers/cli.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => ({ dir: root, cleanup } = await tempDir('nightjar-suspend-cp-')));
after(() => cleanup());

async function source(name: string, dirs: number, files: number, size: number): Promise<string> {
  const src = join(root, name);
  for (let d = 0; d < dirs; d++) {
    await mkdir(join(src, `d${d}`), { recursive: true });
    for (let f = 0; f < files; f++) await writeFile(join(src, `d${d}`, `f${String(f).padStart(2, '0')}`), randomBytes(size));
  }
  return src;
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), 'timed out');
};

test('a run parked at a closed gate writes one checkpoint first: blobs durable, finished directories cached; unpark once', async () => {
  const src = await source('a', 16, 20, 100_000);
  const env = await openBackupEnv(join(root, 'env-a'));
  try {
    const gate = new RunGate();
    let saved = 0;
    const repo = spyRepo(env.repo, { after: () => void (++saved === 120 && gate.close(GATE_WINDOW)) });
    const parked: number[] = [];
    let unparks = 0;
    const run = backup(env, jobSpec(src), {
      repo,
      gate: () => gate.wait(),
      gateClosed: () => !gate.isOpen,
      onCheckpoint: (stats, info) => void (info?.parked && parked.push(stats.filesTotal)),
      onUnpark: () => void unparks++,
    });
    await until(() => parked.length === 1 && gate.waiting > 0);
    // Another process (a restarted node) sees what the checkpoint stored.
    const other = await Repository.open(env.store, 'test passphrase', { clock: systemClock, kdf: TEST_KDF });
    try {
      // Files land out of order (many in flight), so which directories are finished (if
      // any) when the gate closes varies; whatever the checkpoint cached must be durable.
      let cached = 0;
      for (let d = 0; d < 16; d++) {
        const row = await env.db.fileCache.loadDir(env.repo.id, 'b1', Buffer.from(`d${d}`));
        if (!row) continue;
        cached++;
        assert.equal(row.size, 20);
        for (const f of row.values()) for (const id of f.content) assert.ok(other.hasBlob(id), 'cached content is durable');
      }
      assert.ok(cached <= 16);
    } finally {
      await other.close();
    }
    const readWhileParked = saved;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(saved, readWhileParked, 'nothing is read while parked');
    gate.open(GATE_WINDOW);
    const result = await run;
    assert.equal(result.status, 'complete');
    assert.equal(parked.length, 1, 'one checkpoint per park');
    assert.equal(unparks, 1);
    assert.equal(result.stats.filesNew, 320);
  } finally {
    await env.close();
  }
});

test('finish_file: files started before the window closed are finished, then the run parks at the next file', async () => {
  const src = await source('b', 2, 6, 3 * 1024 * 1024);
  const env = await openBackupEnv(join(root, 'env-b'));
  try {
    const gate = new RunGate();
    let started = 0;
    let finished = 0;
    const repo = spyRepo(env.repo, {
      before: () => void (++started === 3 && gate.close(GATE_WINDOW)),
      after: () => void finished++,
    });
    const ignore = [GATE_WINDOW, GATE_SLOT];
    const run = backup(env, jobSpec(src), {
      repo,
      fileConcurrency: 4,
      gate: (at) => gate.wait(undefined, at === 'chunk' ? ignore : undefined),
      gateClosed: (at) => (at === 'chunk' ? !gate.isOpenIgnoring(ignore) : !gate.isOpen),
    });
    await until(() => gate.waiting > 0 && finished === started);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(finished, started, 'every started file was finished, none is parked mid-file');
    assert.ok(started < 12);
    gate.open(GATE_WINDOW);
    assert.equal((await run).status, 'complete');
  } finally {
    await env.close();
  }
});

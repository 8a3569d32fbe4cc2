/**
 * End to end through real `nightjar start` processes with the NIGHTJAR_TEST_CLOCK hook
 * (src/node/clock.ts): a job in window 2200-2201 over a dataset too big for one window is
 * suspended at the close with its progress kept, and completes in the next night's window,
 * both in one process (the run waits in memory) and across a SIGKILL while suspended (the
 * run continues from the backupdb and the repository, reading nothing stored again).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openBackupDb } from '../src/backupdb/index.js';
import type { RunRecord } from '../src/backupdb/runs.js';
import { systemClock } from '../src/node/clock.js';
import type { NodeStatus } from '../src/wui/status.js';
import { runCli, startCli, tempDir, type CliProcess } from './helpers/cli.js';
import { compareTrees } from './helpers/fixture-tree.js';

/**
 * 12,000 small files (~34 MB). On the first night (a Monday) the job's reads are limited
 * to 256 KiB/s of test-clock time, so its 60 s window holds about half of them however
 * fast the machine is; the next nights have no limit.
 */
const DIRS = 60;
const FILES_PER_DIR = 200;
const FILES = DIRS * FILES_PER_DIR;
/**
 * First night: 40× real time, so the 60 s window lasts 1.5 s. The node starts a minute
 * (1.5 s) before the window: starting up takes it ~1 s, which on a loaded machine ate most
 * of the window when it started 10 s before (no byte read before the close).
 */
const NIGHT1 = '2027-03-01T21:59:00Z@40';

let root: string;
let cleanup: () => Promise<void>;
let source: string;
let totalBytes = 0;

before(async () => {
  ({ dir: root, cleanup } = await tempDir('nightjar-suspend-'));
  source = join(root, 'photos');
  for (let d = 0; d < DIRS; d++) {
    const dir = join(source, `d${String(d).padStart(2, '0')}`);
    await mkdir(dir, { recursive: true });
    for (let f = 0; f < FILES_PER_DIR; f++) {
      const data = randomBytes(2048 + f * 8);
      totalBytes += data.length;
      await writeFile(join(dir, `f${String(f).padStart(3, '0')}`), data);
    }
  }
});
after(() => cleanup());

async function makeNode(name: string): Promise<string> {
  const dir = join(root, name);
  const made = await runCli(['create-node', dir, '--source', source]);
  assert.equal(made.code, 0, made.stderr);
  const cfgFile = join(dir, 'node.cfg');
  let cfg = await readFile(cfgFile, 'utf8');
  cfg = cfg.replace(/^\[node\]$/m, '[node]\nweb.port = 0');
  cfg = cfg.replace(/^b1\.frequency = .*$/m, 'b1.frequency = 1d\nb1.allowed_times = 2200-2201\nb1.timezone = UTC\nb1.read_bandwidth = mon 256KiB/s');
  await writeFile(cfgFile, cfg);
  return dir;
}

function startNode(dir: string, clock: string): CliProcess {
  return startCli(['start', '-d', dir], { NODE_ENV: 'test', NIGHTJAR_TEST_CLOCK: clock });
}

async function statusJson(dir: string): Promise<NodeStatus> {
  const r = await runCli(['status', '--json', '-d', dir]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as NodeStatus;
}

async function runsOf(dir: string): Promise<RunRecord[]> {
  const db = await openBackupDb(join(dir, 'backupdb.sqlite'), { clock: systemClock });
  try {
    return await db.runs.listRuns('b1');
  } finally {
    await db.close();
  }
}

async function assertRestoreEqualsSource(dir: string): Promise<void> {
  const check = await runCli(['check', '--read-data', '-d', dir]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const dest = join(root, `${dir.split('/').pop()}-restore`);
  const restored = await runCli(['restore', 'latest', dest, '-d', dir]);
  assert.equal(restored.code, 0, restored.stderr);
  assert.deepEqual(await compareTrees(source, dest), []);
}

test('done when: started at 21:59:00 with window 2200-2201, the job starts at 22:00, is suspended at 22:01 with progress kept and completes the next night', async () => {
  const dir = await makeNode('one-process');
  // After the close the clock skips to the next evening and runs at 2× (a 30 s window).
  const node = startNode(dir, `${NIGHT1},2027-03-01T22:03:00Z>2027-03-02T21:59:58Z@2`);
  try {
    await node.waitFor(/b1 started at 22:00/, 20_000);
    const suspended = await node.waitFor(/b1 suspended at 22:01: window closed, [\d,]+ files done, resumes 22:00/, 20_000);
    const done = Number(/([\d,]+) files done/.exec(suspended)![1]!.replace(/,/g, ''));
    assert.ok(done > 0 && done < FILES, `some but not all files were done in the first window (${done})`);
    await node.waitFor(/b1: checkpoint written while suspended/, 10_000);
    const status = await statusJson(dir);
    const job = status.jobs[0]!;
    assert.equal(job.state, 'suspended');
    assert.ok(job.progress && job.progress.filesDone >= done, 'the progress is kept while suspended');

    await node.waitFor(/b1 resumed at 22:00/, 20_000);
    await node.waitFor(/b1: completed, snapshot [0-9a-f]+/, 60_000);
  } finally {
    node.child.kill('SIGTERM');
    assert.equal((await node.exited).code, 0, node.output());
  }
  const out = node.output();
  assert.doesNotMatch(out, /b1 started at 22:00[^\n]*\n[\s\S]*b1 started at/, 'one run, not two');
  const runs = await runsOf(dir);
  assert.equal(runs.length, 1);
  assert.equal(runs[0]!.result, 'completed');
  const stats = runs[0]!.stats;
  assert.equal(stats.filesNew, FILES);
  assert.equal(stats.bytesRead, totalBytes, 'every byte was read exactly once');
  await assertRestoreEqualsSource(dir);
});

test('a node killed (SIGKILL) while a run is suspended continues it at the next window and reads nothing stored again', async () => {
  const dir = await makeNode('killed');
  const first = startNode(dir, NIGHT1);
  let doneAtKill: number;
  try {
    await first.waitFor(/b1 suspended at 22:01/, 20_000);
    const cp = await first.waitFor(/b1: checkpoint written while suspended: [\d,]+ files safely stored/, 10_000);
    doneAtKill = Number(/([\d,]+) files safely stored/.exec(cp)![1]!.replace(/,/g, ''));
  } finally {
    first.child.kill('SIGKILL');
    await first.exited;
  }
  let runs = await runsOf(dir);
  assert.equal(runs.length, 1);
  assert.equal(runs[0]!.result, 'suspended', 'the run history says suspended');
  assert.ok(runs[0]!.stats.filesSeen! > 0, 'the progress is in the backupdb');
  assert.ok(doneAtKill >= FILES_PER_DIR, `at least one directory was stored before the kill (${doneAtKill} files)`);

  const second = startNode(dir, '2027-03-02T21:59:55Z@2');
  try {
    await second.waitFor(/b1 waiting for window at 22:00 \(next window 22:00-22:01\)/, 20_000);
    await second.waitFor(/b1: continuing run #\d+/, 20_000);
    await second.waitFor(/b1: completed, snapshot [0-9a-f]+/, 60_000);
  } finally {
    second.child.kill('SIGTERM');
    assert.equal((await second.exited).code, 0, second.output());
  }
  runs = await runsOf(dir);
  assert.equal(runs.length, 1, 'the same run continued');
  assert.equal(runs[0]!.result, 'completed');
  const s = runs[0]!.stats;
  // Every file the checkpoint reported as safely stored is skipped through the file cache.
  assert.ok(s.filesUnchanged! >= doneAtKill, `${s.filesUnchanged} unchanged, ≥ ${doneAtKill} expected`);
  assert.ok(s.filesUnchanged! > 0);
  assert.equal(s.filesNew! + s.filesUnchanged!, FILES);
  assert.ok(s.bytesRead! < totalBytes, 'stored files were not read again');
  await assertRestoreEqualsSource(dir);
});

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compareTrees, removeDir, tempDir } from './helpers/fixture-tree.js';

const BIN = fileURLToPath(new URL('../../bin/nightjar.js', import.meta.url));

/**
 * A temp directory that cannot be used: backups to a local repository build their packs
 * inside it (Store.spool), so runs must work without one.
 */
const NO_TMP = { ...process.env, TMPDIR: '/nonexistent/nightjar-test-tmp' };

function cli(args: string[], env: NodeJS.ProcessEnv = process.env): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Starts run-job and kills it with SIGKILL after `ms`; resolves with how it ended. */
function runJobKilledAfter(node: string, ms: number): Promise<{ killed: boolean; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'run-job', 'b1', '-d', node], { stdio: 'ignore', env: NO_TMP });
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ killed: signal === 'SIGKILL', code });
    });
  });
}

describe('run-job through the CLI', () => {
  let dir: string;
  let src: string;
  let node: string;
  before(async () => {
    dir = await tempDir();
    src = join(dir, 'src');
    // ~2,000 small files and 48 MiB of incompressible data: long enough to be killed mid-run.
    for (let d = 0; d < 20; d++) {
      await mkdir(join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) await writeFile(join(src, `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`.repeat(50 + f));
    }
    for (let i = 0; i < 6; i++) await writeFile(join(src, `blob${i}.bin`), randomBytes(8 * 1024 * 1024));
    node = join(dir, 'node');
    const r = cli(['create-node', node, '--source', src]);
    assert.equal(r.status, 0, r.stderr);
  });
  after(async () => {
    await removeDir(dir);
  });

  it('survives kill -9 at several points: the re-run completes, check --read-data passes, restore is exact', async () => {
    const kills = [];
    for (const ms of [600, 1100, 1700]) {
      kills.push(await runJobKilledAfter(node, ms));
      const check = cli(['check', '--read-data', '-d', node]);
      assert.equal(check.status, 0, `check after a kill at ${ms} ms: ${check.stdout}${check.stderr}`);
    }
    assert.ok(kills.some((k) => k.killed), `at least one run was killed mid-way: ${JSON.stringify(kills)}`);
    const run = cli(['run-job', 'b1', '--json', '-d', node], NO_TMP);
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout) as { status: string; stats: { filesTotal: number; bytesRead: number } };
    assert.equal(report.status, 'complete');
    assert.equal(report.stats.filesTotal, 2006);
    assert.equal(cli(['check', '--read-data', '-d', node]).status, 0);
    const dest = join(dir, 'restored');
    const restore = cli(['restore', 'latest', dest, '-d', node]);
    assert.equal(restore.status, 0, restore.stderr);
    assert.deepEqual(await compareTrees(src, dest), []);
    // Nothing changed: a re-run reads nothing.
    const again = JSON.parse(cli(['run-job', 'b1', '--json', '-d', node]).stdout) as { stats: { bytesRead: number; filesUnchanged: number } };
    assert.equal(again.stats.bytesRead, 0);
    assert.equal(again.stats.filesUnchanged, 2006);
  });

  it('lists snapshots and entries, restores one path as of a time', async () => {
    const snaps = JSON.parse(cli(['snapshots', '--json', '-d', node]).stdout) as { id: string; job: string; time: string }[];
    assert.ok(snaps.length >= 2);
    assert.ok(snaps.every((s) => s.job === 'b1'));
    const ls = cli(['ls', `${snaps[0]!.id.slice(0, 10)}:/d3`, '-d', node]);
    assert.equal(ls.status, 0, ls.stderr);
    assert.equal(ls.stdout.trim().split('\n').length, 101);
    assert.match(ls.stdout, /^d.* \/d3$/m);
    const dest = join(dir, 'asof');
    const r = cli(['restore', ':/d3', dest, '--as-of', snaps[0]!.time, '-d', node]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(await compareTrees(join(src, 'd3'), dest), []);
    assert.equal(cli(['ls', 'nope', '-d', node]).status, 1);
  });

  it('exits 3 when the run has warnings (partial) and 1 when the guard refuses', async () => {
    // A path longer than PATH_MAX cannot be stat'ed: a warning even for root.
    let deep = join(src, 'deep');
    await mkdir(deep);
    const cwd = process.cwd();
    try {
      process.chdir(deep);
      for (let i = 0; i < 18; i++) {
        await mkdir('x'.repeat(250));
        process.chdir('x'.repeat(250));
      }
      await writeFile('too-deep', 'x');
    } finally {
      process.chdir(cwd);
    }
    const partial = cli(['run-job', 'b1', '-d', node]);
    assert.equal(partial.status, 3, partial.stdout + partial.stderr);
    assert.match(partial.stdout, /partial/);
    assert.match(partial.stdout, /warnings\s+[1-9]/);
    deep = '';
    const gone = join(dir, 'src-away');
    const { rename } = await import('node:fs/promises');
    await rename(src, gone);
    try {
      const refused = cli(['run-job', 'b1', '-d', node]);
      assert.equal(refused.status, 1);
      assert.match(refused.stdout, /REFUSED/);
      assert.match(refused.stdout, /does not exist/);
    } finally {
      await rename(gone, src);
    }
  });
});

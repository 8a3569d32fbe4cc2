/**
 * Two jobs writing to one target at once (max_concurrent_jobs = 2): each run opens its own
 * Repository on the same store; both snapshots restore exactly, check --read-data passes,
 * and a later job over data both already hold stores nothing new (dedup across jobs).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli, startCli, tempDir } from './helpers/cli.js';
import { compareTrees } from './helpers/fixture-tree.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => ({ dir: root, cleanup } = await tempDir('nightjar-concurrent-')));
after(() => cleanup());

async function fill(dir: string, files: number, size: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < files; i++) await writeFile(join(dir, `f${i}`), randomBytes(size + i));
}

test('two jobs back up to one target at once; both snapshots restore exactly, check --read-data passes, and dedup spans the jobs', async () => {
  const shared = join(root, 'shared');
  await fill(shared, 80, 20_000);
  const a = join(root, 'a');
  const b = join(root, 'b');
  const c = join(root, 'c');
  for (const [src, n] of [[a, 1], [b, 2]] as const) {
    for (let d = 0; d < 8; d++) await fill(join(src, `own${n}-${d}`), 150, 4000);
    await cp(shared, join(src, 'shared'), { recursive: true });
  }
  await cp(shared, join(c, 'copy'), { recursive: true });

  const dir = join(root, 'node');
  assert.equal((await runCli(['create-node', dir, '--source', a])).code, 0);
  const cfgFile = join(dir, 'node.cfg');
  let cfg = await readFile(cfgFile, 'utf8');
  cfg = cfg.replace(/^\[node\]$/m, '[node]\nweb.port = 0\nmax_concurrent_jobs = 2');
  cfg += `\nb2.source = ${b}\nb2.target = local\nb2.frequency = 1d\n`;
  cfg += `b3.source = ${c}\nb3.target = local\nb3.frequency = 1d\nb3.enabled = false\n`;
  await writeFile(cfgFile, cfg);

  const node = startCli(['start', '-d', dir]);
  try {
    await Promise.all([node.waitFor(/b1: completed, snapshot/, 60_000), node.waitFor(/b2: completed, snapshot/, 60_000)]);
  } finally {
    node.child.kill('SIGTERM');
    assert.equal((await node.exited).code, 0, node.output());
  }
  const out = node.output();
  const firstEnd = Math.min(out.indexOf('b1: completed'), out.indexOf('b2: completed'));
  assert.ok(out.indexOf('b1 started') < firstEnd && out.indexOf('b2 started') < firstEnd, `both ran at once:\n${out}`);

  const check = await runCli(['check', '--read-data', '-d', dir]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  for (const [job, src] of [['b1', a], ['b2', b]] as const) {
    const dest = join(root, `restore-${job}`);
    const r = await runCli(['restore', 'latest', dest, '--job', job, '-d', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await compareTrees(src, dest), [], `${job} restores exactly`);
  }

  // b3 holds only data both jobs stored: nothing new goes into the repository.
  const b3 = await runCli(['run-job', 'b3', '--json', '-d', dir]);
  assert.equal(b3.code, 0, b3.stderr);
  const report = JSON.parse(b3.stdout) as { stats: { bytesNew: number; filesNew: number } };
  assert.equal(report.stats.filesNew, 80);
  assert.equal(report.stats.bytesNew, 0, 'every chunk of b3 was already stored by b1/b2');
});

import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli, startCli, tempDir } from './helpers/cli.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => ({ dir: root, cleanup } = await tempDir('nightjar-run-job-')));
after(() => cleanup());

test('run-job against a running node asks the node (outside the window only with --ignore-window), follows the run and exits with its code; --dry-run runs locally', async () => {
  const source = join(root, 'src');
  await mkdir(source);
  for (let i = 0; i < 30; i++) await writeFile(join(source, `f${i}`), `file ${i}\n`.repeat(500));
  const dir = join(root, 'node');
  assert.equal((await runCli(['create-node', dir, '--source', source])).code, 0);
  const cfgFile = join(dir, 'node.cfg');
  let cfg = await readFile(cfgFile, 'utf8');
  cfg = cfg.replace(/^\[node\]$/m, '[node]\nweb.port = 0');
  cfg = cfg.replace(/^b1\.frequency = .*$/m, 'b1.frequency = 1d\nb1.allowed_times = 2200-0600\nb1.timezone = UTC');
  await writeFile(cfgFile, cfg);
  // Noon: the window is closed, so the node only waits.
  const node = startCli(['start', '-d', dir], { NODE_ENV: 'test', NIGHTJAR_TEST_CLOCK: '2027-03-01T12:00:00Z' });
  try {
    await node.waitFor(/b1 waiting for window at 22:00/, 20_000);
    const r = await runCli(['run-job', 'b1', '--ignore-window', '-d', dir]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /asked the node at http:\/\/127\.0\.0\.1:\d+\/ to run b1 now, ignoring its window/);
    assert.match(r.stdout, /^b1: completed \(run #1 on the node\)$/m);
    await node.waitFor(/b1: completed, snapshot/, 5_000);

    // A dry run never asks the node: it writes nothing, so it may run beside it.
    const dry = await runCli(['run-job', 'b1', '--dry-run', '--json', '-d', dir]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal((JSON.parse(dry.stdout) as { dryRun: boolean }).dryRun, true);
    assert.equal((await runCli(['run-job', 'b1', '--allow-mass-delete', '-d', dir])).code, 2);
    const snaps = await runCli(['snapshots', '--json', '-d', dir]);
    assert.equal((JSON.parse(snaps.stdout) as unknown[]).length, 1, 'one writer, one snapshot');
  } finally {
    node.child.kill('SIGTERM');
    assert.equal((await node.exited).code, 0, node.output());
  }
});

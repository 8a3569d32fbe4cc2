import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli, tempDir } from './helpers/cli.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => ({ dir: root, cleanup } = await tempDir('nightjar-throttle-cli-')));
after(() => cleanup());

test('a one-shot run-job (no node running) obeys the job bandwidth limit', async () => {
  const source = join(root, 'src');
  await mkdir(source);
  await writeFile(join(source, 'random.bin'), randomBytes(1024 * 1024)); // incompressible: ~1 MiB goes out
  const dir = join(root, 'node');
  assert.equal((await runCli(['create-node', dir, '--source', source])).code, 0);
  const cfg = join(dir, 'node.cfg');
  await writeFile(cfg, (await readFile(cfg, 'utf8')) + 'b1.bandwidth = 256KiB/s\n');

  const started = performance.now();
  const r = await runCli(['run-job', 'b1', '--json', '-d', dir]);
  const seconds = (performance.now() - started) / 1000;
  assert.equal(r.code, 0, r.stderr);
  // 1 MiB at 256 KiB/s cannot take less than ~4 s; only the lower bound is asserted
  // (a loaded machine may be slower, never faster than the limit allows).
  assert.ok(seconds >= 3.5, `took ${seconds.toFixed(2)} s`);
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runAsCommand, tempDir } from './helpers/cli.js';

const MODULE = new URL('../src/node/heap-budget.js', import.meta.url).href;

/**
 * A program like a backup's main thread: many short-lived objects, a good share of them
 * surviving a while (in flight), and a turn of the event loop every few thousand. Run in
 * a child process (heap flags are process-wide); prints the largest young generation seen.
 */
function youngGenerationMiB(limited: boolean, workerAtTurn = -1, nodeFlags: string[] = []): number {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { Worker } from 'node:worker_threads';
    if (${limited}) (await import(${JSON.stringify(MODULE)})).limitHeapGrowth();
    const inFlight = new Array(100_000);
    let largest = 0;
    for (let turn = 0; turn < 400; turn++) {
      if (turn === ${workerAtTurn}) {
        const w = new Worker('setTimeout(() => {}, 200)', { eval: true });
        await new Promise((resolve) => w.once('online', resolve));
      }
      for (let i = 0; i < 10_000; i++) inFlight[(turn * 10_000 + i) % inFlight.length] = { turn, i, name: 'file' + i };
      await new Promise((resolve) => setImmediate(resolve));
      largest = Math.max(largest, getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
    }
    process.stdout.write(String(largest / 1048576));
  `;
  const r = spawnSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout);
}

describe('limitHeapGrowth', () => {
  it('stops the young generation at 2 × 2 MiB where V8 alone grows it to 2 × 16 MiB', () => {
    const unlimited = youngGenerationMiB(false);
    const limited = youngGenerationMiB(true);
    assert.ok(unlimited > 16, `without the limit the program grows it past 16 MiB (${unlimited} MiB): the test can tell`);
    assert.ok(limited <= 4, `with the limit: ${limited} MiB`);
  });

  it('keeps it there when a worker thread starts afterwards (a new isolate resets the growth factor)', () => {
    // With node started as the launcher starts it (its flags, read from bin/nightjar.js).
    const launcher = readFileSync(new URL('../../bin/nightjar.js', import.meta.url), 'utf8');
    const flags = /exec node ((?:--\S+ )+)"\$0"/.exec(launcher)![1]!.trim().split(' ');
    assert.ok(flags.includes('--max-semi-space-size=2'), `launcher flags: ${flags.join(' ')}`);
    const limited = youngGenerationMiB(true, 200, flags);
    assert.ok(limited <= 4, `with the limit and a worker started half-way: ${limited} MiB`);
  });
});

describe('the launcher (bin/nightjar.js)', () => {
  it('starts node with two malloc arenas unless told otherwise, and leaves children the environment it was given', async () => {
    const { dir, cleanup } = await tempDir('nightjar-launcher-');
    try {
      // What glibc saw at the start (the process's initial environment), and what children would get.
      const probe = join(dir, 'arena-probe.cjs');
      await writeFile(
        probe,
        `const start = require('node:fs').readFileSync('/proc/self/environ', 'latin1').split('\\0').find((v) => v.startsWith('MALLOC_ARENA_MAX=')) ?? null;
        process.on('exit', () => process.stderr.write('probe ' + JSON.stringify([start, process.env.MALLOC_ARENA_MAX ?? null, process.env.NIGHTJAR_MALLOC_ARENA_MAX ?? null]) + '\\n'));\n`,
      );
      const set = await runAsCommand(['--version'], { MALLOC_ARENA_MAX: undefined, NODE_OPTIONS: `--require=${probe}` });
      assert.equal(set.code, 0, set.stderr);
      assert.match(set.stderr, /probe \["MALLOC_ARENA_MAX=2",null,null\]/);
      const own = await runAsCommand(['--version'], { MALLOC_ARENA_MAX: '8', NODE_OPTIONS: `--require=${probe}` });
      assert.match(own.stderr, /probe \["MALLOC_ARENA_MAX=8","8",null\]/, 'a value of the user is kept');
    } finally {
      await cleanup();
    }
  });
});

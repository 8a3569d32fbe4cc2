import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { NodeStatus } from '../src/wui/status.js';
import { runCli, startCli, tempDir } from './helpers/cli.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => ({ dir: root, cleanup } = await tempDir('nightjar-daemon-')));
after(() => cleanup());

async function statusJson(dir: string): Promise<NodeStatus> {
  const r = await runCli(['status', '--json', '-d', dir]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as NodeStatus;
}

test('a started node runs a due job through the scheduler; status, pause and resume work online and offline', async () => {
  const source = join(root, 'photos');
  await mkdir(join(source, '2026'), { recursive: true });
  for (let i = 0; i < 20; i++) await writeFile(join(source, '2026', `img${i}.raw`), `picture ${i}\n`.repeat(1000 + i));
  const dir = join(root, 'node');
  assert.equal((await runCli(['create-node', dir, '--source', source])).code, 0);
  const cfgFile = join(dir, 'node.cfg');
  await writeFile(cfgFile, (await readFile(cfgFile, 'utf8')).replace(/^\[node\]$/m, '[node]\nweb.port = 0'));

  // Offline: never run, next start now, pause is stored for the node to honour.
  let status = await statusJson(dir);
  assert.equal(status.running, false);
  assert.equal(status.jobs[0]!.name, 'b1');
  assert.equal(status.jobs[0]!.lastResult, null);

  const node = startCli(['start', '-d', dir]);
  try {
    await node.waitFor(/b1: completed, snapshot [0-9a-f]+/, 60_000);
    status = await statusJson(dir);
    assert.equal(status.running, true);
    assert.equal(status.jobs[0]!.lastResult, 'completed');
    assert.ok(status.jobs[0]!.lastCompletedAt);
    assert.ok(status.jobs[0]!.nextStartAt, 'the next daily run is planned');
    assert.ok(new Date(status.jobs[0]!.nextStartAt!).getTime() > Date.parse(status.now) + 23 * 3600_000);

    const paused = await runCli(['pause', 'b1', '-d', dir]);
    assert.equal(paused.code, 0, paused.stderr);
    assert.equal((await statusJson(dir)).jobs[0]!.paused, true);
    assert.equal((await runCli(['pause', 'nope', '-d', dir])).code, 2);
    assert.equal((await runCli(['resume', '--all', '-d', dir])).code, 0);
    assert.equal((await statusJson(dir)).jobs[0]!.paused, false);

    const snaps = await runCli(['snapshots', '--json', '-d', dir]);
    assert.equal(snaps.code, 0, snaps.stderr);
    assert.equal((JSON.parse(snaps.stdout) as unknown[]).length, 1);
  } finally {
    node.child.kill('SIGTERM');
    assert.equal((await node.exited).code, 0, node.output());
  }

  // Offline again: the result and an owner's pause are read from the backupdb.
  assert.equal((await runCli(['pause', '--all', '-d', dir])).code, 0);
  status = await statusJson(dir);
  assert.equal(status.running, false);
  assert.equal(status.jobs[0]!.lastResult, 'completed');
  assert.equal(status.jobs[0]!.paused, true);
  const text = await runCli(['status', '-d', dir]);
  assert.match(text.stdout, /b1: paused/);
});

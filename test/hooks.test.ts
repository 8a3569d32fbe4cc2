import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openBackupDb } from '../src/backupdb/index.js';
import { HOOK_OUTPUT_LIMIT, hookEnvironment, PreCommandFailedError, runHook, runJobHook } from '../src/jobs/hooks.js';
import { RunGate } from '../src/jobs/run-gate.js';
import { systemClock } from '../src/node/clock.js';
import { formatProblem, parseConfig } from '../src/node/config/config.js';
import type { JobConfig, NodeConfig } from '../src/node/config/types.js';
import { BackupJobRunner } from '../src/node/job-runner.js';
import { Logger } from '../src/node/log.js';
import { nodeDirLayout } from '../src/node/node-dir.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nj-hooks-'));
});
after(() => rm(dir, { recursive: true, force: true }));

function config(nodeDir: string, jobLines: string[]): NodeConfig {
  const text = [
    '[targets]',
    `usb = local:${join(nodeDir, 'repo')}`,
    `usb.passphrase_file = ${join(nodeDir, 'pass')}`,
    '[backups]',
    `b1.source = ${join(nodeDir, 'src')}`,
    'b1.target = usb',
    'b1.frequency = 1h',
    ...jobLines,
  ].join('\n');
  const { config: c, problems } = parseConfig(text, { file: join(nodeDir, 'node.cfg'), nodeDir });
  assert.deepEqual(problems.map(formatProblem), []);
  return c!;
}

/** True while `pid` runs (a zombie left to an init that does not reap counts as gone). */
const alive = async (pid: number) => {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
};

describe('runHook', () => {
  it('runs through /bin/sh -c with the NIGHTJAR_* environment and reports the exit code', async () => {
    const job = { name: 'photos', source: '/srv/photos', target: { alias: 'usb', name: 'photos' } } as JobConfig;
    const env = hookEnvironment('post_command', {
      job, result: 'completed', snapshotId: 'abc123', stats: { filesNew: 7, filesTotal: 10, bytesWritten: 4096, durationMs: 1500 },
    });
    const r = await runHook('post_command', 'echo "$NIGHTJAR_HOOK $NIGHTJAR_JOB $NIGHTJAR_RESULT $NIGHTJAR_SNAPSHOT $NIGHTJAR_FILES_NEW/$NIGHTJAR_FILES_TOTAL $NIGHTJAR_BYTES_WRITTEN $NIGHTJAR_DURATION_S $NIGHTJAR_TARGET"; exit 3', env, { timeoutMs: 10_000 });
    assert.equal(r.exitCode, 3);
    assert.equal(r.ok, false);
    assert.equal(r.output.trim(), 'post_command photos completed abc123 7/10 4096 1.5 usb:photos');
  });

  it('a hook past its timeout is stopped with its whole process group', async () => {
    const pidFile = join(dir, 'bg.pid');
    const r = await runHook('post_command', `sleep 30 & echo $! > ${pidFile}; sleep 30`, {}, { timeoutMs: 300 });
    assert.equal(r.timedOut, true);
    assert.equal(r.ok, false);
    const bg = Number((await readFile(pidFile, 'utf8')).trim());
    // SIGTERM went to the group: the background sleep is gone too.
    for (let i = 0; i < 50 && (await alive(bg)); i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(await alive(bg), false);
  });

  it('output is captured up to the limit; the rest is counted', async () => {
    const r = await runHook('post_command', "head -c 100000 /dev/zero | tr '\\0' a; echo err >&2", {}, { timeoutMs: 10_000 });
    assert.equal(r.ok, true);
    assert.equal(r.output.length, HOOK_OUTPUT_LIMIT);
    assert.equal(r.droppedBytes, 100_000 + 4 - HOOK_OUTPUT_LIMIT);
  });

  it('runJobHook records the outcome with the output in the event detail; no command, no run', async () => {
    const job = { name: 'b1', source: '/s', target: { alias: 'a', name: 'b1' }, preCommand: 'echo mounting; exit 0', postCommand: null, hookTimeoutMs: 5000 } as unknown as JobConfig;
    const events: { kind: string; message: string; detail: { output: string } }[] = [];
    const r = await runJobHook('pre_command', { job }, { record: (e) => void events.push(e) });
    assert.equal(r?.ok, true);
    assert.equal(events[0]!.kind, 'hook.done');
    assert.equal(events[0]!.detail.output, 'mounting\n');
    assert.equal(await runJobHook('post_command', { job }, { record: (e) => void events.push(e) }), null);
    assert.equal(events.length, 1);
  });
});

describe('BackupJobRunner hooks', () => {
  it('a failing pre_command skips the run with its reason, fires on_failure, and records events', async () => {
    const nodeDir = join(dir, 'n1');
    await mkdir(join(nodeDir, 'src'), { recursive: true });
    await writeFile(join(nodeDir, 'pass'), 'pw\n');
    await writeFile(join(nodeDir, 'src', 'a.txt'), 'hello');
    const marker = join(nodeDir, 'failure.txt');
    const cfg = config(nodeDir, [
      'b1.pre_command = echo disk not mounted >&2 && exit 4',
      `b1.on_failure = echo "$NIGHTJAR_JOB $NIGHTJAR_RESULT $NIGHTJAR_ERROR" > ${marker}`,
    ]);
    const db = await openBackupDb(join(nodeDir, 'backupdb.sqlite'), { clock: systemClock });
    try {
      const runner = new BackupJobRunner({ config: () => cfg, db, clock: systemClock, log: new Logger(systemClock, null, null), layout: nodeDirLayout(nodeDir) });
      const ctx = { gate: new RunGate(), signal: new AbortController().signal, onWindowClose: 'suspend' as const, ignoreWindow: false, reason: 'test' };
      await assert.rejects(runner.start(cfg.jobs.b1!, ctx), (err: unknown) => {
        assert.ok(err instanceof PreCommandFailedError);
        assert.match(err.message, /run skipped: pre_command exited 4: disk not mounted/);
        return true;
      });
      assert.match(await readFile(marker, 'utf8'), /^b1 failed run skipped: pre_command exited 4/);
      const events = await db.events.listEvents({ job: 'b1' });
      assert.ok(events.some((e) => e.kind === 'hook.failed' && /disk not mounted/.test(e.message)), JSON.stringify(events));
      // The backup never started: no run in the history.
      assert.equal((await db.runs.unfinishedRuns()).length, 0);
    } finally {
      await db.close();
    }
  });

  it('pre and post hooks around a completed run: post_command sees the result, snapshot and statistics', async () => {
    const nodeDir = join(dir, 'n2');
    await mkdir(join(nodeDir, 'src'), { recursive: true });
    await writeFile(join(nodeDir, 'pass'), 'pw\n');
    await writeFile(join(nodeDir, 'src', 'a.txt'), 'hello');
    const out = join(nodeDir, 'post.txt');
    const cfg = config(nodeDir, [
      `b1.pre_command = echo pre > ${join(nodeDir, 'pre.txt')}`,
      `b1.post_command = echo "$NIGHTJAR_RESULT $NIGHTJAR_SNAPSHOT $NIGHTJAR_FILES_NEW" > ${out}`,
    ]);
    const db = await openBackupDb(join(nodeDir, 'backupdb.sqlite'), { clock: systemClock });
    try {
      const runner = new BackupJobRunner({ config: () => cfg, db, clock: systemClock, log: new Logger(systemClock, null, null), layout: nodeDirLayout(nodeDir) });
      const ctx = { gate: new RunGate(), signal: new AbortController().signal, onWindowClose: 'suspend' as const, ignoreWindow: false, reason: 'test' };
      assert.equal(await runner.start(cfg.jobs.b1!, ctx), 'completed');
      assert.equal(await readFile(join(nodeDir, 'pre.txt'), 'utf8'), 'pre\n');
      assert.match(await readFile(out, 'utf8'), /^completed [0-9a-f]{64} 1\n$/);
    } finally {
      await db.close();
    }
  });

  it('a run that fails (unreadable passphrase file) runs post_command and on_failure with the error', async () => {
    const nodeDir = join(dir, 'n3');
    await mkdir(join(nodeDir, 'src'), { recursive: true });
    const out = join(nodeDir, 'hooks.txt');
    const cfg = config(nodeDir, [
      `b1.post_command = echo "post $NIGHTJAR_RESULT" >> ${out}`,
      `b1.on_failure = echo "failure $NIGHTJAR_RESULT $NIGHTJAR_ERROR" >> ${out}`,
    ]);
    const db = await openBackupDb(join(nodeDir, 'backupdb.sqlite'), { clock: systemClock });
    try {
      const runner = new BackupJobRunner({ config: () => cfg, db, clock: systemClock, log: new Logger(systemClock, null, null), layout: nodeDirLayout(nodeDir) });
      const ctx = { gate: new RunGate(), signal: new AbortController().signal, onWindowClose: 'suspend' as const, ignoreWindow: false, reason: 'test' };
      await assert.rejects(runner.start(cfg.jobs.b1!, ctx));
      const lines = (await readFile(out, 'utf8')).trim().split('\n');
      assert.equal(lines[0], 'post failed');
      assert.match(lines[1]!, /^failure failed .*pass/);
    } finally {
      await db.close();
    }
  });
});

describe('nightjar run-job hooks', () => {
  it('a local run-job runs pre_command and post_command; a failing pre_command ends it with exit 1 and the reason', async () => {
    const { runCli } = await import('./helpers/cli.js');
    const node = join(dir, 'cli-node');
    const src = join(dir, 'cli-src');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'a.txt'), 'hello');
    assert.equal((await runCli(['create-node', node, '--source', src])).code, 0);
    const cfgFile = join(node, 'node.cfg');
    const base = await readFile(cfgFile, 'utf8');
    const out = join(dir, 'cli-post.txt');
    await writeFile(cfgFile, base.replace(/^(b1\.target = .*)$/m, `$1\nb1.post_command = echo "$NIGHTJAR_RESULT $NIGHTJAR_FILES_NEW" > ${out}`));
    const ok = await runCli(['run-job', 'b1', '-d', node]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(await readFile(out, 'utf8'), 'completed 1\n');

    await writeFile(cfgFile, base.replace(/^(b1\.target = .*)$/m, '$1\nb1.pre_command = echo not mounted && exit 7'));
    const skipped = await runCli(['run-job', 'b1', '-d', node]);
    assert.equal(skipped.code, 1);
    assert.match(skipped.stderr, /run skipped: pre_command exited 7: not mounted/);
  });
});

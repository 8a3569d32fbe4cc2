import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openBackupDb } from '../src/backupdb/index.js';
import { systemClock } from '../src/node/clock.js';
import { assessHealth, HEALTH } from '../src/node/health.js';
import { formatProblem, parseConfig } from '../src/node/config/config.js';
import type { JobStatus, NodeStatus } from '../src/wui/status.js';
import { runCli, tempDir } from './helpers/cli.js';

const NOW = new Date('2026-11-24T12:00:00Z');

const config = (() => {
  const { config: c, problems } = parseConfig(
    ['[targets]', 'usb = local:/mnt/usb', 'usb.passphrase_file = /nj/pass', '[backups]',
      'b1.source = /src', 'b1.target = usb', 'b1.frequency = 1d',
      'b2.source = /src2', 'b2.target = usb', 'b2.frequency = 1d'].join('\n'),
    { file: '/nj/node.cfg', nodeDir: '/nj' },
  );
  assert.deepEqual(problems.map(formatProblem), []);
  return c!;
})();

function job(over: Partial<JobStatus>): JobStatus {
  return {
    name: 'b1', source: '/src', target: 'usb:b1', schedule: 'every 1d', allowedTimes: 'any time', timezone: 'UTC', state: 'idle',
    label: 'idle', paused: false, enabled: true, nextStartAt: null, nextStartReason: null, window: null,
    lastResult: 'completed', lastCompletedAt: '2026-11-24T06:00:00.000Z', lastError: null, progress: null, overdue: false, ...over,
  };
}

function status(jobs: JobStatus[], running = true): NodeStatus {
  return { nickname: 'n', startedAt: null, now: NOW.toISOString(), running, jobs };
}

describe('assessHealth', () => {
  const cases: { name: string; jobs: JobStatus[]; running?: boolean; code: number; line: RegExp }[] = [
    { name: 'all fresh: OK', jobs: [job({}), job({ name: 'b2' })], code: HEALTH.ok, line: /^NIGHTJAR OK - 2 job\(s\) fresh \| 'b1_age'=21600s;172800;345600;0 / },
    { name: 'a partial last run: WARNING', jobs: [job({}), job({ name: 'b2', lastResult: 'partial' })], code: HEALTH.warning, line: /WARNING - b2 last run partial/ },
    {
      name: 'overdue within twice alert_after: WARNING',
      jobs: [job({ overdue: true, overdueSince: '2026-11-24T00:00:00.000Z', lastCompletedAt: '2026-11-22T00:00:00.000Z' })],
      code: HEALTH.warning, line: /WARNING - b1 overdue: no successful backup since 2026-11-22/,
    },
    {
      name: 'overdue beyond twice alert_after: CRITICAL',
      jobs: [job({ overdue: true, overdueSince: '2026-11-21T00:00:00.000Z', lastCompletedAt: '2026-11-19T00:00:00.000Z' })],
      code: HEALTH.critical, line: /CRITICAL - b1 overdue by more than twice alert_after/,
    },
    { name: 'a failed last run: CRITICAL', jobs: [job({ lastResult: 'failed', lastError: 'disk gone' }), job({ name: 'b2', lastResult: 'partial' })], code: HEALTH.critical, line: /CRITICAL - b1 last run failed: disk gone; b2 last run partial/ },
    { name: 'a failed verify: CRITICAL', jobs: [job({ lastVerify: { endedAt: '2026-11-24T02:00:00.000Z', result: 'failed', error: 'data/ab/abcd: content does not match its name' } })], code: HEALTH.critical, line: /CRITICAL - b1 last verify failed: data\/ab/ },
    { name: 'a refused run: CRITICAL', jobs: [job({ lastResult: 'refused' })], code: HEALTH.critical, line: /CRITICAL/ },
    { name: 'disabled jobs do not count', jobs: [job({ enabled: false, lastResult: 'failed' })], code: HEALTH.ok, line: /OK - 0 job/ },
    { name: 'node not running: WARNING', jobs: [job({})], running: false, code: HEALTH.warning, line: /WARNING - node not running/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = assessHealth(status(c.jobs, c.running ?? true), config, NOW);
      assert.equal(r.code, c.code, r.line);
      assert.match(r.line, c.line);
      assert.match(r.line, / \| .*'jobs_critical'=\d+$/, 'perfdata after |');
    });
  }
});

describe('nightjar check-health', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir: root, cleanup } = await tempDir('nj-health-')));
  after(() => cleanup());

  it('exits 2 (CRITICAL) after a failed run, 1 (WARNING) with fresh jobs while the node is down, 3 (UNKNOWN) on a bad config', async () => {
    const dir = join(root, 'node');
    const src = join(root, 'src');
    await mkdir(src);
    assert.equal((await runCli(['create-node', dir, '--source', src])).code, 0);
    const db = await openBackupDb(join(dir, 'backupdb.sqlite'), { clock: systemClock });
    try {
      const ok = await db.runs.startRun({ job: 'b1', target: 'local' });
      await db.runs.finishRun(ok.id, { result: 'completed' });
      const bad = await db.runs.startRun({ job: 'b1', target: 'local' });
      await db.runs.finishRun(bad.id, { result: 'failed', error: 'boom' });
    } finally {
      await db.close();
    }
    const crit = await runCli(['check-health', '-d', dir]);
    assert.equal(crit.code, 2, crit.stdout + crit.stderr);
    assert.match(crit.stdout, /^NIGHTJAR CRITICAL - node not running; b1 last run failed.* \| 'b1_age'=\d+s;/);

    const db2 = await openBackupDb(join(dir, 'backupdb.sqlite'), { clock: systemClock });
    try {
      const again = await db2.runs.startRun({ job: 'b1', target: 'local' });
      await db2.runs.finishRun(again.id, { result: 'completed' });
    } finally {
      await db2.close();
    }
    const warn = await runCli(['check-health', '-d', dir, '--json']);
    assert.equal(warn.code, 1, warn.stdout + warn.stderr);
    const j = JSON.parse(warn.stdout) as { status: string; jobs: { job: string; code: number }[] };
    assert.equal(j.status, 'WARNING');
    assert.deepEqual(j.jobs.map((x) => [x.job, x.code]), [['b1', 0]]);

    await writeFile(join(dir, 'node.cfg'), '[backups]\nb1.bogus = 1\n');
    const unknown = await runCli(['check-health', '-d', dir]);
    assert.equal(unknown.code, 3);
    assert.match(unknown.stdout, /^NIGHTJAR UNKNOWN - /);
  });
});

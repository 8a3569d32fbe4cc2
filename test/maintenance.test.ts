import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openBackupDb, type BackupDb } from '../src/backupdb/index.js';
import { maintenanceDue, startMaintenanceWatch } from '../src/jobs/maintenance.js';
import { formatProblem, parseConfig } from '../src/node/config/config.js';
import type { JobConfig } from '../src/node/config/types.js';
import { Repository } from '../src/repo/repository.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { FakeClock } from './helpers/fake-clock.js';

const H = 3_600_000;

function jobFrom(lines: string[]): JobConfig {
  const { config, problems } = parseConfig(
    ['[targets]', 'usb = local:/mnt/usb', 'usb.passphrase_file = /nj/pass', '[backups]', 'b1.source = /src', 'b1.target = usb', 'b1.frequency = 1d', 'b1.timezone = UTC', ...lines].join('\n'),
    { file: '/nj/node.cfg', nodeDir: '/nj' },
  );
  assert.deepEqual(problems.map(formatProblem), []);
  return config!.jobs.b1!;
}

describe('maintenanceDue', () => {
  const job = jobFrom(['b1.allowed_times = 2200-0600', 'b1.verify_frequency = 1d', 'b1.prune_frequency = 1week']);
  const at = (iso: string) => new Date(iso);
  const cases: [string, 'verify' | 'prune', string | null, string | null, string, boolean][] = [
    ['never verified, inside the window', 'verify', null, null, '2026-11-24T23:00:00Z', true],
    ['never verified, outside the window', 'verify', null, null, '2026-11-24T12:00:00Z', false],
    ['verified 23 h ago', 'verify', '2026-11-24T00:00:00Z', null, '2026-11-24T23:00:00Z', false],
    ['verified 25 h ago', 'verify', '2026-11-23T22:00:00Z', null, '2026-11-24T23:00:00Z', true],
    ['pruned 2 days ago: weekly', 'prune', '2026-11-22T23:00:00Z', null, '2026-11-24T23:00:00Z', false],
    ['failed 30 min ago: waits for the retry delay', 'verify', null, '2026-11-24T22:30:00Z', '2026-11-24T23:00:00Z', false],
  ];
  for (const [name, kind, last, failed, now, want] of cases) {
    it(name, () => assert.equal(maintenanceDue(kind, job, last ? at(last) : null, failed ? at(failed) : null, at(now)), want));
  }
  it('jobs without the key never run it', () => {
    assert.equal(maintenanceDue('prune', jobFrom([]), null, null, at('2026-11-24T23:00:00Z')), false);
  });
});

describe('startMaintenanceWatch', () => {
  let dir: string;
  let db: BackupDb;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nj-maint-'));
  });
  after(async () => {
    await db?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies and prunes inside the window on the fake clock, recorded as runs of their kind', async () => {
    const clock = new FakeClock('2026-11-24T12:00:00Z');
    db = await openBackupDb(join(dir, 'backupdb.sqlite'), { clock });
    const store = new MemoryStore();
    const repoOpts = { clock, workers: 1, kdf: { N: 1024, r: 8, p: 1 }, packSize: 32 * 1024 };
    const setup = await Repository.init(store, 'pw', repoOpts);
    const f = join(dir, 'f');
    await writeFile(f, randomBytes(50_000));
    const saved = await setup.saveFile(Buffer.from(f));
    const tree = await setup.saveTree({ entries: [{ name: Buffer.from('f'), type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: 1n, ctimeNs: 1n, size: 50_000, inode: 1n, dev: 1n, nlink: 1, content: saved.content }] });
    await setup.flush();
    await setup.saveSnapshot({ tree, host: 'h', job: 'b1', target: 'usb', source: '/src' });
    await setup.close();

    const job = jobFrom(['b1.allowed_times = 2200-0600', 'b1.verify_frequency = 1d', 'b1.verify_read_data = 100%', 'b1.prune_frequency = 1week']);
    const logs: string[] = [];
    const watch = startMaintenanceWatch({
      clock, db, jobs: () => [job],
      withRepo: async (_job, fn) => {
        const repo = await Repository.open(store, 'pw', repoOpts);
        try {
          return await fn(repo);
        } finally {
          await repo.close();
        }
      },
      log: { info: (m) => logs.push(m), warn: (m) => logs.push(`WARN ${m}`) },
    });
    try {
      await clock.advance(H);
      assert.equal((await db.runs.listRuns('b1', 10, { kind: 'verify' })).length, 0, 'outside the window nothing runs');
      await clock.advanceTo('2026-11-24T22:00:30Z');
      // Verify and prune do real work (worker threads, I/O) in real time: give them up to
      // 30 s of it while the fake clock moves on in 10 s steps (staying inside the window).
      const ended = async (kind: 'verify' | 'prune') => (await db.runs.listRuns('b1', 10, { kind })).some((r) => r.endedAt);
      for (let i = 0; i < 600 && !((await ended('verify')) && (await ended('prune'))); i++) {
        await clock.advance(10_000);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const verifies = await db.runs.listRuns('b1', 10, { kind: 'verify' });
      assert.equal(verifies.length, 1, logs.join('\n'));
      assert.equal(verifies[0]!.result, 'completed', logs.join('\n'));
      assert.ok((verifies[0]!.stats.bytesRead as number) > 50_000);
      const prunes = await db.runs.listRuns('b1', 10, { kind: 'prune' });
      assert.equal(prunes[0]!.result, 'completed', logs.join('\n'));
      await clock.advance(2 * H);
      assert.equal((await db.runs.listRuns('b1', 10, { kind: 'verify' })).length, 1, 'once per frequency');
      assert.equal((await db.jobs.getJobState('b1')).lastCompletedAt, null, 'maintenance never counts as a backup');
      const events = await db.events.listEvents({ job: 'b1' });
      assert.ok(events.some((e) => e.kind === 'verify.done'));
    } finally {
      await watch.stop();
    }
  });
});

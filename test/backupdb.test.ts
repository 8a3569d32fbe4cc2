import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sqlite3 from 'sqlite3';
import {
  APPLICATION_ID,
  BackupDbError,
  MIGRATIONS,
  SCHEMA_VERSION,
  openBackupDb,
  type BackupDb,
  type BackupDbErrorCode,
} from '../src/backupdb/index.js';
import { FakeClock } from './helpers/fake-clock.js';

let dir: string;
let seq = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nightjar-backupdb-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function dbPath(): string {
  return join(dir, `db-${++seq}.sqlite`);
}

async function withDb<T>(fn: (db: BackupDb, clock: FakeClock, path: string) => Promise<T>): Promise<T> {
  const clock = new FakeClock('2026-01-01T00:00:00Z');
  const path = dbPath();
  const db = await openBackupDb(path, { clock });
  try {
    return await fn(db, clock, path);
  } finally {
    await db.close();
  }
}

async function rejectsWith(p: Promise<unknown>, code: BackupDbErrorCode): Promise<BackupDbError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof BackupDbError, `expected BackupDbError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected a rejection with ${code}`);
}

/** Runs SQL on a file with the raw sqlite3 package (no Nightjar code involved). */
function rawExec(path: string, sql: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(path, (err) => {
      if (err) return reject(err);
      db.exec(sql, (err2) => db.close(() => (err2 ? reject(err2) : resolve())));
    });
  });
}

describe('openBackupDb', () => {
  it('creates a new file in WAL mode with busy_timeout, foreign keys and the current schema', async () => {
    await withDb(async (db) => {
      assert.deepEqual(db.migrated, { from: 0, to: SCHEMA_VERSION });
      assert.equal((await db.db.get<{ journal_mode: string }>('PRAGMA journal_mode'))?.journal_mode, 'wal');
      assert.equal((await db.db.get<{ timeout: number }>('PRAGMA busy_timeout'))?.timeout, 5000);
      assert.equal((await db.db.get<{ foreign_keys: number }>('PRAGMA foreign_keys'))?.foreign_keys, 1);
      assert.equal((await db.db.get<{ synchronous: number }>('PRAGMA synchronous'))?.synchronous, 1); // NORMAL
      assert.equal((await db.db.get<{ user_version: number }>('PRAGMA user_version'))?.user_version, SCHEMA_VERSION);
      assert.equal((await db.db.get<{ application_id: number }>('PRAGMA application_id'))?.application_id, APPLICATION_ID);
    });
  });

  it('keeps data across close and reopen, without migrating again', async () => {
    const clock = new FakeClock('2026-01-01T00:00:00Z');
    const path = dbPath();
    const db1 = await openBackupDb(path, { clock });
    await db1.settings.set('bandwidth.override.node', { bytesPerSecond: 1048576 });
    await db1.jobs.setPaused('b1', true);
    await db1.events.addEvent({ job: 'b1', level: 'info', kind: 'job.paused', message: 'b1 paused by the owner' });
    await db1.close();
    await db1.close(); // idempotent

    const db2 = await openBackupDb(path, { clock });
    try {
      assert.deepEqual(db2.migrated, { from: SCHEMA_VERSION, to: SCHEMA_VERSION });
      assert.deepEqual(await db2.settings.get('bandwidth.override.node'), { bytesPerSecond: 1048576 });
      assert.equal((await db2.jobs.getJobState('b1')).paused, true);
      assert.equal((await db2.events.listEvents()).length, 1);
    } finally {
      await db2.close();
    }
  });

  it('refuses a file that is not a database, and leaves it untouched', async () => {
    const path = dbPath();
    const junk = Buffer.from('this is a node.cfg, not a database\n'.repeat(200));
    await writeFile(path, junk);
    const err = await rejectsWith(openBackupDb(path, { clock: new FakeClock(0) }), 'BACKUPDB_NOT_A_DATABASE');
    assert.match(err.message, /not a Nightjar backupdb/);
    assert.ok(err.message.includes(path));
    assert.deepEqual(await readFile(path), junk);
  });

  it("refuses another program's SQLite database", async () => {
    const path = dbPath();
    await rawExec(path, 'CREATE TABLE photos (id INTEGER PRIMARY KEY); INSERT INTO photos VALUES (1);');
    await rejectsWith(openBackupDb(path, { clock: new FakeClock(0) }), 'BACKUPDB_NOT_A_DATABASE');
  });

  it('refuses a schema version newer than it knows, and leaves the file at that version', async () => {
    const path = dbPath();
    const db = await openBackupDb(path, { clock: new FakeClock(0) });
    await db.db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 5}`);
    await db.close();
    const err = await rejectsWith(openBackupDb(path, { clock: new FakeClock(0) }), 'BACKUPDB_SCHEMA_TOO_NEW');
    assert.match(err.message, new RegExp(`schema version ${SCHEMA_VERSION + 5}`));
    assert.match(err.message, /upgrade Nightjar/);
    // Still at the newer version: nothing was migrated down or rewritten.
    await rawExec(path, 'SELECT 1');
    const version = await new Promise<number>((resolve, reject) => {
      const raw = new sqlite3.Database(path, (e) => {
        if (e) return reject(e);
        raw.get('PRAGMA user_version', (e2: Error | null, row: { user_version: number }) =>
          raw.close(() => (e2 ? reject(e2) : resolve(row.user_version))),
        );
      });
    });
    assert.equal(version, SCHEMA_VERSION + 5);
  });

  it('fails with BACKUPDB_OPEN_FAILED when the directory does not exist', async () => {
    await rejectsWith(openBackupDb(join(dir, 'missing', 'db.sqlite'), { clock: new FakeClock(0) }), 'BACKUPDB_OPEN_FAILED');
  });
});

describe('migrations', () => {
  it('upgrades a version-1 database built by hand, keeping its data', async () => {
    const path = dbPath();
    const v1 = MIGRATIONS.find((m) => m.version === 1)!;
    assert.equal(typeof v1.up, 'string');
    await rawExec(
      path,
      `${v1.up as string};
       PRAGMA application_id = ${APPLICATION_ID};
       PRAGMA user_version = 1;
       INSERT INTO job_state (job, paused, paused_at, updated_at) VALUES ('b1', 1, 1700000000000, 1700000000000);
       INSERT INTO runs (job, target, started_at, updated_at, ended_at, result, stats)
         VALUES ('b1', 'local', 1700000000000, 1700000100000, 1700000100000, 'completed', '{"filesNew":7}');
       INSERT INTO events (at, job, level, kind, message) VALUES (1700000000000, 'b1', 'info', 'run.completed', 'done');
       INSERT INTO settings (key, value, updated_at) VALUES ('k', '"v"', 1700000000000);`,
    );
    await withDbAt(path, async (db) => {
      assert.deepEqual(db.migrated, { from: 1, to: SCHEMA_VERSION });
      assert.equal((await db.jobs.getJobState('b1')).paused, true);
      const runs = await db.runs.listRuns('b1');
      assert.equal(runs.length, 1);
      assert.deepEqual(runs[0]!.stats, { filesNew: 7 });
      assert.equal((await db.events.listEvents())[0]!.message, 'done');
      assert.equal(await db.settings.get('k'), 'v');
      // What version 2 added works.
      await db.usage.addUsage([{ job: 'b1', target: 'local', bytes: 10 }]);
      assert.equal(await db.usage.usageSince(new Date(0)), 10);
    });
  });

  it('migrates a brand-new file straight to the current version', async () => {
    await withDb(async (db) => {
      const tables = await db.db.all<{ name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name");
      const names = tables.map((t) => t.name);
      for (const t of ['job_state', 'runs', 'events', 'file_cache', 'file_cache_sets', 'settings', 'usage']) {
        assert.ok(names.includes(t), `table ${t} missing`);
      }
    });
  });
});

async function withDbAt<T>(path: string, fn: (db: BackupDb) => Promise<T>): Promise<T> {
  const db = await openBackupDb(path, { clock: new FakeClock('2026-01-01T00:00:00Z') });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

describe('Database (promise layer)', () => {
  it('rolls a transaction back when its callback throws, and rethrows', async () => {
    await withDb(async ({ db }) => {
      await db.exec('CREATE TABLE t (v INTEGER)');
      await assert.rejects(
        db.transaction(async () => {
          await db.run('INSERT INTO t VALUES (1)');
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal((await db.get<{ n: number }>('SELECT count(*) AS n FROM t'))?.n, 0);
      // The connection is usable afterwards.
      await db.transaction(() => db.run('INSERT INTO t VALUES (2)'));
      assert.equal((await db.get<{ n: number }>('SELECT count(*) AS n FROM t'))?.n, 1);
    });
  });

  it('serializes concurrent transactions: no interleaving, no lost updates', async () => {
    await withDb(async ({ db }) => {
      await db.exec('CREATE TABLE counter (n INTEGER); INSERT INTO counter VALUES (0)');
      const log: string[] = [];
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          db.transaction(async () => {
            log.push(`begin ${i}`);
            const row = await db.get<{ n: number }>('SELECT n FROM counter');
            await new Promise((r) => setImmediate(r));
            await db.run('UPDATE counter SET n = ?', [row!.n + 1]);
            log.push(`end ${i}`);
          }),
        ),
      );
      assert.equal((await db.get<{ n: number }>('SELECT n FROM counter'))?.n, 20);
      for (let i = 0; i < log.length; i += 2) {
        assert.equal(log[i]!.replace('begin', 'end'), log[i + 1], `interleaved at ${i}: ${log.join(', ')}`);
      }
      // Queued in call order.
      assert.deepEqual(
        log.filter((l) => l.startsWith('begin')),
        Array.from({ length: 20 }, (_, i) => `begin ${i}`),
      );
    });
  });

  it("keeps statements from outside a transaction out of it (they survive its rollback)", async () => {
    await withDb(async ({ db }) => {
      await db.exec('CREATE TABLE t (v TEXT)');
      let entered!: () => void;
      const inside = new Promise<void>((r) => (entered = r));
      const tx = db.transaction(async () => {
        await db.run("INSERT INTO t VALUES ('tx')");
        entered();
        await new Promise((r) => setTimeout(r, 20));
        throw new Error('rollback');
      });
      await inside;
      const outside = db.run("INSERT INTO t VALUES ('outside')"); // issued while the tx is open
      await assert.rejects(tx, /rollback/);
      await outside;
      assert.deepEqual(await db.all('SELECT v FROM t'), [{ v: 'outside' }]);
    });
  });

  it('waits for in-flight statements before a transaction begins', async () => {
    await withDb(async ({ db }) => {
      await db.exec('CREATE TABLE t (v INTEGER)');
      const writes = Array.from({ length: 50 }, (_, i) => db.run('INSERT INTO t VALUES (?)', [i]));
      await assert.rejects(
        db.transaction(async () => {
          await db.run('INSERT INTO t VALUES (-1)');
          throw new Error('undo');
        }),
        /undo/,
      );
      await Promise.all(writes);
      assert.equal((await db.get<{ n: number }>('SELECT count(*) AS n FROM t'))?.n, 50);
    });
  });

  it('nests a transaction as a savepoint: an inner throw undoes only the inner part', async () => {
    await withDb(async ({ db }) => {
      await db.exec('CREATE TABLE t (v INTEGER)');
      await db.transaction(async () => {
        await db.run('INSERT INTO t VALUES (1)');
        await assert.rejects(
          db.transaction(async () => {
            await db.run('INSERT INTO t VALUES (2)');
            throw new Error('inner');
          }),
          /inner/,
        );
        await db.transaction(() => db.run('INSERT INTO t VALUES (3)'));
      });
      assert.deepEqual(await db.all('SELECT v FROM t ORDER BY v'), [{ v: 1 }, { v: 3 }]);
    });
  });

  it('keeps transactions apart after the connection was idle between them', async () => {
    // The transaction context is switched off while no transaction runs (no promise
    // hooks then); the next transaction must still see its own statements as inside.
    await withDb(async ({ db }) => {
      await db.exec('CREATE TABLE t (v INTEGER)');
      for (let round = 0; round < 3; round++) {
        await db.run('INSERT INTO t VALUES (?)', [round * 10]);
        assert.equal(db.inTransaction, false);
        await assert.rejects(
          db.transaction(async () => {
            assert.equal(db.inTransaction, true);
            await db.run('INSERT INTO t VALUES (?)', [round * 10 + 1]);
            await db.transaction(() => db.run('INSERT INTO t VALUES (?)', [round * 10 + 2]));
            throw new Error('undo');
          }),
          /undo/,
        );
      }
      assert.deepEqual(await db.all('SELECT v FROM t ORDER BY v'), [{ v: 0 }, { v: 10 }, { v: 20 }]);
    });
  });

  it('chunks a multi-row insert under the 32766-variable limit', async () => {
    await withDb(async ({ db }) => {
      await db.exec('CREATE TABLE t (a INTEGER, b TEXT, c BLOB)');
      const rows = Array.from({ length: 20_000 }, (_, i) => [i, `r${i}`, Buffer.from([i & 0xff])]);
      const changes = await db.transaction(() => db.runBatch('INSERT INTO t (a, b, c) VALUES', rows));
      assert.equal(changes, 20_000); // 60,000 variables in all
      assert.equal((await db.get<{ n: number }>('SELECT count(*) AS n FROM t'))?.n, 20_000);
      assert.deepEqual(await db.get('SELECT a, b, c FROM t WHERE a = 19999'), { a: 19999, b: 'r19999', c: Buffer.from([0x1f]) });
    });
  });

  it('binds bigints exactly within ±2^53 and refuses larger ones (sqlite3 would bind NULL)', async () => {
    await withDb(async ({ db }) => {
      assert.deepEqual(await db.get('SELECT ? AS v', [9007199254740991n]), { v: 9007199254740991 });
      await rejectsWith(db.get('SELECT ? AS v', [2n ** 60n]), 'BACKUPDB_INVALID_ARGUMENT');
    });
  });

  it('reports SQL errors as BACKUPDB_SQLITE with the SQLite code, without hanging', async () => {
    await withDb(async ({ db }) => {
      const err = await rejectsWith(db.all('SELECT * FROM no_such_table'), 'BACKUPDB_SQLITE');
      assert.equal(err.sqliteCode, 'SQLITE_ERROR');
      await db.exec('CREATE TABLE u (k TEXT PRIMARY KEY)');
      await db.run("INSERT INTO u VALUES ('a')");
      const dup = await rejectsWith(db.run("INSERT INTO u VALUES ('a')"), 'BACKUPDB_SQLITE');
      assert.equal(dup.sqliteCode, 'SQLITE_CONSTRAINT');
    });
  });

  it('refuses calls after close with BACKUPDB_CLOSED', async () => {
    const db = await openBackupDb(dbPath(), { clock: new FakeClock(0) });
    await db.close();
    await rejectsWith(db.jobs.getJobState('b1'), 'BACKUPDB_CLOSED');
  });

  it('close waits for a transaction in progress', async () => {
    const db = await openBackupDb(dbPath(), { clock: new FakeClock(0) });
    await db.db.exec('CREATE TABLE t (v INTEGER)');
    const tx = db.transaction(async () => {
      await new Promise((r) => setTimeout(r, 10));
      await db.db.run('INSERT INTO t VALUES (1)');
    });
    await db.close();
    await tx;
    await withDbAt(db.path, async (again) => {
      assert.equal((await again.db.get<{ n: number }>('SELECT count(*) AS n FROM t'))?.n, 1);
    });
  });
});

describe('job state', () => {
  it('gives a never-seen job an empty state without writing it', async () => {
    await withDb(async (db) => {
      const s = await db.jobs.getJobState('new');
      assert.deepEqual(s, {
        job: 'new',
        paused: false,
        pausedAt: null,
        lastStartedAt: null,
        lastEndedAt: null,
        lastResult: null,
        lastRunId: null,
        lastSuccessStartedAt: null,
        lastCompletedAt: null,
        currentRunId: null,
      });
      assert.deepEqual(await db.jobs.listJobStates(), []);
    });
  });

  it('keeps the owner pause across a restart; pausing twice keeps the first pausedAt', async () => {
    const clock = new FakeClock('2026-03-01T10:00:00Z');
    const path = dbPath();
    let db = await openBackupDb(path, { clock });
    await db.jobs.setPaused(['b1', 'b2'], true);
    await clock.advance(60_000);
    await db.jobs.setPaused('b1', true);
    await db.close();
    db = await openBackupDb(path, { clock });
    try {
      const b1 = await db.jobs.getJobState('b1');
      assert.equal(b1.paused, true);
      assert.deepEqual(b1.pausedAt, new Date('2026-03-01T10:00:00Z'));
      await db.jobs.setPaused(['b1', 'b2'], false);
      const states = await db.jobs.listJobStates();
      assert.deepEqual(
        states.map((s) => [s.job, s.paused, s.pausedAt]),
        [
          ['b1', false, null],
          ['b2', false, null],
        ],
      );
      assert.equal(await db.jobs.removeJobState('b2'), true);
      assert.deepEqual((await db.jobs.listJobStates()).map((s) => s.job), ['b1']);
    } finally {
      await db.close();
    }
  });
});

describe('runs', () => {
  it('records start, progress, suspend, resume and completion, and moves the job state', async () => {
    await withDb(async (db, clock) => {
      const run = await db.runs.startRun({ job: 'b1', target: 'local' });
      assert.equal(run.result, 'running');
      assert.deepEqual(run.startedAt, new Date('2026-01-01T00:00:00Z'));
      let state = await db.jobs.getJobState('b1');
      assert.equal(state.currentRunId, run.id);
      assert.deepEqual(state.lastStartedAt, run.startedAt);
      assert.equal(state.lastCompletedAt, null);

      await clock.advance(60_000);
      await db.runs.updateRunProgress(run.id, { filesSeen: 10, bytesRead: 1000 });
      await clock.advance(60_000);
      const checkpoint = Buffer.from([0, 1, 2, 0xff]);
      await db.runs.suspendRun(run.id, { filesSeen: 20, bytesRead: 2000 }, checkpoint);
      const unfinished = await db.runs.unfinishedRuns();
      assert.equal(unfinished.length, 1);
      assert.equal(unfinished[0]!.result, 'suspended');
      assert.deepEqual(unfinished[0]!.checkpoint, checkpoint);
      assert.deepEqual(unfinished[0]!.stats, { filesSeen: 20, bytesRead: 2000 });
      assert.deepEqual(unfinished[0]!.updatedAt, new Date('2026-01-01T00:02:00Z'));

      await clock.advance(3_600_000);
      const resumed = await db.runs.resumeRun(run.id);
      assert.equal(resumed.result, 'running');
      assert.deepEqual(resumed.checkpoint, checkpoint);
      await db.runs.updateRunProgress(run.id, { filesSeen: 30 }, { walk: ['a', 'b'] }); // JSON checkpoint
      assert.deepEqual(await db.runs.getCheckpoint(run.id), { walk: ['a', 'b'] });

      await clock.advance(60_000);
      const done = await db.runs.finishRun(run.id, {
        result: 'completed',
        snapshotId: 'snap1',
        stats: { filesSeen: 40, filesNew: 40, durationMs: 120_000 },
      });
      assert.equal(done.result, 'completed');
      assert.deepEqual(done.endedAt, new Date('2026-01-01T01:03:00Z'));
      assert.equal(done.snapshotId, 'snap1');
      assert.equal(await db.runs.getCheckpoint(run.id), null);
      assert.deepEqual(await db.runs.unfinishedRuns(), []);
      state = await db.jobs.getJobState('b1');
      assert.equal(state.currentRunId, null);
      assert.equal(state.lastResult, 'completed');
      assert.equal(state.lastRunId, run.id);
      assert.deepEqual(state.lastCompletedAt, new Date('2026-01-01T01:03:00Z'));
      assert.deepEqual(state.lastSuccessStartedAt, new Date('2026-01-01T00:00:00Z'));
      assert.deepEqual((await db.runs.lastSuccessfulRun('b1'))?.id, run.id);
    });
  });

  it('allows one unfinished run per job, and refuses to finish a run twice', async () => {
    await withDb(async (db) => {
      const run = await db.runs.startRun({ job: 'b1', target: 'local' });
      await rejectsWith(db.runs.startRun({ job: 'b1', target: 'local' }), 'BACKUPDB_RUN_ACTIVE');
      const other = await db.runs.startRun({ job: 'b2', target: 'local' }); // another job is fine
      await db.runs.finishRun(run.id, { result: 'cancelled' });
      await rejectsWith(db.runs.finishRun(run.id, { result: 'completed' }), 'BACKUPDB_RUN_NOT_ACTIVE');
      await rejectsWith(db.runs.updateRunProgress(run.id, {}), 'BACKUPDB_RUN_NOT_ACTIVE');
      await rejectsWith(db.runs.resumeRun(run.id), 'BACKUPDB_RUN_NOT_ACTIVE');
      await rejectsWith(db.runs.suspendRun(999, {}), 'BACKUPDB_RUN_NOT_FOUND');
      await rejectsWith(db.runs.finishRun(other.id, { result: 'running' as never }), 'BACKUPDB_INVALID_ARGUMENT');
      const again = await db.runs.startRun({ job: 'b1', target: 'local' });
      assert.ok(again.id > run.id);
    });
  });

  it('never counts a failed, cancelled or refused run as the last completion', async () => {
    await withDb(async (db, clock) => {
      const ok = await db.runs.startRun({ job: 'b1', target: 'local' });
      await db.runs.finishRun(ok.id, { result: 'partial', snapshotId: 's1', stats: { warnings: 2 } });
      const okState = await db.jobs.getJobState('b1');
      for (const result of ['failed', 'cancelled', 'refused'] as const) {
        await clock.advance(3_600_000);
        const r = await db.runs.startRun({ job: 'b1', target: 'local' });
        await db.runs.finishRun(r.id, { result, error: `it ${result}` });
        const s = await db.jobs.getJobState('b1');
        assert.equal(s.lastResult, result);
        assert.deepEqual(s.lastCompletedAt, okState.lastCompletedAt);
        assert.deepEqual(s.lastSuccessStartedAt, okState.lastSuccessStartedAt);
      }
      assert.equal((await db.runs.lastSuccessfulRun('b1'))?.id, ok.id);
      const history = await db.runs.listRuns('b1');
      assert.deepEqual(
        history.map((r) => r.result),
        ['refused', 'cancelled', 'failed', 'partial'],
      );
      assert.equal(history[0]!.error, 'it refused');
      const page = await db.runs.listRuns('b1', 2, { beforeId: history[1]!.id });
      assert.deepEqual(
        page.map((r) => r.result),
        ['failed', 'partial'],
      );
    });
  });

  it('keeps verify runs in the history without moving the job state', async () => {
    await withDb(async (db) => {
      const b = await db.runs.startRun({ job: 'b1', target: 'local' });
      const v = await db.runs.startRun({ job: 'b1', target: 'local', kind: 'verify' }); // different kind
      await db.runs.finishRun(v.id, { result: 'completed' });
      const s = await db.jobs.getJobState('b1');
      assert.equal(s.currentRunId, b.id);
      assert.equal(s.lastCompletedAt, null);
      assert.equal((await db.runs.lastSuccessfulRun('b1', 'verify'))?.id, v.id);
      assert.deepEqual((await db.runs.listRuns(null, 10, { kind: 'verify' })).map((r) => r.id), [v.id]);
    });
  });

  it('finds a run left running by a killed node after reopening', async () => {
    const clock = new FakeClock('2026-01-01T00:00:00Z');
    const path = dbPath();
    const db1 = await openBackupDb(path, { clock });
    const run = await db1.runs.startRun({ job: 'b1', target: 'local' });
    await db1.runs.updateRunProgress(run.id, { filesSeen: 5 }, { done: 5 });
    await db1.close();
    await withDbAt(path, async (db2) => {
      const left = await db2.runs.unfinishedRuns();
      assert.deepEqual(
        left.map((r) => [r.id, r.result, r.checkpoint]),
        [[run.id, 'running', { done: 5 }]],
      );
      assert.equal((await db2.jobs.getJobState('b1')).currentRunId, run.id);
    });
  });

  it('prunes old runs but keeps the newest per job and the last successful one', async () => {
    await withDb(async (db, clock) => {
      const first = await db.runs.startRun({ job: 'b1', target: 'local' });
      await db.runs.finishRun(first.id, { result: 'completed' });
      for (let i = 0; i < 5; i++) {
        await clock.advance(86_400_000);
        const r = await db.runs.startRun({ job: 'b1', target: 'local' });
        await db.runs.finishRun(r.id, { result: 'failed' });
      }
      await clock.advance(86_400_000);
      const deleted = await db.runs.pruneRuns(clock.now(), 2);
      assert.equal(deleted, 3);
      const left = await db.runs.listRuns('b1');
      assert.deepEqual(
        left.map((r) => r.result),
        ['failed', 'failed', 'completed'],
      );
      assert.equal(left[2]!.id, first.id);
    });
  });
});

describe('events', () => {
  it('lists newest first, filters by job and level, pages by beforeId', async () => {
    await withDb(async (db, clock) => {
      await db.events.addEvent({ level: 'info', kind: 'node.started', message: 'node started' });
      await clock.advance(1000);
      const e = await db.events.addEvent({
        job: 'b1',
        runId: 7,
        level: 'warn',
        kind: 'run.suspended',
        message: 'b1 suspended at 08:00: 12,345 of 40,102 files done, resumes 22:00',
        detail: { filesDone: 12345, filesTotal: 40102 },
      });
      assert.deepEqual(e.at, new Date('2026-01-01T00:00:01Z'));
      await db.events.addEvents([
        { job: 'b1', level: 'debug', kind: 'x', message: 'debug 1' },
        { job: 'b2', level: 'error', kind: 'run.failed', message: 'b2 failed' },
        { job: 'b1', level: 'info', kind: 'run.resumed', message: 'b1 resumed' },
      ]);
      const all = await db.events.listEvents();
      assert.deepEqual(
        all.map((x) => x.message),
        ['b1 resumed', 'b2 failed', 'debug 1', e.message, 'node started'],
      );
      assert.deepEqual(all[3], e);
      assert.deepEqual(
        (await db.events.listEvents({ job: 'b1', minLevel: 'info' })).map((x) => x.kind),
        ['run.resumed', 'run.suspended'],
      );
      assert.deepEqual(
        (await db.events.listEvents({ minLevel: 'warn' })).map((x) => x.level),
        ['error', 'warn'],
      );
      const page1 = await db.events.listEvents({ limit: 2 });
      const page2 = await db.events.listEvents({ limit: 2, beforeId: page1[1]!.id });
      assert.deepEqual(
        [...page1, ...page2].map((x) => x.id),
        all.slice(0, 4).map((x) => x.id),
      );
      assert.deepEqual((await db.events.listEvents({ runId: 7 })).map((x) => x.id), [e.id]);
      await rejectsWith(db.events.addEvent({ level: 'loud' as never, kind: 'k', message: 'm' }), 'BACKUPDB_INVALID_ARGUMENT');
    });
  });

  it('prunes events older than a cut-off', async () => {
    await withDb(async (db, clock) => {
      for (let day = 0; day < 10; day++) {
        await db.events.addEvent({ level: 'info', kind: 'tick', message: `day ${day}` });
        await clock.advance(86_400_000);
      }
      const cutoff = new Date('2026-01-08T00:00:00Z');
      assert.equal(await db.events.pruneEvents(cutoff), 7);
      assert.deepEqual(
        (await db.events.listEvents()).map((x) => x.message),
        ['day 9', 'day 8', 'day 7'],
      );
    });
  });
});

describe('settings', () => {
  it('stores JSON values, lists by prefix, deletes', async () => {
    await withDb(async (db) => {
      assert.equal(await db.settings.get('missing'), undefined);
      await db.settings.set('bandwidth.override.node', 1048576);
      await db.settings.set('bandwidth.override.job.b1', { rate: 'off' });
      await db.settings.set('bandwidth.override.job.b1', { rate: 512 });
      await db.settings.set('ui.theme', 'dark');
      assert.deepEqual(await db.settings.get('bandwidth.override.job.b1'), { rate: 512 });
      assert.deepEqual(
        [...(await db.settings.list('bandwidth.override.'))],
        [
          ['bandwidth.override.job.b1', { rate: 512 }],
          ['bandwidth.override.node', 1048576],
        ],
      );
      assert.equal((await db.settings.list()).size, 3);
      assert.equal(await db.settings.delete('ui.theme'), true);
      assert.equal(await db.settings.delete('ui.theme'), false);
      assert.equal(await db.settings.get('ui.theme'), undefined);
    });
  });
});

describe('usage accounting', () => {
  it('adds bytes per minute bucket and sums by job, target and time range', async () => {
    await withDb(async (db, clock) => {
      const t0 = clock.now();
      await db.usage.addUsage([
        { job: 'b1', target: 'parents', bytes: 100 },
        { job: 'b1', target: 'parents', bytes: 50, at: new Date(t0.getTime() + 30_000) }, // same minute
        { job: 'b2', target: 'parents', bytes: 7 },
        { job: 'b1', target: 's3', bytes: 1000 },
      ]);
      await db.usage.addUsage([{ job: 'b1', target: 'parents', bytes: 1 }]); // adds to the stored bucket
      await clock.advance(120_000);
      await db.usage.addUsage([{ job: 'b1', target: 'parents', bytes: 5 }]);

      assert.equal(await db.usage.usageSince(t0), 1163);
      assert.equal(await db.usage.usageSince(t0, { job: 'b1', target: 'parents' }), 156);
      assert.equal(await db.usage.usageSince(t0, { target: 'parents' }), 163);
      assert.equal(await db.usage.usageSince(new Date(t0.getTime() + 60_000)), 5);
      assert.equal(await db.usage.usageSince(t0, { until: new Date(t0.getTime() + 60_000) }), 1158);
      const rows = await db.usage.listUsage({ since: t0, job: 'b1', target: 'parents' });
      assert.deepEqual(
        rows.map((r) => [r.at.toISOString(), r.spanMs, r.bytes]),
        [
          ['2026-01-01T00:00:00.000Z', 60_000, 151],
          ['2026-01-01T00:02:00.000Z', 60_000, 5],
        ],
      );
      await rejectsWith(db.usage.addUsage([{ job: 'b1', target: 'x', bytes: -1 }]), 'BACKUPDB_INVALID_ARGUMENT');
    });
  });

  it('rolls old minute rows up into day rows without changing totals', async () => {
    await withDb(async (db, clock) => {
      // Three days, a sample every 3 hours for two jobs.
      for (let h = 0; h < 72; h += 3) {
        await db.usage.addUsage([
          { job: 'b1', target: 'parents', bytes: 1000 },
          { job: 'b2', target: 'parents', bytes: 10 },
        ]);
        await clock.advance(3 * 3_600_000);
      }
      const since = new Date(0);
      const before = await db.usage.usageSince(since);
      const cut = new Date('2026-01-03T00:00:00Z');
      const merged = await db.usage.rollUp(cut);
      assert.equal(merged, 2 * 16); // two days × 8 samples × 2 jobs
      assert.equal(await db.usage.rollUp(cut), 0); // idempotent
      assert.equal(await db.usage.usageSince(since), before);
      const rows = await db.usage.listUsage({ since, job: 'b1' });
      assert.deepEqual(
        rows.slice(0, 3).map((r) => [r.at.toISOString(), r.spanMs, r.bytes]),
        [
          ['2026-01-01T00:00:00.000Z', 86_400_000, 8000],
          ['2026-01-02T00:00:00.000Z', 86_400_000, 8000],
          ['2026-01-03T00:00:00.000Z', 60_000, 1000],
        ],
      );
      // A local-day function (UTC+1) groups by its own midnights.
      const plusOne = (ms: number) => Math.floor((ms + 3_600_000) / 86_400_000) * 86_400_000 - 3_600_000;
      await db.usage.rollUp(new Date('2026-01-04T00:00:00Z'), plusOne);
      assert.equal(await db.usage.usageSince(since), before);
      assert.equal(await db.usage.pruneUsage(new Date('2026-01-02T00:00:00Z')), 2);
    });
  });
});

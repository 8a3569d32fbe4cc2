import type { Clock } from '../node/clock.js';
import type { Database, SqlValue } from './db.js';
import { BackupDbError } from './errors.js';
import { dateOrNull, fromJson, toJson, type JsonValue } from './values.js';

/**
 * A run's result column. The state machine (the scheduler owns the transitions; this
 * table records them):
 *
 *   running ⇄ suspended            (window closed, owner paused, budget spent)
 *   running | suspended → completed | partial | failed | cancelled | refused
 *
 * `running` and `suspended` are unfinished (`endedAt` null); the rest are final.
 * `completed` and `partial` (finished with warnings, snapshot kept) are successful;
 * `refused` is the mass-deletion guard saying no before any snapshot was written.
 * A `running` row found at start-up belongs to a node that died mid-run.
 */
export type RunResult = 'running' | 'suspended' | 'completed' | 'partial' | 'failed' | 'cancelled' | 'refused';
export type FinalRunResult = Exclude<RunResult, 'running' | 'suspended'>;
export const FINAL_RUN_RESULTS: readonly FinalRunResult[] = ['completed', 'partial', 'failed', 'cancelled', 'refused'];
export const SUCCESSFUL_RUN_RESULTS: readonly FinalRunResult[] = ['completed', 'partial'];

/**
 * What a run is: a backup moves the job's state (due times); `verify` and `prune` runs
 * (scheduled maintenance) are kept in the same history without touching it.
 */
export type RunKind = 'backup' | 'verify' | 'prune' | (string & {});

/**
 * Box Backup-style statistics of a run, stored as JSON. All counts are optional so a run
 * can report what it knows; further keys are kept as given.
 */
export interface RunStats {
  filesSeen?: number;
  bytesSeen?: number;
  filesNew?: number;
  filesChanged?: number;
  filesUnchanged?: number;
  filesRemoved?: number;
  dirsSeen?: number;
  bytesRead?: number;
  bytesNew?: number;
  bytesWritten?: number;
  bytesSent?: number;
  warnings?: number;
  durationMs?: number;
  [key: string]: JsonValue | undefined;
}

/**
 * Where a suspended or interrupted run stands, opaque to the backupdb: a Buffer is kept
 * as a BLOB and handed back as a Buffer, anything else is kept as JSON.
 */
export type Checkpoint = Buffer | JsonValue;

export interface RunRecord {
  id: number;
  job: string;
  target: string;
  kind: RunKind;
  startedAt: Date;
  /** Last time the row was written (start, progress, suspend, resume, finish). */
  updatedAt: Date;
  endedAt: Date | null;
  result: RunResult;
  snapshotId: string | null;
  error: string | null;
  stats: RunStats;
}

/** An unfinished run with its checkpoint, as `unfinishedRuns()` returns it. */
export interface UnfinishedRun extends RunRecord {
  checkpoint: Checkpoint | null;
}

export interface StartRunOptions {
  job: string;
  /** The target alias the run writes to. */
  target: string;
  kind?: RunKind;
  stats?: RunStats;
}

export interface FinishRunOptions {
  result: FinalRunResult;
  snapshotId?: string | null;
  error?: string | null;
  /** Final statistics; when omitted the last progress statistics stay. */
  stats?: RunStats;
}

interface RunRow {
  id: number;
  job: string;
  target: string;
  kind: string;
  started_at: number;
  updated_at: number;
  ended_at: number | null;
  result: string;
  snapshot_id: string | null;
  error: string | null;
  stats: string;
}

const RUN_COLUMNS = 'id, job, target, kind, started_at, updated_at, ended_at, result, snapshot_id, error, stats';

function toRunRecord(r: RunRow): RunRecord {
  return {
    id: r.id,
    job: r.job,
    target: r.target,
    kind: r.kind,
    startedAt: new Date(r.started_at),
    updatedAt: new Date(r.updated_at),
    endedAt: dateOrNull(r.ended_at),
    result: r.result as RunResult,
    snapshotId: r.snapshot_id,
    error: r.error,
    stats: fromJson<RunStats>(r.stats, `run ${r.id} stats`),
  };
}

function checkpointValue(c: Checkpoint | null): SqlValue {
  if (c === null) return null;
  return Buffer.isBuffer(c) ? c : toJson(c, 'checkpoint');
}

function checkpointOf(v: unknown, runId: number): Checkpoint | null {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return v;
  return fromJson<JsonValue>(String(v), `run ${runId} checkpoint`);
}

/**
 * Run history (`db.runs`). Every method is one transaction; rows and the job's state
 * change together. Methods that act on a run throw `BACKUPDB_RUN_NOT_FOUND` for an
 * unknown id and `BACKUPDB_RUN_NOT_ACTIVE` when the run has already ended.
 */
export class RunsApi {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /**
   * Records the start of a run (result `running`, now). At most one unfinished run per
   * (job, kind): throws `BACKUPDB_RUN_ACTIVE` when the job already has a running or
   * suspended one; the caller resumes it (`resumeRun`) or ends it (`finishRun`) first.
   * A backup run becomes the job's `currentRunId` and its `lastStartedAt`.
   */
  async startRun(opts: StartRunOptions): Promise<RunRecord> {
    const kind = opts.kind ?? 'backup';
    const now = this.clock.nowMs();
    return this.db.transaction(async () => {
      const active = await this.db.get<{ id: number }>(
        'SELECT id FROM runs WHERE ended_at IS NULL AND job = ? AND kind = ? LIMIT 1',
        [opts.job, kind],
      );
      if (active) {
        throw new BackupDbError(
          'BACKUPDB_RUN_ACTIVE',
          `job ${opts.job} already has an unfinished ${kind} run (#${active.id}); resume or finish it first`,
        );
      }
      const { lastId } = await this.db.run(
        `INSERT INTO runs (job, target, kind, started_at, updated_at, result, stats)
         VALUES (?, ?, ?, ?, ?, 'running', ?)`,
        [opts.job, opts.target, kind, now, now, toJson(opts.stats ?? {}, 'run stats')],
      );
      if (kind === 'backup') {
        await this.db.run(
          `INSERT INTO job_state (job, last_started_at, current_run_id, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (job) DO UPDATE SET last_started_at = excluded.last_started_at,
             current_run_id = excluded.current_run_id, updated_at = excluded.updated_at`,
          [opts.job, now, lastId, now],
        );
      }
      return (await this.getRun(lastId))!;
    });
  }

  /**
   * Replaces the run's statistics and, when `checkpoint` is given, its checkpoint
   * (`null` clears it; `undefined` keeps the stored one). Cheap enough to call every few
   * seconds; the scheduler writes a checkpoint at least every few minutes.
   */
  async updateRunProgress(runId: number, stats: RunStats, checkpoint?: Checkpoint | null): Promise<void> {
    await this.update(runId, 'progress', stats, checkpoint, null);
  }

  /** Marks a running run `suspended` with its statistics and checkpoint. Idempotent. */
  async suspendRun(runId: number, stats: RunStats, checkpoint?: Checkpoint | null): Promise<void> {
    await this.update(runId, 'suspend', stats, checkpoint, 'suspended');
  }

  /**
   * Marks a suspended (or interrupted `running`) run `running` again and returns it
   * with its checkpoint, which is kept until the run finishes.
   */
  async resumeRun(runId: number): Promise<UnfinishedRun> {
    return this.db.transaction(async () => {
      await this.update(runId, 'resume', undefined, undefined, 'running');
      const row = await this.db.get<RunRow & { checkpoint: unknown }>(
        `SELECT ${RUN_COLUMNS}, checkpoint FROM runs WHERE id = ?`,
        [runId],
      );
      return { ...toRunRecord(row!), checkpoint: checkpointOf(row!.checkpoint, runId) };
    });
  }

  /**
   * Ends a run with a final result; clears its checkpoint. For a backup run, updates the
   * job's state: `lastResult`, `lastEndedAt`, and for `completed`/`partial` also
   * `lastCompletedAt` (= now) and `lastSuccessStartedAt` (= the run's start); clears
   * `currentRunId`. Not idempotent: a second finish throws `BACKUPDB_RUN_NOT_ACTIVE`.
   */
  async finishRun(runId: number, opts: FinishRunOptions): Promise<RunRecord> {
    if (!FINAL_RUN_RESULTS.includes(opts.result)) {
      throw new BackupDbError('BACKUPDB_INVALID_ARGUMENT', `finishRun: ${opts.result} is not a final result`);
    }
    const now = this.clock.nowMs();
    return this.db.transaction(async () => {
      const run = await this.activeRun(runId);
      await this.db.run(
        `UPDATE runs SET result = ?, ended_at = ?, updated_at = ?, snapshot_id = ?, error = ?,
           stats = coalesce(?, stats), checkpoint = NULL
         WHERE id = ?`,
        [
          opts.result,
          now,
          now,
          opts.snapshotId ?? null,
          opts.error ?? null,
          opts.stats === undefined ? null : toJson(opts.stats, 'run stats'),
          runId,
        ],
      );
      if (run.kind === 'backup') {
        const success = SUCCESSFUL_RUN_RESULTS.includes(opts.result);
        await this.db.run(
          `INSERT INTO job_state (job, last_ended_at, last_result, last_run_id, last_success_started_at,
             last_completed_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (job) DO UPDATE SET
             last_ended_at = excluded.last_ended_at,
             last_result = excluded.last_result,
             last_run_id = excluded.last_run_id,
             last_success_started_at = coalesce(excluded.last_success_started_at, job_state.last_success_started_at),
             last_completed_at = coalesce(excluded.last_completed_at, job_state.last_completed_at),
             current_run_id = CASE WHEN job_state.current_run_id = ? THEN NULL ELSE job_state.current_run_id END,
             updated_at = excluded.updated_at`,
          [
            run.job,
            now,
            opts.result,
            runId,
            success ? run.startedAt.getTime() : null,
            success ? now : null,
            now,
            runId,
          ],
        );
      }
      return (await this.getRun(runId))!;
    });
  }

  /** The run with this id, or null. */
  async getRun(runId: number): Promise<RunRecord | null> {
    const row = await this.db.get<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = ?`, [runId]);
    return row ? toRunRecord(row) : null;
  }

  /** The run's stored checkpoint, or null (none, or the run is unknown). */
  async getCheckpoint(runId: number): Promise<Checkpoint | null> {
    const row = await this.db.get<{ checkpoint: unknown }>('SELECT checkpoint FROM runs WHERE id = ?', [runId]);
    return row ? checkpointOf(row.checkpoint, runId) : null;
  }

  /**
   * Newest first, at most `limit` runs of `job` (every job when `job` is null), older than
   * `beforeId` when given (for paging). Checkpoints are not loaded.
   */
  async listRuns(
    job: string | null,
    limit = 50,
    opts: { beforeId?: number; kind?: RunKind } = {},
  ): Promise<RunRecord[]> {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (job !== null) where.push('job = ?'), params.push(job);
    if (opts.kind !== undefined) where.push('kind = ?'), params.push(opts.kind);
    if (opts.beforeId !== undefined) where.push('id < ?'), params.push(opts.beforeId);
    params.push(limit);
    const rows = await this.db.all<RunRow>(
      `SELECT ${RUN_COLUMNS} FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
      params,
    );
    return rows.map(toRunRecord);
  }

  /** The newest `completed` or `partial` run of the job (of `kind`, default backup), or null. */
  async lastSuccessfulRun(job: string, kind: RunKind = 'backup'): Promise<RunRecord | null> {
    const row = await this.db.get<RunRow>(
      `SELECT ${RUN_COLUMNS} FROM runs WHERE job = ? AND kind = ? AND result IN ('completed', 'partial')
       ORDER BY id DESC LIMIT 1`,
      [job, kind],
    );
    return row ? toRunRecord(row) : null;
  }

  /**
   * Every running or suspended run, oldest first, with its checkpoint. At start-up all of
   * them belong to the previous node process; the scheduler resumes or ends each.
   */
  async unfinishedRuns(): Promise<UnfinishedRun[]> {
    const rows = await this.db.all<RunRow & { checkpoint: unknown }>(
      `SELECT ${RUN_COLUMNS}, checkpoint FROM runs WHERE ended_at IS NULL ORDER BY id`,
    );
    return rows.map((r) => ({ ...toRunRecord(r), checkpoint: checkpointOf(r.checkpoint, r.id) }));
  }

  /**
   * Deletes ended runs that ended before `olderThan`, keeping per job the newest
   * `keepPerJob` runs and always the last successful one. Returns how many were deleted.
   */
  async pruneRuns(olderThan: Date, keepPerJob = 20): Promise<number> {
    const { changes } = await this.db.run(
      `DELETE FROM runs WHERE id IN (
         SELECT id FROM (
           SELECT id, ended_at, result, kind,
             row_number() OVER (PARTITION BY job ORDER BY id DESC) AS rank,
             row_number() OVER (PARTITION BY job, kind, result IN ('completed', 'partial') ORDER BY id DESC) AS ok_rank
           FROM runs WHERE ended_at IS NOT NULL)
         WHERE ended_at < ? AND rank > ? AND NOT (result IN ('completed', 'partial') AND ok_rank = 1))`,
      [olderThan.getTime(), keepPerJob],
    );
    return changes;
  }

  private async activeRun(runId: number): Promise<RunRecord> {
    const run = await this.getRun(runId);
    if (!run) throw new BackupDbError('BACKUPDB_RUN_NOT_FOUND', `no run #${runId}`);
    if (run.endedAt !== null) {
      throw new BackupDbError('BACKUPDB_RUN_NOT_ACTIVE', `run #${runId} has already ended (${run.result})`);
    }
    return run;
  }

  private async update(
    runId: number,
    what: string,
    stats: RunStats | undefined,
    checkpoint: Checkpoint | null | undefined,
    result: 'running' | 'suspended' | null,
  ): Promise<void> {
    const sets = ['updated_at = ?'];
    const params: SqlValue[] = [this.clock.nowMs()];
    if (stats !== undefined) sets.push('stats = ?'), params.push(toJson(stats, 'run stats'));
    if (checkpoint !== undefined) sets.push('checkpoint = ?'), params.push(checkpointValue(checkpoint));
    if (result !== null) sets.push('result = ?'), params.push(result);
    params.push(runId);
    const { changes } = await this.db.run(`UPDATE runs SET ${sets.join(', ')} WHERE id = ? AND ended_at IS NULL`, params);
    if (changes === 0) {
      await this.activeRun(runId); // throws the precise error
      throw new BackupDbError('BACKUPDB_RUN_NOT_ACTIVE', `run #${runId}: ${what} failed`);
    }
  }
}

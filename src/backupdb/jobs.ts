import type { Clock } from '../node/clock.js';
import type { Database } from './db.js';
import type { RunResult } from './runs.js';
import { dateOrNull } from './values.js';

/**
 * What the scheduler remembers about a job across restarts. Only backup runs (kind
 * `backup`) move these fields; verify and prune runs live in the run history only.
 */
export interface JobState {
  job: string;
  /** Paused by the owner; survives a restart until resumed. */
  paused: boolean;
  pausedAt: Date | null;
  /** Start of the most recent run, whatever became of it. */
  lastStartedAt: Date | null;
  /** End of the most recent ended run, and its result (null: never ended a run). */
  lastEndedAt: Date | null;
  lastResult: RunResult | null;
  lastRunId: number | null;
  /**
   * Start and end of the last *successful* run (result `completed` or `partial`). Due
   * times are measured from these; failed, cancelled and refused runs never count.
   */
  lastSuccessStartedAt: Date | null;
  lastCompletedAt: Date | null;
  /** The running or suspended backup run of this job, if any. */
  currentRunId: number | null;
}

interface JobRow {
  job: string;
  paused: number;
  paused_at: number | null;
  last_started_at: number | null;
  last_ended_at: number | null;
  last_result: string | null;
  last_run_id: number | null;
  last_success_started_at: number | null;
  last_completed_at: number | null;
  current_run_id: number | null;
}

/** The state of a job that has never run nor been paused. */
export function emptyJobState(job: string): JobState {
  return {
    job,
    paused: false,
    pausedAt: null,
    lastStartedAt: null,
    lastEndedAt: null,
    lastResult: null,
    lastRunId: null,
    lastSuccessStartedAt: null,
    lastCompletedAt: null,
    currentRunId: null,
  };
}

function toJobState(r: JobRow): JobState {
  return {
    job: r.job,
    paused: r.paused === 1,
    pausedAt: dateOrNull(r.paused_at),
    lastStartedAt: dateOrNull(r.last_started_at),
    lastEndedAt: dateOrNull(r.last_ended_at),
    lastResult: r.last_result as RunResult | null,
    lastRunId: r.last_run_id,
    lastSuccessStartedAt: dateOrNull(r.last_success_started_at),
    lastCompletedAt: dateOrNull(r.last_completed_at),
    currentRunId: r.current_run_id,
  };
}

/**
 * Job state (`db.jobs`). Start/finish bookkeeping is done by `db.runs` in the same
 * transaction as the run row, so the two never disagree; this API reads the state and
 * owns the pause flag. All methods are safe to call concurrently.
 */
export class JobsApi {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /** The job's state; a job never seen before gets {@link emptyJobState} (nothing is written). */
  async getJobState(job: string): Promise<JobState> {
    const row = await this.db.get<JobRow>('SELECT * FROM job_state WHERE job = ?', [job]);
    return row ? toJobState(row) : emptyJobState(job);
  }

  /** Every job that has ever run or been paused, by name. Jobs since removed from node.cfg included. */
  async listJobStates(): Promise<JobState[]> {
    const rows = await this.db.all<JobRow>('SELECT * FROM job_state ORDER BY job');
    return rows.map(toJobState);
  }

  /**
   * Sets the owner's pause flag for each job (one transaction). Idempotent: pausing a
   * paused job keeps its original `pausedAt`. Does not touch a running run: stopping it
   * is the scheduler's work.
   */
  async setPaused(jobs: string | readonly string[], paused: boolean): Promise<void> {
    const list = typeof jobs === 'string' ? [jobs] : jobs;
    if (list.length === 0) return;
    const now = this.clock.nowMs();
    await this.db.transaction(async () => {
      await this.db.runBatch(
        'INSERT INTO job_state (job, paused, paused_at, updated_at) VALUES',
        list.map((job) => [job, paused ? 1 : 0, paused ? now : null, now]),
        `ON CONFLICT (job) DO UPDATE SET
           paused = excluded.paused,
           paused_at = CASE WHEN excluded.paused = 1 THEN coalesce(job_state.paused_at, excluded.paused_at) END,
           updated_at = excluded.updated_at
         WHERE job_state.paused <> excluded.paused`,
      );
    });
  }

  /**
   * Forgets a job's state (for a job removed from node.cfg). Its run history and events
   * stay until pruned. Returns whether there was a state.
   */
  async removeJobState(job: string): Promise<boolean> {
    const { changes } = await this.db.run('DELETE FROM job_state WHERE job = ?', [job]);
    return changes > 0;
  }
}

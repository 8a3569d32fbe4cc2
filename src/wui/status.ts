/** What the status page, `GET /api/v1/status` and `nightjar status --json` show. Never holds a secret. */
export interface NodeStatus {
  readonly nickname: string;
  /** Null when read from the backupdb while no node runs. */
  readonly startedAt: string | null;
  readonly now: string;
  readonly running: boolean;
  readonly jobs: readonly JobStatus[];
}

export interface JobStatus {
  readonly name: string;
  readonly source: string;
  /** `alias:name` (no credentials). */
  readonly target: string;
  /** `every 1d` or the cron expression. */
  readonly schedule: string;
  /** The allowed_times spec, or `any time`. */
  readonly allowedTimes: string;
  readonly timezone: string;
  /** Run state (`idle`, `waiting_window`, `running`, `suspended`, …). */
  readonly state: string;
  /** The state in plain words (`waiting for window`, `paused (suspended)`). */
  readonly label: string;
  readonly paused: boolean;
  readonly enabled: boolean;
  readonly nextStartAt: string | null;
  readonly nextStartReason: string | null;
  /** `22:00-08:00` of the current or next window, or null when always allowed. */
  readonly window: string | null;
  readonly lastResult: string | null;
  readonly lastCompletedAt: string | null;
  /** Id and end of the last ended run (the backupdb's run history), whatever its result. */
  readonly lastRunId?: number | null;
  readonly lastEndedAt?: string | null;
  readonly lastError: string | null;
  readonly progress: RunProgressStatus | null;
  /**
   * Window-aware estimate of the live run's end (`about 3 more nights (done around Thu
   * 04:10)`), from the bytes left, the achieved rate and the windows ahead; null without a
   * live or suspended run. `doneAt` is null when unknown.
   */
  readonly eta?: { readonly text: string; readonly doneAt: string | null } | null;
  /**
   * No successful run for longer than the job's alert_after (src/jobs/overdue.ts); a job
   * that never completed counts from the node's start (never offline). `overdueSince` is
   * when the episode began.
   */
  readonly overdue?: boolean;
  readonly overdueSince?: string | null;
  /** The last scheduled verify of the job's target (verify_frequency), or null when none ran. */
  readonly lastVerify?: { readonly endedAt: string | null; readonly result: string; readonly error: string | null } | null;
}

export interface RunProgressStatus {
  readonly startedAt: string | null;
  readonly currentPath: string;
  readonly filesDone: number;
  readonly filesEstimated: number;
  readonly filesNew: number;
  readonly filesChanged: number;
  readonly filesUnchanged: number;
  readonly bytesRead: number;
  readonly bytesNew: number;
  readonly bytesWritten: number;
  readonly warnings: number;
}

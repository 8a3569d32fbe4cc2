/** What the status page and `GET /api/v1/status` show. Never holds a secret. */
export interface NodeStatus {
  readonly nickname: string;
  readonly startedAt: string;
  readonly now: string;
  readonly jobs: readonly JobStatus[];
}

export interface JobStatus {
  readonly name: string;
  readonly source: string;
  /** `alias` (kind and location with no credentials). */
  readonly target: string;
  /** `every 1d` or the cron expression. */
  readonly schedule: string;
  /** The allowed_times spec, or `any time`. */
  readonly allowedTimes: string;
  readonly state: string;
  readonly paused: boolean;
  readonly lastResult: string | null;
  readonly lastCompletedAt: string | null;
}

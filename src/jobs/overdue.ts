import type { Clock } from '../node/clock.js';
import type { JobConfig } from '../node/config/types.js';
import { cronFor } from './schedule.js';
import { isAlwaysOpen, windowsBetween } from './windows.js';
import { startPeriodicCheck, type PeriodicCheck } from './periodic-check.js';

const DAY_MS = 24 * 3_600_000;
const WEEK_MS = 7 * DAY_MS;

/** What overdue detection needs of a job. */
export type OverdueJob = Pick<JobConfig, 'name' | 'frequencyMs' | 'schedule' | 'allowedTimes' | 'timezone' | 'alertAfterMs'>;

/**
 * The job's freshness limit: `alert_after` when set, else twice its period (frequency, or
 * the gap between the next two cron times after `now`) plus the longest stretch its
 * windows stay closed in the week after `now` (0 for an always-open job). Pure.
 */
export function alertAfterMs(job: OverdueJob, now: Date): number {
  if (job.alertAfterMs !== null) return job.alertAfterMs;
  let period = job.frequencyMs ?? 0;
  if (job.schedule) {
    const cron = cronFor(job.schedule, job.timezone);
    const a = cron.nextRun(now);
    const b = a ? cron.nextRun(a) : null;
    period = a && b ? b.getTime() - a.getTime() : DAY_MS;
  }
  return 2 * period + longestClosedMs(job, now);
}

/** The longest time the job's windows stay closed within the week after `now`. */
export function longestClosedMs(job: Pick<JobConfig, 'allowedTimes' | 'timezone'>, now: Date): number {
  if (isAlwaysOpen(job.allowedTimes, job.timezone)) return 0;
  // Two weeks of windows from now: every closed stretch of a weekly pattern shows whole.
  const spans = windowsBetween(job.allowedTimes, job.timezone, now, new Date(now.getTime() + 2 * WEEK_MS));
  let longest = 0;
  for (let i = 1; i < spans.length; i++) longest = Math.max(longest, spans[i]!.opensAt.getTime() - spans[i - 1]!.closesAt.getTime());
  return spans.length === 0 ? WEEK_MS : longest;
}

/**
 * True when the job has had no successful run for longer than its alert_after: measured
 * from `lastCompletedAt`, or, when it never completed, from `since` (when the node began
 * watching it; without one a job that never ran is not overdue). Disabled jobs are never
 * overdue. Pure.
 */
export function isOverdue(job: OverdueJob & { enabled?: boolean }, lastCompletedAt: Date | null, now: Date, since?: Date | null): boolean {
  return overdueSince(job, lastCompletedAt, now, since) !== null;
}

/** When the job became (or becomes) overdue if that is at or before `now`, else null. See isOverdue. */
export function overdueSince(job: OverdueJob & { enabled?: boolean }, lastCompletedAt: Date | null, now: Date, since?: Date | null): Date | null {
  if (job.enabled === false) return null;
  const from = lastCompletedAt ?? since ?? null;
  if (!from) return null;
  const at = new Date(from.getTime() + alertAfterMs(job, now));
  return at.getTime() < now.getTime() ? at : null;
}

/**
 * Remembers which jobs are in an overdue episode so `on_overdue` fires once per episode:
 * `update` returns the jobs that just became overdue; a job leaves its episode when it is
 * no longer overdue (a run completed). Not thread-safe; one owner (the daemon).
 */
export class OverdueTracker {
  private readonly episodes = new Set<string>();

  /** `overdue`: the job names overdue now. Returns those that were not overdue before. */
  update(overdue: Iterable<string>): string[] {
    const now = new Set(overdue);
    const fresh = [...now].filter((n) => !this.episodes.has(n));
    for (const n of [...this.episodes]) if (!now.has(n)) this.episodes.delete(n);
    for (const n of fresh) this.episodes.add(n);
    return fresh;
  }

  has(job: string): boolean {
    return this.episodes.has(job);
  }
}

/** The interval of the overdue watch: a minute is fine-grained enough for a limit of hours or days. */
export const OVERDUE_CHECK_MS = 60_000;

export interface OverdueWatchOptions {
  readonly clock: Clock;
  /** The jobs in force (read at every check, so a config reload is seen). */
  jobs(): readonly JobConfig[];
  /** End of the job's last successful run (the backupdb), or null. */
  lastCompletedAt(job: string): Promise<Date | null>;
  /** When the node began watching: a job that never completed counts from here. */
  readonly since: Date;
  /** Called once per overdue episode; errors are passed to onError. `signal` aborts on stop(). */
  onOverdue(job: JobConfig, info: { lastCompletedAt: Date | null; overdueSince: Date; signal: AbortSignal }): Promise<void>;
  onError?(err: unknown): void;
  readonly intervalMs?: number;
}

/**
 * Checks every job now and then every `intervalMs` (default OVERDUE_CHECK_MS) on the
 * injected clock and calls `onOverdue` when a job enters an overdue episode (once; again
 * only after a successful run ended the episode). `stop()` ends the loop and waits for it.
 */
export function startOverdueWatch(opts: OverdueWatchOptions): PeriodicCheck {
  const tracker = new OverdueTracker();
  const stopper = new AbortController();
  const check = async () => {
    const now = opts.clock.now();
    const overdue: { job: JobConfig; last: Date | null; at: Date }[] = [];
    for (const job of opts.jobs()) {
      try {
        const last = await opts.lastCompletedAt(job.name);
        const at = overdueSince(job, last, now, opts.since);
        if (at) overdue.push({ job, last, at });
      } catch (err) {
        opts.onError?.(err);
      }
    }
    const fresh = new Set(tracker.update(overdue.map((o) => o.job.name)));
    for (const o of overdue) {
      if (!fresh.has(o.job.name)) continue;
      try {
        await opts.onOverdue(o.job, { lastCompletedAt: o.last, overdueSince: o.at, signal: stopper.signal });
      } catch (err) {
        opts.onError?.(err);
      }
    }
  };
  return startPeriodicCheck(opts.clock, opts.intervalMs ?? OVERDUE_CHECK_MS, check, stopper);
}

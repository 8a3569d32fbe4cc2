/**
 * When is a job due? Pure functions of (job spec, last successful completion, now), after
 * kopia's `NextSnapshotTime(previous, now)`. The last completion comes from the backupdb
 * (a failed or cancelled run never counts); `now` comes from the injected clock.
 *
 * Rules:
 * - `frequency`: due at lastCompletedAt + frequency, or now when it never completed. An
 *   overdue job (node off, laptop asleep) is due now: missed runs collapse into one.
 * - `schedule` (cron, croner): the first cron time after the last completion (after now when
 *   it never completed), computed with `new Cron(expr, { timezone, paused: true }).nextRun()`
 *   (never croner's own timers, which read the wall clock). Overdue = due now, once.
 * - Windows: a due time outside the allowed windows moves to the next window opening.
 * - Anti-drift (frequency with windows): a due time no later than `ANTI_DRIFT_FRACTION`
 *   of the frequency after the latest window opening before it counts as due at that
 *   opening (then moved to now / the next window as usual). A weekly job that ran
 *   22:00-23:10 is next due at 23:10 a week later; without this it would start at 23:10,
 *   then 00:20, … (the drift kopia and restic users report). The opening is looked up
 *   before the due time, not in the window containing it, so a run that ended at 07:50 in
 *   winter (due 08:50 summer time, after the window) still starts at 22:00. The opening
 *   must come after the last completion, so this rule never runs a job twice in one
 *   window; it starts early by at most 10 % of its period. Without windows there is no
 *   opening to hold on to: use a cron `schedule` for fixed times.
 */
import { Cron } from 'croner';
import type { JobConfig } from '../node/config/types.js';
import { durationText } from './eta.js';
import { localTimeText, nextAllowedAt, nextWindowOpen, previousWindowOpen, windowText } from './windows.js';

/** Share of the frequency by which a run may start early to stay on its window's opening. */
export const ANTI_DRIFT_FRACTION = 0.1;

/** The fields of a job that scheduling reads. */
export type SchedulableJob = Pick<JobConfig, 'name' | 'frequencyMs' | 'schedule' | 'allowedTimes' | 'timezone'>;

export interface NextRun {
  /** The instant the job should start (>= now; equal to now when it is due right away). */
  readonly at: Date;
  /** The due time before windows and anti-drift (may be in the past when overdue). */
  readonly dueAt: Date;
  /** Plain words: why `at` (`every 7d since the last completion Mon 23:10; …`). */
  readonly reason: string;
  /** True when `at` was moved from the due time to a window opening because it was outside. */
  readonly waitsForWindow: boolean;
}

const crons = new Map<string, Cron>();

/** A paused croner instance for computing times only (cached per expression and zone). */
export function cronFor(expr: string, timezone: string): Cron {
  const key = `${timezone}\n${expr}`;
  let c = crons.get(key);
  if (!c) {
    c = new Cron(expr, { timezone, paused: true });
    crons.set(key, c);
  }
  return c;
}

/**
 * The raw due time (before windows and anti-drift): last completion + frequency, now when
 * never completed, or the next cron time after the last completion (after now when none).
 * Throws RangeError for a job with neither frequency nor schedule, or a cron that never fires.
 */
export function dueAt(job: SchedulableJob, lastCompletedAt: Date | null, now: Date): Date {
  if (job.schedule) {
    const next = cronFor(job.schedule, job.timezone).nextRun(lastCompletedAt ?? now);
    if (!next) throw new RangeError(`job ${job.name}: schedule "${job.schedule}" never fires again`);
    return next;
  }
  if (job.frequencyMs != null && job.frequencyMs > 0) {
    return lastCompletedAt ? new Date(lastCompletedAt.getTime() + job.frequencyMs) : now;
  }
  throw new RangeError(`job ${job.name}: neither frequency nor schedule is set`);
}

/**
 * The next start of `job` given its last successful completion and the current time: the
 * due time (see the module rules), moved to now when overdue, to the window opening when
 * the anti-drift rule applies, and to the next window opening when outside every window.
 * Always returns `at >= now`. Throws RangeError when the windows never open, the job has
 * neither frequency nor schedule, or its cron never fires (all config errors).
 */
export function nextRunAt(job: SchedulableJob, lastCompletedAt: Date | null, now: Date): NextRun {
  const tz = job.timezone;
  const windows = job.allowedTimes;
  const due = dueAt(job, lastCompletedAt, now);
  let reason: string;
  if (job.schedule) {
    reason = `schedule "${job.schedule}"`;
    reason += lastCompletedAt ? `, first time after the last completion ${fmt(tz, lastCompletedAt, now)}` : ', never completed';
  } else if (!lastCompletedAt) {
    reason = 'never completed: first run';
  } else {
    reason = `every ${durationText(job.frequencyMs!)} since the last completion ${fmt(tz, lastCompletedAt, now)}`;
  }
  let wanted = due;
  if (due.getTime() < now.getTime()) {
    if (lastCompletedAt || job.schedule) reason += `; overdue since ${fmt(tz, due, now)}: one catch-up run`;
    wanted = now;
  } else if (due.getTime() > now.getTime()) {
    reason += `; due ${fmt(tz, due, now)}`;
  }

  // Anti-drift: due shortly after a window opened (after the last completion) → the opening.
  if (!job.schedule && lastCompletedAt && job.frequencyMs) {
    const opening = previousWindowOpen(windows, tz, due);
    if (
      opening &&
      opening.getTime() > lastCompletedAt.getTime() &&
      opening.getTime() < due.getTime() &&
      due.getTime() - opening.getTime() <= job.frequencyMs * ANTI_DRIFT_FRACTION
    ) {
      reason += `; counted from the window opening ${fmt(tz, opening, now)} to keep its rhythm`;
      wanted = opening.getTime() > now.getTime() ? opening : now;
    }
  }

  const at = nextAllowedAt(windows, tz, wanted);
  if (!at) throw new RangeError(`job ${job.name}: allowed_times "${windows.spec}" never opens`);
  const moved = at.getTime() !== wanted.getTime();
  if (moved) {
    const next = nextWindowOpen(windows, tz, wanted);
    reason += `; outside allowed times, waits for the next window ${next ? windowText(tz, next) : ''} at ${fmt(tz, at, now)}`;
  }
  return { at, dueAt: due, reason, waitsForWindow: moved };
}

/** True when `job` should start now (due and inside an allowed window). */
export function isDue(job: SchedulableJob, lastCompletedAt: Date | null, now: Date): boolean {
  return nextRunAt(job, lastCompletedAt, now).at.getTime() <= now.getTime();
}

/** `Thu 22:00` within six days of now, `Thu 12 Mar 22:00` further away. */
function fmt(tz: string, at: Date, now: Date): string {
  const d = Math.abs(at.getTime() - now.getTime());
  return localTimeText(tz, at, d < 6 * 86_400_000 ? { weekday: true } : { date: true });
}

/**
 * Window-aware estimate of when a run finishes: the work left at the achieved rate, spent
 * only inside the allowed windows ahead. Pure: time comes in as `now`.
 */
import type { WindowSet } from '../node/config/types.js';
import { localTimeText, windowsBetween } from './windows.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
/** Estimates further out than this are reported as "more than …" without a date. */
export const ETA_HORIZON_MS = 90 * DAY_MS;

export interface EtaInput {
  /** Bytes still to read/upload in this run. */
  readonly bytesLeft: number;
  /** Achieved rate while running (bytes per second, averaged; not counting suspended time). */
  readonly bytesPerSecond: number;
  readonly now: Date;
  readonly windows: WindowSet;
  readonly timezone: string;
  /** The run is not bound to windows (finish_job mode after it started, run-now --ignore-window). */
  readonly ignoreWindows?: boolean;
}

export interface Eta {
  /** When the run should be done, or null when unknown (no rate yet) or beyond the horizon. */
  readonly doneAt: Date | null;
  /** Plain words: `about 20 minutes`, `about 3 more nights (done around Thu 04:10)`. */
  readonly text: string;
  /** Windows (beyond the current one) the rest needs; 0 when it fits in the current/continuous one. */
  readonly windowsNeeded: number;
}

/**
 * Estimates the end of a run. When the rest fits in the window that is open now (or the
 * job is not bound to windows) the text is a duration (`about 20 minutes`); when it needs
 * later windows it counts them (`about 3 more nights (done around Thu 04:10)`, "windows"
 * instead of "nights" when the windows are not night-time ones).
 */
export function estimateCompletion(input: EtaInput): Eta {
  const { bytesLeft, bytesPerSecond, now, windows, timezone } = input;
  if (bytesLeft <= 0) return { doneAt: now, text: 'done', windowsNeeded: 0 };
  if (!(bytesPerSecond > 0)) return { doneAt: null, text: 'unknown until some data has been transferred', windowsNeeded: 0 };
  let workMs = (bytesLeft / bytesPerSecond) * 1000;
  const horizon = new Date(now.getTime() + ETA_HORIZON_MS);
  const spans =
    input.ignoreWindows || windows.windows.length === 0
      ? [{ opensAt: now, closesAt: horizon }]
      : windowsBetween(windows, timezone, now, horizon);
  let used = 0; // spans started after the current moment
  for (const span of spans) {
    const startsNow = span.opensAt.getTime() <= now.getTime();
    if (!startsNow) used++;
    const len = span.closesAt.getTime() - span.opensAt.getTime();
    if (workMs <= len) {
      const doneAt = new Date(span.opensAt.getTime() + workMs);
      const ahead = used === 0 ? `about ${durationText(doneAt.getTime() - now.getTime(), true)}` : `about ${used} more ${unitName(windows, used)}`;
      const when = used === 0 && doneAt.getTime() - now.getTime() < 12 * HOUR_MS ? '' : ` (done around ${doneText(timezone, now, doneAt)})`;
      return { doneAt, text: ahead + when, windowsNeeded: used };
    }
    workMs -= len;
  }
  return { doneAt: null, text: `more than ${Math.round(ETA_HORIZON_MS / DAY_MS)} days at the current rate`, windowsNeeded: used };
}

/** "nights" when every window is a night-time one (crosses midnight, or lies within 18:00-09:00). */
function unitName(set: WindowSet, n: number): string {
  const night = set.windows.every(
    (w) => w.startMinute > w.endMinute || w.startMinute >= 18 * 60 || w.endMinute <= 9 * 60,
  );
  const unit = night ? 'night' : 'window';
  return n === 1 ? unit : `${unit}s`;
}

function doneText(tz: string, now: Date, at: Date): string {
  // Within the coming week the weekday is unambiguous; further out add the date.
  return localTimeText(tz, at, at.getTime() - now.getTime() < 6 * DAY_MS ? { weekday: true } : { date: true });
}

/**
 * A duration in plain words. Rounded (`rounded = true`): `20 minutes`, `3 hours`, `2 days`
 * (one unit, for estimates); exact: `7d`, `1d 12h`, `36m`, `45s`.
 */
export function durationText(ms: number, rounded = false): string {
  if (rounded) {
    const plural = (n: number, u: string) => `${n} ${u}${n === 1 ? '' : 's'}`;
    if (ms < 90_000) return ms < 60_000 ? 'less than a minute' : '1 minute';
    if (ms < 90 * MINUTE_MS) return plural(Math.round(ms / MINUTE_MS), 'minute');
    if (ms < 36 * HOUR_MS) return plural(Math.round(ms / HOUR_MS), 'hour');
    return plural(Math.round(ms / DAY_MS), 'day');
  }
  if (ms < MINUTE_MS) return `${Math.round(ms / 1000)}s`;
  const parts: string[] = [];
  let rest = Math.round(ms / MINUTE_MS);
  const d = Math.floor(rest / 1440);
  rest -= d * 1440;
  const h = Math.floor(rest / 60);
  const m = rest - h * 60;
  if (d) parts.push(`${d}d`);
  if (h) parts.push(`${h}h`);
  if (m) parts.push(`${m}m`);
  return parts.join(' ');
}

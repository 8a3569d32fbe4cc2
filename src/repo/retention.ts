import type { RetentionPolicy } from '../node/config/types.js';

/** What retention needs of a snapshot. */
export interface RetentionSnapshot {
  readonly id: string;
  /** ISO 8601 time. */
  readonly time: string;
  readonly tags?: readonly string[];
}

/** The verdict on one snapshot: keep (with every rule that keeps it) or forget (with why). */
export interface RetentionDecision<S extends RetentionSnapshot = RetentionSnapshot> {
  readonly snapshot: S;
  readonly keep: boolean;
  /** Why: rules that keep it (`last 3`, `daily 7 (2026-11-20)`, `newest`, …) or why it goes. */
  readonly reasons: string[];
}

/** Tag a refused run's snapshot would carry; such snapshots never count for any rule. */
export const REFUSED_TAG = 'refused';

type Bucket = 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';
const BUCKETS: readonly Bucket[] = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'];

/**
 * Applies a retention policy to the snapshots of one group (one job on one host), with
 * restic's semantics, newest first:
 * - `last N` keeps the N newest snapshots;
 * - `hourly/daily/weekly/monthly/yearly N` keep the newest snapshot of each of the N
 *   newest hours/days/ISO weeks/months/years that have a snapshot, the calendar read in
 *   `timeZone` (an IANA name);
 * - `within D` keeps every snapshot no older than D before the newest snapshot (measured
 *   against snapshot times, not the clock, so a node that was off does not lose all);
 * - the newest snapshot is always kept.
 * Snapshots dated after `now` are kept (reason `dated in the future`) but take no slot of
 * any rule and are not "the newest", so a wrong clock cannot push real snapshots out.
 * Snapshots tagged `refused` take no slot either and are forgotten.
 * Pure: the result is in the input's order; the input is not changed.
 */
export function applyRetention<S extends RetentionSnapshot>(
  snapshots: readonly S[],
  policy: RetentionPolicy,
  now: Date,
  timeZone = 'UTC',
): RetentionDecision<S>[] {
  const nowMs = now.getTime();
  const decisions = new Map<S, { keep: boolean; reasons: string[] }>();
  const real: S[] = [];
  for (const s of snapshots) {
    const t = Date.parse(s.time);
    if (!Number.isFinite(t)) {
      decisions.set(s, { keep: true, reasons: ['time unreadable, kept'] });
    } else if (t > nowMs) {
      decisions.set(s, { keep: true, reasons: ['dated in the future (ignored by every rule)'] });
    } else if (s.tags?.includes(REFUSED_TAG)) {
      decisions.set(s, { keep: false, reasons: ['refused run (never counts)'] });
    } else {
      real.push(s);
    }
  }
  // Newest first; ties by id for a stable verdict.
  real.sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const fmt = bucketFormatter(timeZone);
  const left: Record<Bucket | 'last', number> = {
    last: policy.last ?? 0,
    hourly: policy.hourly ?? 0,
    daily: policy.daily ?? 0,
    weekly: policy.weekly ?? 0,
    monthly: policy.monthly ?? 0,
    yearly: policy.yearly ?? 0,
  };
  const lastKey: Partial<Record<Bucket, string>> = {};
  const newestMs = real.length > 0 ? Date.parse(real[0]!.time) : 0;
  real.forEach((s, i) => {
    const reasons: string[] = [];
    const t = Date.parse(s.time);
    if (i === 0) reasons.push('newest');
    if (left.last > 0) {
      left.last--;
      reasons.push(`last ${policy.last}`);
    }
    const keys = bucketKeys(fmt, new Date(t));
    for (const b of BUCKETS) {
      if (left[b] > 0 && keys[b] !== lastKey[b]) {
        lastKey[b] = keys[b];
        left[b]--;
        reasons.push(`${b} ${policy[b]} (${keys[b]})`);
      }
    }
    if (policy.withinMs !== undefined && newestMs - t <= policy.withinMs) reasons.push(`within ${formatSpan(policy.withinMs)}`);
    decisions.set(s, reasons.length > 0 ? { keep: true, reasons } : { keep: false, reasons: ['no rule keeps it'] });
  });
  return snapshots.map((s) => ({ snapshot: s, ...decisions.get(s)! }));
}

/**
 * Splits snapshots into retention groups (job and host), each in the input's order.
 * The key is `job\u0000host`.
 */
export function groupForRetention<S extends { job: string; host: string }>(snapshots: readonly S[]): Map<string, S[]> {
  const groups = new Map<string, S[]>();
  for (const s of snapshots) {
    const key = `${s.job}\u0000${s.host}`;
    const g = groups.get(key);
    if (g) g.push(s);
    else groups.set(key, [s]);
  }
  return groups;
}

function bucketFormatter(timeZone: string): Intl.DateTimeFormat {
  return new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
  });
}

function bucketKeys(fmt: Intl.DateTimeFormat, at: Date): Record<Bucket, string> {
  const parts: Record<string, string> = {};
  for (const p of fmt.formatToParts(at)) parts[p.type] = p.value;
  const y = Number(parts.year);
  const m = Number(parts.month);
  const d = Number(parts.day);
  const pad = (n: number) => String(n).padStart(2, '0');
  const day = `${y}-${pad(m)}-${pad(d)}`;
  return {
    hourly: `${day} ${parts.hour}h`,
    daily: day,
    weekly: isoWeek(y, m, d),
    monthly: `${y}-${pad(m)}`,
    yearly: String(y),
  };
}

/** ISO 8601 week of a calendar date, `2026-W47`. */
function isoWeek(y: number, m: number, d: number): string {
  const date = new Date(Date.UTC(y, m - 1, d));
  const dow = (date.getUTCDay() + 6) % 7; // Monday = 0
  date.setUTCDate(date.getUTCDate() - dow + 3); // the Thursday of this week decides the year
  const weekYear = date.getUTCFullYear();
  const week = 1 + Math.floor((date.getTime() - Date.UTC(weekYear, 0, 1)) / (7 * 86_400_000));
  return `${weekYear}-W${String(week).padStart(2, '0')}`;
}

function formatSpan(ms: number): string {
  const units: [number, string][] = [[86_400_000, 'd'], [3_600_000, 'h'], [60_000, 'm'], [1000, 's']];
  for (const [u, n] of units) if (ms % u === 0) return `${ms / u}${n}`;
  return `${ms}ms`;
}

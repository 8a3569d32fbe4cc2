/**
 * Time-window math for `allowed_times`: pure functions of (window set, IANA time zone,
 * instant), computed with `Intl.DateTimeFormat` only (no dependency, no wall clock).
 *
 * Rules (the contract every caller and test relies on):
 * - A window is `[opensAt, closesAt)`: open at its opening instant, closed at its closing one.
 * - Days of week name the local day the window OPENS: `fri 2200-0600` runs Friday 22:00 to
 *   Saturday 06:00. A window with no days listed opens every day.
 * - `startMinute === endMinute` (`0000-0000`) never opens (the config parser rejects it);
 *   `0000-2400` is a whole day.
 * - Windows that touch or overlap are merged into one continuous window, so
 *   `2200-2400,0000-0800` is one window 22:00-08:00 and a run is never suspended at midnight.
 * - An empty set is always open. Then (and when the windows cover the whole week without
 *   a gap) `currentWindow` returns `{ openedAt: null, closesAt: null }` (null = unbounded)
 *   and `nextWindowOpen` returns `{ opensAt: at, closesAt: null }`.
 *
 * Daylight-saving rules:
 * - Opening: a wall time that does not exist (spring forward; 02:30 in Europe/Berlin on the
 *   last Sunday of March) opens at the next existing instant, the end of the gap (03:00
 *   CEST). A wall time that occurs twice (fall back) opens at its FIRST occurrence.
 * - Closing: the window closes at its end wall time on the day it is due (the opening day,
 *   or the next day when it runs across midnight). A missing end time closes at the end of
 *   the gap. A repeated end time closes at the first occurrence at which the window has been
 *   open at least its nominal wall-clock length (end − start); so `2200-0200` on the
 *   fall-back night is open 4 h in Europe/Berlin (02:00 CEST; 02:00 recurs but the window
 *   has already been open 4 h) and 5 h in America/New_York (where 01:00-02:00 repeats and
 *   02:00 itself is unambiguous: 02:00 EST). On the spring-forward night `0130-0330` is
 *   open 1 h in both zones (01:30 standard time to 03:30 summer time).
 */
import type { TimeWindow, WindowSet } from '../node/config/types.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
const WEEK_MS = 7 * DAY_MS;
/** Windows repeat weekly; if nothing opens within this many days, nothing ever will. */
const LOOKAHEAD_DAYS = 16;

/** One concrete window occurrence (merged), `[opensAt, closesAt)`. */
export interface WindowSpan {
  readonly opensAt: Date;
  readonly closesAt: Date;
}

/** The window an instant is in. `null` ends are unbounded (always-open set). */
export interface CurrentWindow {
  readonly openedAt: Date | null;
  readonly closesAt: Date | null;
}

/** The next window. `closesAt: null` means it never closes (always-open set). */
export interface NextWindow {
  readonly opensAt: Date;
  readonly closesAt: Date | null;
}

// ---------------------------------------------------------------- local time

interface LocalParts {
  year: number;
  month: number; // 1-12
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    // Throws RangeError for an unknown zone, which is what we want (the config checks it first).
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(tz, f);
  }
  return f;
}

function localParts(tz: string, ms: number): LocalParts {
  const out: LocalParts = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  for (const p of formatter(tz).formatToParts(ms)) {
    switch (p.type) {
      case 'year':
        out.year = Number(p.value);
        break;
      case 'month':
        out.month = Number(p.value);
        break;
      case 'day':
        out.day = Number(p.value);
        break;
      case 'hour':
        out.hour = Number(p.value) % 24;
        break;
      case 'minute':
        out.minute = Number(p.value);
        break;
      case 'second':
        out.second = Number(p.value);
        break;
      default:
        break;
    }
  }
  return out;
}

// Messages format the same few instants (last completion, due time, opening) every tick.
const textCache = new Map<string, LocalParts>();
function cachedLocalParts(tz: string, ms: number): LocalParts {
  const key = `${tz}|${ms}`;
  let p = textCache.get(key);
  if (!p) {
    if (textCache.size > 2000) textCache.clear();
    p = localParts(tz, ms);
    textCache.set(key, p);
  }
  return p;
}

/** Local wall time minus UTC at instant `ms`, in milliseconds. */
function offsetAt(tz: string, ms: number): number {
  const whole = Math.floor(ms / 1000) * 1000;
  const p = localParts(tz, whole);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - whole;
}

/**
 * The instants showing local wall time `minuteOfDay` on local date y-m-d (minuteOfDay may
 * be 1440 = next midnight). Returns one instant normally, two (ascending) in a repeated
 * hour, and `[]` plus `gapEnd` (the first instant after the gap) for a skipped wall time.
 */
function resolveLocal(tz: string, y: number, m: number, d: number, minuteOfDay: number): { instants: number[]; gapEnd: number } {
  const wall = Date.UTC(y, m - 1, d, 0, minuteOfDay);
  // The true instant is within ±14 h of `wall`; the offsets on either side cover it.
  const early = offsetAt(tz, wall - 15 * HOUR_MS);
  const late = offsetAt(tz, wall + 15 * HOUR_MS);
  const instants: number[] = [];
  for (const o of early === late ? [early] : [early, late]) {
    const u = wall - o;
    if (offsetAt(tz, u) === o && !instants.includes(u)) instants.push(u);
  }
  instants.sort((a, b) => a - b);
  if (instants.length > 0) return { instants, gapEnd: instants[0]! };
  // Skipped wall time: binary-search the transition between the two candidate instants.
  let lo = wall - Math.max(early, late); // still before the transition
  let hi = wall - Math.min(early, late); // already after it
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (offsetAt(tz, mid) === early) lo = mid;
    else hi = mid;
  }
  return { instants: [], gapEnd: hi };
}

/** Local calendar date (y, m, d) and weekday (0 = Sunday) of instant `at` in `tz`. */
export function localDate(tz: string, at: number): { y: number; m: number; d: number; weekday: number } {
  const p = localParts(tz, at);
  return addDays(p.year, p.month, p.day, 0);
}

/**
 * The instant local date y-m-d begins in `tz` (month and day may overflow: d = 32 is the
 * next month); a midnight skipped by DST begins at the end of the gap.
 */
export function localMidnight(tz: string, y: number, m: number, d: number): number {
  const { instants, gapEnd } = resolveLocal(tz, y, m, d, 0);
  return instants[0] ?? gapEnd;
}

/** Local calendar date (y, m, d) shifted by `n` days, and its weekday (0 = Sunday). */
function addDays(y: number, m: number, d: number, n: number): { y: number; m: number; d: number; weekday: number } {
  const t = new Date(Date.UTC(y, m - 1, d + n));
  return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate(), weekday: t.getUTCDay() };
}

// ---------------------------------------------------------------- occurrences

interface Span {
  open: number;
  close: number;
}

/** Occurrences of one window opening on local date y-m-d, per the DST rules above. */
function occurrence(tz: string, w: TimeWindow, y: number, m: number, d: number): Span | null {
  if (w.startMinute === w.endMinute) return null;
  const nominal = (w.endMinute > w.startMinute ? w.endMinute - w.startMinute : w.endMinute + 1440 - w.startMinute) * MINUTE_MS;
  const start = resolveLocal(tz, y, m, d, w.startMinute);
  const open = start.instants[0] ?? start.gapEnd;
  const endDay = w.endMinute > w.startMinute ? { y, m, d } : addDays(y, m, d, 1);
  const end = resolveLocal(tz, endDay.y, endDay.m, endDay.d, w.endMinute);
  let close: number;
  if (end.instants.length === 0) close = end.gapEnd;
  else close = end.instants.find((c) => c - open >= nominal) ?? end.instants[end.instants.length - 1]!;
  return close > open ? { open, close } : null;
}

// Occurrences per (set, zone, local date) are cached: the scheduler asks every 30 s.
const cache = new WeakMap<WindowSet, Map<string, Span[]>>();

function occurrencesOn(set: WindowSet, tz: string, y: number, m: number, d: number, weekday: number): Span[] {
  let perSet = cache.get(set);
  if (!perSet) cache.set(set, (perSet = new Map()));
  const key = `${tz}|${y}-${m}-${d}`;
  let spans = perSet.get(key);
  if (!spans) {
    spans = [];
    for (const w of set.windows) {
      if (w.days.length > 0 && !w.days.includes(weekday as never)) continue;
      const s = occurrence(tz, w, y, m, d);
      if (s) spans.push(s);
    }
    if (perSet.size > 5000) perSet.clear();
    perSet.set(key, spans);
  }
  return spans;
}

/**
 * Merged spans of the windows opening on every local date that can matter for
 * `[fromMs, toMs]`. The UTC date is within a day of the local one, so enumerating UTC dates
 * with a margin avoids formatting `fromMs` at all (this runs every scheduler tick).
 */
function mergedSpans(set: WindowSet, tz: string, fromMs: number, toMs: number): Span[] {
  const first = Math.floor(fromMs / DAY_MS);
  const last = Math.floor(toMs / DAY_MS);
  const all: Span[] = [];
  for (let day = first - 3; day <= last + 2; day++) {
    const dt = addDays(1970, 1, 1, day);
    all.push(...occurrencesOn(set, tz, dt.y, dt.m, dt.d, dt.weekday));
  }
  all.sort((x, y) => x.open - y.open);
  const merged: Span[] = [];
  for (const s of all) {
    const last = merged[merged.length - 1];
    if (last && s.open <= last.close) last.close = Math.max(last.close, s.close);
    else merged.push({ ...s });
  }
  return merged;
}

// ---------------------------------------------------------------- public API

/** True when the set has no windows or its windows cover the whole week without a gap. */
export function isAlwaysOpen(set: WindowSet, tz: string): boolean {
  if (set.windows.length === 0) return true;
  let perSet = alwaysOpenCache.get(set);
  if (!perSet) alwaysOpenCache.set(set, (perSet = new Map()));
  let result = perSet.get(tz);
  if (result === undefined) {
    // Any fixed instant will do: coverage repeats weekly.
    const probe = Date.UTC(2001, 0, 1, 12);
    const spans = mergedSpans(set, tz, probe - 8 * DAY_MS, probe + 8 * DAY_MS);
    result = spans.some((s) => s.open <= probe - WEEK_MS && s.close >= probe + WEEK_MS);
    perSet.set(tz, result);
  }
  return result;
}
const alwaysOpenCache = new WeakMap<WindowSet, Map<string, boolean>>();

/** Whether instant `at` is inside an allowed window (empty set: always true). */
export function isInWindow(set: WindowSet, tz: string, at: Date): boolean {
  if (set.windows.length === 0) return true;
  const t = at.getTime();
  return mergedSpans(set, tz, t, t).some((s) => s.open <= t && t < s.close);
}

/**
 * The (merged) window containing `at`, or null when `at` is outside every window.
 * `openedAt`/`closesAt` are null when unbounded (always-open set or full-week coverage).
 */
export function currentWindow(set: WindowSet, tz: string, at: Date): CurrentWindow | null {
  if (set.windows.length === 0) return { openedAt: null, closesAt: null };
  const t = at.getTime();
  const s = mergedSpans(set, tz, t - 8 * DAY_MS, t + 8 * DAY_MS).find((x) => x.open <= t && t < x.close);
  if (!s) return null;
  // Weekly patterns: a span longer than a week on either side means it never ends.
  return {
    openedAt: t - s.open > WEEK_MS ? null : new Date(s.open),
    closesAt: s.close - t > WEEK_MS ? null : new Date(s.close),
  };
}

/**
 * The first window opening at or after `at` (a window containing `at` that opened earlier
 * does not count: see `currentWindow`). Null only when the set never opens. An always-open
 * set returns `{ opensAt: at, closesAt: null }`.
 */
export function nextWindowOpen(set: WindowSet, tz: string, at: Date): NextWindow | null {
  if (isAlwaysOpen(set, tz)) return { opensAt: at, closesAt: null };
  const t = at.getTime();
  const s = mergedSpans(set, tz, t, t + LOOKAHEAD_DAYS * DAY_MS).find((x) => x.open >= t);
  return s ? { opensAt: new Date(s.open), closesAt: new Date(s.close) } : null;
}

/**
 * The opening of the latest (merged) window that opened at or before `at`, looking back up
 * to a week; null for an always-open set or when none opened in that week.
 */
export function previousWindowOpen(set: WindowSet, tz: string, at: Date): Date | null {
  if (isAlwaysOpen(set, tz)) return null;
  const t = at.getTime();
  const spans = mergedSpans(set, tz, t - 8 * DAY_MS, t).filter((x) => x.open <= t && t - x.open <= WEEK_MS);
  const last = spans[spans.length - 1];
  return last ? new Date(last.open) : null;
}

/**
 * The earliest instant at or after `at` inside a window: `at` itself when inside one, else
 * the next opening. Null only when the set never opens.
 */
export function nextAllowedAt(set: WindowSet, tz: string, at: Date): Date | null {
  if (isInWindow(set, tz, at)) return at;
  return nextWindowOpen(set, tz, at)?.opensAt ?? null;
}

/**
 * The allowed spans intersecting `[from, to)`, merged, ascending and clipped to the range
 * (a window already open at `from` appears as starting at `from`). An always-open set gives
 * one span `[from, to)`. Used for ETAs.
 */
export function windowsBetween(set: WindowSet, tz: string, from: Date, to: Date): WindowSpan[] {
  const f = from.getTime();
  const t = to.getTime();
  if (t <= f) return [];
  if (set.windows.length === 0) return [{ opensAt: new Date(f), closesAt: new Date(t) }];
  return mergedSpans(set, tz, f, t)
    .filter((s) => s.close > f && s.open < t)
    .map((s) => ({ opensAt: new Date(Math.max(s.open, f)), closesAt: new Date(Math.min(s.close, t)) }));
}

const WEEKDAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;

/**
 * Local time of `at` in `tz` for messages: `22:00`, or with `weekday` `Thu 04:10`, or with
 * `date` `Thu 12 Mar 04:10`.
 */
export function localTimeText(tz: string, at: Date, opts: { weekday?: boolean; date?: boolean } = {}): string {
  const p = cachedLocalParts(tz, at.getTime());
  const hm = `${String(p.hour).padStart(2, '0')}:${String(p.minute).padStart(2, '0')}`;
  if (!opts.weekday && !opts.date) return hm;
  const wd = WEEKDAY_NAMES[new Date(Date.UTC(p.year, p.month - 1, p.day)).getUTCDay()]!;
  if (!opts.date) return `${wd} ${hm}`;
  const mon = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][p.month - 1]!;
  return `${wd} ${p.day} ${mon} ${hm}`;
}

/** `22:00-08:00` for a window span (or `always` when unbounded), in local time of `tz`. */
export function windowText(tz: string, w: { opensAt?: Date | null; openedAt?: Date | null; closesAt: Date | null }): string {
  const open = w.opensAt ?? w.openedAt ?? null;
  if (!open && !w.closesAt) return 'always';
  const a = open ? localTimeText(tz, open) : '…';
  const b = w.closesAt ? localTimeText(tz, w.closesAt) : '…';
  return `${a}-${b}`;
}

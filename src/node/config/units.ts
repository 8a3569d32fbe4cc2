/**
 * Human units for node.cfg: durations, sizes, rates, weekday lists, time windows,
 * bandwidth timetables, byte budgets and retention policies, and their formatters.
 *
 * Every `parse*` function is pure, accepts surrounding whitespace, and either returns a
 * value or throws a `UnitError` whose message says what was expected (or, for a value of
 * the right shape but out of range, exactly what is wrong: `invalid hour "25" in
 * "2500-0800", must be between 0 and 24`). The config validator puts that message into
 * the `expected` part of a ConfigProblem, so it reads after "expected …".
 */
import type {
  Budget,
  RateEntry,
  RateTimetable,
  RetentionPolicy,
  TimeWindow,
  Weekday,
  WindowSet,
} from './types.js';

/** A value that does not fit its unit; `message` says what is expected. */
export class UnitError extends Error {
  override readonly name = 'UnitError';
}

// ---------------------------------------------------------------- durations

const SECOND_MS = 1000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
const WEEK_MS = 7 * DAY_MS;
/** A month is 30 days and a year 365 days: durations are intervals, not calendar dates. */
const MONTH_MS = 30 * DAY_MS;
const YEAR_MS = 365 * DAY_MS;

const DURATION_UNITS: ReadonlyMap<string, number> = new Map([
  ...['s', 'sec', 'secs', 'second', 'seconds'].map((u) => [u, SECOND_MS] as const),
  ...['m', 'min', 'mins', 'minute', 'minutes'].map((u) => [u, MINUTE_MS] as const),
  ...['h', 'hr', 'hrs', 'hour', 'hours'].map((u) => [u, HOUR_MS] as const),
  ...['d', 'day', 'days'].map((u) => [u, DAY_MS] as const),
  ...['w', 'week', 'weeks'].map((u) => [u, WEEK_MS] as const),
  ...['mo', 'month', 'months'].map((u) => [u, MONTH_MS] as const),
  ...['y', 'year', 'years'].map((u) => [u, YEAR_MS] as const),
]);

export const DURATION_EXPECTED = 'a duration such as 30s, 10m, 36h, 2d, 1week, 1month or 1h30m';

/**
 * Parses `30s`, `10m`, `36h`, `2d`, `1w`/`1week`/`2weeks`, `1month` (30 days),
 * `1y` (365 days), decimals (`1.5h`) and sums (`1h30m`, `1d 12h`) into milliseconds
 * (rounded to whole ms). A bare number is refused: a unit is always required. `0s` is
 * allowed here; keys that need a positive duration check that themselves.
 */
export function parseDuration(s: string): number {
  const text = s.trim();
  const part = /(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*/y;
  let total = 0;
  let pos = 0;
  if (text === '') throw new UnitError(DURATION_EXPECTED);
  while (pos < text.length) {
    part.lastIndex = pos;
    const m = part.exec(text);
    if (!m) throw new UnitError(DURATION_EXPECTED);
    const unit = DURATION_UNITS.get(m[2]!.toLowerCase());
    if (unit === undefined) {
      throw new UnitError(`${DURATION_EXPECTED} (unknown unit "${m[2]}")`);
    }
    total += Number(m[1]) * unit;
    pos = part.lastIndex;
  }
  return Math.round(total);
}

/** Like parseDuration, but the result must be more than zero. */
export function parsePositiveDuration(s: string): number {
  const ms = parseDuration(s);
  if (ms <= 0) throw new UnitError(`${DURATION_EXPECTED}, more than zero`);
  return ms;
}

// ---------------------------------------------------------------- sizes and rates

const KIB = 1024;
const SIZE_UNITS: ReadonlyMap<string, number> = new Map([
  ['b', 1],
  ['kib', KIB],
  ['mib', KIB ** 2],
  ['gib', KIB ** 3],
  ['tib', KIB ** 4],
  ['kb', 1e3],
  ['mb', 1e6],
  ['gb', 1e9],
  ['tb', 1e12],
]);

/** Bits per second units are decimal, as network speeds are quoted. */
const BIT_UNITS: ReadonlyMap<string, number> = new Map([
  ['bit', 1 / 8],
  ['kbit', 1e3 / 8],
  ['mbit', 1e6 / 8],
  ['gbit', 1e9 / 8],
  ['kibit', KIB / 8],
  ['mibit', KIB ** 2 / 8],
  ['gibit', KIB ** 3 / 8],
]);

export const SIZE_EXPECTED = 'a size such as 512B, 4KiB, 256MiB, 1GiB, 2TiB, 500MB or a plain number of bytes';
export const RATE_EXPECTED = 'a rate such as 512KiB/s, 1MB/s, 8Mbit/s, or off for no limit';

/**
 * A unit written with a lowercase `b` after a prefix (`Mb`, `kb`) means bits to network
 * people and bytes to disk people; refuse it instead of guessing.
 */
function ambiguousBitUnit(unit: string): boolean {
  return /^[kmgt]i?b$/i.test(unit) && unit.endsWith('b');
}

/** `mb` → `MB`, `kib` → `KiB`: the byte unit someone writing `unit` probably meant. */
function byteUnitFor(unit: string): string {
  return unit[0]!.toUpperCase() + (unit.length === 3 ? 'i' : '') + 'B';
}

function splitNumberUnit(text: string): { value: number; unit: string } | null {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text);
  if (!m) return null;
  return { value: Number(m[1]), unit: m[2]! };
}

/**
 * Parses a size into whole bytes: `512B`, `4KiB` … `TiB` (powers of 1024), `KB` … `TB`
 * (powers of 1000), decimals (`1.5GiB`), or a plain number of bytes. Units are
 * case-insensitive except that a lowercase final `b` after a prefix (`Mb`) is refused
 * as ambiguous (bits or bytes?).
 */
export function parseSize(s: string): number {
  const text = s.trim();
  const parts = splitNumberUnit(text);
  if (!parts) throw new UnitError(SIZE_EXPECTED);
  if (parts.unit === '') return Math.round(parts.value);
  if (ambiguousBitUnit(parts.unit)) {
    throw new UnitError(`${SIZE_EXPECTED} ("${parts.unit}" is ambiguous: write ${byteUnitFor(parts.unit)} for bytes)`);
  }
  const factor = SIZE_UNITS.get(parts.unit.toLowerCase());
  if (factor === undefined) throw new UnitError(`${SIZE_EXPECTED} (unknown unit "${parts.unit}")`);
  return Math.round(parts.value * factor);
}

/**
 * Parses a transfer rate into bytes per second: `512KiB/s`, `1MB/s`, `8Mbit/s` (bits,
 * decimal), or `off` (also `unlimited`, `none`) which returns null, meaning no limit.
 * The `/s` is required, and a rate of zero is refused (it would never send anything).
 */
export function parseRate(s: string): number | null {
  const text = s.trim();
  if (/^(off|unlimited|none)$/i.test(text)) return null;
  const m = /^(.*?)\s*\/\s*(s|sec)$/i.exec(text);
  const parts = m ? splitNumberUnit(m[1]!) : null;
  if (!parts || parts.unit === '') throw new UnitError(RATE_EXPECTED);
  const unit = parts.unit;
  let factor = BIT_UNITS.get(unit.toLowerCase());
  if (factor === undefined) {
    if (ambiguousBitUnit(unit)) {
      throw new UnitError(`${RATE_EXPECTED} ("${unit}/s" is ambiguous: write ${byteUnitFor(unit)}/s for bytes or ${unit.slice(0, -1)}bit/s for bits)`);
    }
    factor = SIZE_UNITS.get(unit.toLowerCase());
  }
  if (factor === undefined) throw new UnitError(`${RATE_EXPECTED} (unknown unit "${unit}")`);
  const bytesPerSecond = Math.round(parts.value * factor);
  if (bytesPerSecond <= 0) throw new UnitError(`${RATE_EXPECTED}; a limit must be more than 0 (write off for no limit)`);
  return bytesPerSecond;
}

// ---------------------------------------------------------------- weekdays and windows

const DAY_NAMES: ReadonlyMap<string, Weekday> = new Map([
  ...(['sun', 'sunday'] as const).map((d) => [d, 0] as const),
  ...(['mon', 'monday'] as const).map((d) => [d, 1] as const),
  ...(['tue', 'tues', 'tuesday'] as const).map((d) => [d, 2] as const),
  ...(['wed', 'wednesday'] as const).map((d) => [d, 3] as const),
  ...(['thu', 'thur', 'thurs', 'thursday'] as const).map((d) => [d, 4] as const),
  ...(['fri', 'friday'] as const).map((d) => [d, 5] as const),
  ...(['sat', 'saturday'] as const).map((d) => [d, 6] as const),
]);

const ALL_DAYS: readonly Weekday[] = Object.freeze([0, 1, 2, 3, 4, 5, 6] as Weekday[]);
const MINUTES_PER_DAY = 24 * 60;

export const WEEKDAYS_EXPECTED = 'weekdays such as mon-fri, sat,sun or mon,wed-fri';
export const WINDOWS_EXPECTED =
  'time windows such as 2200-2400,0000-0800, mon-fri 2200-0600, sat,sun 0000-2400, or always';
export const TIMETABLE_EXPECTED =
  'a rate such as 1MiB/s, or a timetable such as mon-fri 0800-2200 256KiB/s, 2200-0800 off, sat,sun off';

function parseDayName(name: string): Weekday {
  const day = DAY_NAMES.get(name.toLowerCase());
  if (day === undefined) throw new UnitError(`${WEEKDAYS_EXPECTED} (unknown day "${name}")`);
  return day;
}

/** True when `token` is one day name or a day range of known names (`mon`, `mon-fri`). */
function isDayToken(token: string): boolean {
  return /^[a-z]+(-[a-z]+)?$/i.test(token) && token.split('-').every((d) => DAY_NAMES.has(d.toLowerCase()));
}

/** Why words left after an entry's days and hours make no sense, for error messages. */
function describeLeftover(item: ScheduleItem): string {
  const words = item.rest;
  const first = words[0]!;
  // A word where days belong (before the hours) is most likely a misspelt day.
  if (!item.timeGiven && /^[a-z]+(-[a-z]+)?$/i.test(first) && !isRateWord(first)) {
    const unknown = first.split('-').find((d) => !DAY_NAMES.has(d.toLowerCase()))!;
    return `unknown day "${unknown}"`;
  }
  return `unexpected "${words.join(' ')}"`;
}

function addDayToken(token: string, into: Set<Weekday>): void {
  const [from, to] = token.split('-') as [string, string | undefined];
  const first = parseDayName(from);
  if (to === undefined) {
    into.add(first);
    return;
  }
  const last = parseDayName(to);
  // A range may wrap past Sunday: fri-mon is fri, sat, sun, mon.
  for (let d = first; ; d = ((d + 1) % 7) as Weekday) {
    into.add(d);
    if (d === last) break;
  }
}

/**
 * Parses a weekday list (`mon-fri`, `sat,sun`, `mon,wed-fri`, full names, any case;
 * ranges may wrap: `fri-mon`) into sorted, distinct weekdays (0 = Sunday).
 */
export function parseWeekdays(s: string): Weekday[] {
  const tokens = s.split(',').map((t) => t.trim());
  if (tokens.some((t) => t === '' || !/^[a-z]+(-[a-z]+)?$/i.test(t))) throw new UnitError(WEEKDAYS_EXPECTED);
  const days = new Set<Weekday>();
  for (const token of tokens) addDayToken(token, days);
  return [...days].sort((a, b) => a - b);
}

function isTimeRangeToken(token: string): boolean {
  return /^\d{1,2}:?\d{2}-\d{1,2}:?\d{2}$/.test(token);
}

function parseClock(text: string, range: string, role: 'start' | 'end'): number {
  const m = /^(\d{1,2}):?(\d{2})$/.exec(text);
  if (!m) throw new UnitError(`${WINDOWS_EXPECTED} (bad time "${text}")`);
  const hour = Number(m[1]);
  const minute = Number(m[2]);
  if (hour > 24) throw new UnitError(`invalid hour "${m[1]}" in "${range}", must be between 0 and 24`);
  if (minute > 59) throw new UnitError(`invalid minute "${m[2]}" in "${range}", must be between 0 and 59`);
  if (hour === 24 && minute !== 0) throw new UnitError(`invalid time "${text}" in "${range}", 2400 is the latest`);
  if (hour === 24 && role === 'start') {
    throw new UnitError(`invalid start "${text}" in "${range}", a window starts between 0000 and 2359`);
  }
  return hour * 60 + minute;
}

/**
 * Parses `HHMM-HHMM` (or `HH:MM-HH:MM`) into minutes after midnight. An end of 0000
 * after a later start means midnight and becomes 1440; start == end never opens.
 */
function parseTimeRange(token: string): { startMinute: number; endMinute: number } {
  const [startText, endText] = token.split('-') as [string, string];
  const startMinute = parseClock(startText, token, 'start');
  let endMinute = parseClock(endText, token, 'end');
  if (endMinute === 0 && startMinute > 0) endMinute = MINUTES_PER_DAY;
  if (startMinute === endMinute) {
    throw new UnitError(`window "${token}" never opens (start equals end); for a whole day write 0000-2400`);
  }
  return { startMinute, endMinute };
}

interface ScheduleItem {
  days: readonly Weekday[];
  startMinute: number;
  endMinute: number;
  /** False when the entry named no hours (whole days). */
  timeGiven: boolean;
  /** The words after the time range (a rate in a timetable). */
  rest: string[];
}

/**
 * The grammar shared by windows and timetables. Entries are separated by commas; a day
 * list is itself comma-separated (`sat,sun 0000-2400`), so a comma piece holding only
 * days joins the next piece's days. An entry's days carry on to later entries that name
 * no days (`mon-fri 0800-1200,1300-1700` is two weekday windows); before any days are
 * named, an entry covers every day. An entry without a time range covers whole days.
 */
function parseScheduleItems(spec: string, expected: string): ScheduleItem[] {
  const pieces = spec.split(',').map((p) => p.trim());
  if (pieces.some((p) => p === '')) throw new UnitError(`${expected} (empty entry)`);
  const items: ScheduleItem[] = [];
  let carriedDays: readonly Weekday[] = ALL_DAYS;
  let pendingDays: Set<Weekday> | null = null;
  for (const [index, piece] of pieces.entries()) {
    const words = piece.split(/\s+/);
    let w = 0;
    while (w < words.length && isDayToken(words[w]!)) {
      pendingDays ??= new Set();
      addDayToken(words[w]!, pendingDays);
      w++;
    }
    const isLast = index === pieces.length - 1;
    if (w === words.length && !isLast) continue; // a day list continues after the comma
    if (pendingDays) {
      carriedDays = [...pendingDays].sort((a, b) => a - b);
      pendingDays = null;
    }
    let range = { startMinute: 0, endMinute: MINUTES_PER_DAY };
    const timeGiven = w < words.length && isTimeRangeToken(words[w]!);
    if (timeGiven) {
      range = parseTimeRange(words[w]!);
      w++;
    } else if (w < words.length && /^\d/.test(words[w]!) && words[w]!.includes('-')) {
      throw new UnitError(`${expected} (bad time range "${words[w]}", expected HHMM-HHMM)`);
    }
    items.push({ days: carriedDays, ...range, timeGiven, rest: words.slice(w) });
  }
  return items;
}

function isRateWord(word: string): boolean {
  return /^(off|unlimited|none)$/i.test(word);
}

/**
 * Parses allowed times into a WindowSet. `always` (or an empty string) is no windows,
 * meaning always allowed. Otherwise comma-separated `[DAYS] HHMM-HHMM` entries (see
 * the grammar above); a window that crosses midnight opens on its listed days. A window
 * with start == end never opens and is refused.
 */
export function parseWindowSet(s: string): WindowSet {
  const spec = s.trim();
  if (spec === '' || /^always$/i.test(spec)) return { spec: 'always', windows: [] };
  const windows: TimeWindow[] = [];
  for (const item of parseScheduleItems(spec, WINDOWS_EXPECTED)) {
    if (item.rest.length > 0) {
      throw new UnitError(`${WINDOWS_EXPECTED} (${describeLeftover(item)})`);
    }
    windows.push({ days: item.days, startMinute: item.startMinute, endMinute: item.endMinute });
  }
  return { spec, windows };
}

/**
 * Parses a bandwidth setting: a single rate (`1MiB/s`, `off`) is one all-week entry;
 * otherwise comma-separated `[DAYS] [HHMM-HHMM] RATE` entries, where `off` means no
 * limit (as rclone) and an entry with only days and a rate covers those whole days.
 */
export function parseRateTimetable(s: string): RateTimetable {
  const spec = s.trim();
  if (spec === '') throw new UnitError(TIMETABLE_EXPECTED);
  const entries: RateEntry[] = [];
  for (const item of parseScheduleItems(spec, TIMETABLE_EXPECTED)) {
    if (item.rest.length === 0) throw new UnitError(`${TIMETABLE_EXPECTED} (an entry has no rate)`);
    let bytesPerSecond: number | null;
    try {
      bytesPerSecond = parseRate(item.rest.join(' '));
    } catch (err) {
      if (item.rest.length > 1 && /^[a-z]/i.test(item.rest[0]!)) {
        throw new UnitError(`${TIMETABLE_EXPECTED} (${describeLeftover(item)})`);
      }
      throw new UnitError(`${TIMETABLE_EXPECTED} ("${item.rest.join(' ')}" is not a rate: ${(err as Error).message})`);
    }
    entries.push({ days: item.days, startMinute: item.startMinute, endMinute: item.endMinute, bytesPerSecond });
  }
  return { spec, entries };
}

// ---------------------------------------------------------------- budgets and retention

export const BUDGET_EXPECTED = 'a byte budget such as 20GiB/night, 50GiB/day, 200GiB/week or 500GiB/month';

const BUDGET_PERIODS: ReadonlyMap<string, Budget['per']> = new Map([
  ['night', 'window'],
  ['window', 'window'],
  ['day', 'day'],
  ['week', 'week'],
  ['month', 'month'],
]);

/** Parses `SIZE/PERIOD`, PERIOD one of night (= per allowed window), window, day, week, month. */
export function parseBudget(s: string): Budget {
  const spec = s.trim();
  const m = /^(.+?)\s*\/\s*([a-z]+)$/i.exec(spec);
  if (!m) throw new UnitError(BUDGET_EXPECTED);
  const per = BUDGET_PERIODS.get(m[2]!.toLowerCase());
  if (per === undefined) throw new UnitError(`${BUDGET_EXPECTED} (unknown period "${m[2]}")`);
  let bytes: number;
  try {
    bytes = parseSize(m[1]!);
  } catch (err) {
    throw new UnitError(`${BUDGET_EXPECTED} (${(err as Error).message})`);
  }
  if (bytes <= 0) throw new UnitError(`${BUDGET_EXPECTED}, more than 0 bytes`);
  return { spec, bytes, per };
}

export const RETENTION_EXPECTED =
  'a retention policy such as last 3, hourly 24, daily 7, weekly 4, monthly 12, yearly 3, within 30d';

const RETENTION_COUNTS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

/**
 * Parses comma-separated retention rules: `last N`, `hourly N`, `daily N`, `weekly N`,
 * `monthly N`, `yearly N` (N a whole number ≥ 1) and `within DURATION`. Each rule at most
 * once; at least one rule.
 */
export function parseRetention(s: string): RetentionPolicy {
  const spec = s.trim();
  if (spec === '') throw new UnitError(RETENTION_EXPECTED);
  const policy: { -readonly [K in keyof RetentionPolicy]: RetentionPolicy[K] } = { spec };
  for (const rule of spec.split(',').map((r) => r.trim())) {
    const m = /^([a-z]+)\s+(.+)$/i.exec(rule);
    if (!m) throw new UnitError(`${RETENTION_EXPECTED} (bad rule "${rule}")`);
    const name = m[1]!.toLowerCase();
    const arg = m[2]!;
    if (name === 'within') {
      if (policy.withinMs !== undefined) throw new UnitError(`${RETENTION_EXPECTED} ("within" given twice)`);
      try {
        policy.withinMs = parsePositiveDuration(arg);
      } catch (err) {
        throw new UnitError(`${RETENTION_EXPECTED} (within: ${(err as Error).message})`);
      }
      continue;
    }
    const counter = RETENTION_COUNTS.find((c) => c === name);
    if (counter === undefined) throw new UnitError(`${RETENTION_EXPECTED} (unknown rule "${m[1]}")`);
    if (policy[counter] !== undefined) throw new UnitError(`${RETENTION_EXPECTED} ("${counter}" given twice)`);
    if (!/^\d+$/.test(arg) || Number(arg) < 1) {
      throw new UnitError(`invalid count "${arg}" for ${counter}, must be a whole number of at least 1`);
    }
    policy[counter] = Number(arg);
  }
  return policy;
}

// ---------------------------------------------------------------- formatters

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

function trimNumber(n: number): string {
  const digits = n < 10 ? 2 : n < 100 ? 1 : 0;
  return String(Number(n.toFixed(digits)));
}

/** `0 B`, `512 B`, `1.5 MiB`, `10.3 GiB`, `123 GiB` (binary units, about 3 significant digits). */
export function formatBytes(n: number): string {
  let value = Math.abs(n);
  let unit = 0;
  while (value >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (Number(trimNumber(value)) >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${n < 0 ? '-' : ''}${unit === 0 ? String(Math.round(value)) : trimNumber(value)} ${BINARY_UNITS[unit]}`;
}

/** `1 MiB/s`; null (no limit) is `off`. */
export function formatRate(bytesPerSecond: number | null): string {
  return bytesPerSecond === null ? 'off' : `${formatBytes(bytesPerSecond)}/s`;
}

const DURATION_PARTS: ReadonlyArray<readonly [string, number]> = [
  ['d', DAY_MS],
  ['h', HOUR_MS],
  ['m', MINUTE_MS],
  ['s', SECOND_MS],
];

/**
 * The two largest non-zero units of a duration: `2h 5m`, `3d 4h`, `45s`, `1m 30s`;
 * under a second in ms (`250ms`); `0s` for zero. Seconds are rounded.
 */
export function formatDuration(ms: number): string {
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms > 0 && ms < SECOND_MS) return `${Math.round(ms)}ms`;
  let rest = Math.round(ms / SECOND_MS) * SECOND_MS;
  const parts: string[] = [];
  for (const [unit, size] of DURATION_PARTS) {
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count > 0 || parts.length > 0) parts.push(`${count}${unit}`);
  }
  const shown = parts.slice(0, 2).filter((p) => !/^0[a-z]$/.test(p));
  return shown.length > 0 ? shown.join(' ') : '0s';
}

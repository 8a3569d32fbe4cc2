import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatBytes,
  formatDuration,
  formatRate,
  parseBudget,
  parseDuration,
  parseRate,
  parseRateTimetable,
  parseRetention,
  parseSize,
  parseWeekdays,
  parseWindowSet,
  UnitError,
} from '../src/node/config/units.js';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Asserts that `fn` throws a UnitError whose message matches `message`. */
function assertUnitError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UnitError, `expected a UnitError, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  });
}

test('parseDuration accepts every unit, decimals and sums', () => {
  const cases: Array<[string, number]> = [
    ['30s', 30 * S],
    ['10m', 10 * M],
    ['36h', 36 * H],
    ['2d', 2 * D],
    ['1w', 7 * D],
    ['1week', 7 * D],
    ['2weeks', 14 * D],
    ['1month', 30 * D],
    ['2months', 60 * D],
    ['1y', 365 * D],
    ['1year', 365 * D],
    ['1h30m', 90 * M],
    ['1d 12h', 36 * H],
    ['1.5h', 90 * M],
    ['  45 min ', 45 * M],
    ['2 days', 2 * D],
    ['1H', H],
    ['0s', 0],
    ['90sec', 90 * S],
  ];
  for (const [input, want] of cases) assert.equal(parseDuration(input), want, input);
});

test('parseDuration refuses bare numbers, unknown units and junk, saying what a duration is', () => {
  for (const bad of ['', '30', '3 dayz', 'day', '1h-30m', '-1d', 'soon', '1d,2h', '10 m s']) {
    assertUnitError(() => parseDuration(bad), /a duration such as 30s, 10m, 36h, 2d, 1week/);
  }
  assertUnitError(() => parseDuration('3 dayz'), /unknown unit "dayz"/);
});

test('parseSize reads binary and decimal units and plain bytes', () => {
  const cases: Array<[string, number]> = [
    ['0', 0],
    ['512', 512],
    ['512B', 512],
    ['4KiB', 4 * KiB],
    ['256MiB', 256 * MiB],
    ['1GiB', GiB],
    ['2TiB', 2 * 1024 * GiB],
    ['1.5GiB', 1.5 * GiB],
    ['4 KiB', 4 * KiB],
    ['500KB', 500_000],
    ['1MB', 1_000_000],
    ['4GB', 4_000_000_000],
    ['1TB', 1e12],
    ['4kiB', 4 * KiB],
    ['4KIB', 4 * KiB],
    ['4KB', 4000],
  ];
  for (const [input, want] of cases) assert.equal(parseSize(input), want, input);
});

test('parseSize refuses junk and the bits-or-bytes ambiguous Mb', () => {
  for (const bad of ['', 'lots', '-1', '4 XB', '1.2.3MB', 'MiB', '4PiB']) {
    assertUnitError(() => parseSize(bad), /a size such as 512B, 4KiB/);
  }
  assertUnitError(() => parseSize('10Mb'), /"Mb" is ambiguous: write MB for bytes/);
  assertUnitError(() => parseSize('4kib'), /"kib" is ambiguous: write KiB for bytes/);
});

test('parseRate reads byte and bit rates and off', () => {
  const cases: Array<[string, number | null]> = [
    ['512KiB/s', 512 * KiB],
    ['1MiB/s', MiB],
    ['1MB/s', 1_000_000],
    ['8Mbit/s', 1_000_000],
    ['100kbit/s', 12_500],
    ['1Gbit/s', 125_000_000],
    ['2 MiB / s', 2 * MiB],
    ['500B/s', 500],
    ['off', null],
    ['OFF', null],
    ['unlimited', null],
  ];
  for (const [input, want] of cases) assert.equal(parseRate(input), want, input);
});

test('parseRate refuses sizes without /s, zero and ambiguous units', () => {
  for (const bad of ['', '1MiB', '512', '512/s', 'fast', '0KiB/s', '1MiB/h']) {
    assertUnitError(() => parseRate(bad), /a rate such as 512KiB\/s, 1MB\/s, 8Mbit\/s/);
  }
  assertUnitError(() => parseRate('8Mb/s'), /ambiguous: write MB\/s for bytes or Mbit\/s for bits/);
  assertUnitError(() => parseRate('0MiB/s'), /more than 0 \(write off for no limit\)/);
});

test('parseWeekdays reads names, lists, ranges and wrapping ranges', () => {
  const cases: Array<[string, number[]]> = [
    ['mon', [1]],
    ['mon-fri', [1, 2, 3, 4, 5]],
    ['sat,sun', [0, 6]],
    ['mon,wed-fri', [1, 3, 4, 5]],
    ['fri-mon', [0, 1, 5, 6]],
    ['Monday,TUE', [1, 2]],
    ['sun-sat', [0, 1, 2, 3, 4, 5, 6]],
    ['mon,mon', [1]],
  ];
  for (const [input, want] of cases) assert.deepEqual(parseWeekdays(input), want, input);
  for (const bad of ['', 'funday', 'mon-', 'mon,,tue', '1-5']) {
    assertUnitError(() => parseWeekdays(bad), /weekdays such as mon-fri/);
  }
});

const ALL = [0, 1, 2, 3, 4, 5, 6];
const WEEKDAYS = [1, 2, 3, 4, 5];

test('parseWindowSet reads windows, days, midnight crossings and always', () => {
  const cases: Array<[string, Array<[number[], number, number]>]> = [
    ['2200-2400,0000-0800', [[ALL, 1320, 1440], [ALL, 0, 480]]],
    ['mon-fri 2200-0600', [[WEEKDAYS, 1320, 360]]],
    ['sat,sun 0000-2400', [[[0, 6], 0, 1440]]],
    ['mon,wed-fri 0900-1700', [[[1, 3, 4, 5], 540, 1020]]],
    // Days carry on to following windows until other days are named.
    ['mon-fri 0800-1200,1300-1700, sat 1000-1200', [[WEEKDAYS, 480, 720], [WEEKDAYS, 780, 1020], [[6], 600, 720]]],
    // Days alone cover whole days.
    ['mon-fri 2200-0600, sat,sun', [[WEEKDAYS, 1320, 360], [[0, 6], 0, 1440]]],
    ['22:00-08:00', [[ALL, 1320, 480]]],
    // An end of 0000 after a later start is midnight.
    ['2200-0000', [[ALL, 1320, 1440]]],
    ['0000-2400', [[ALL, 0, 1440]]],
  ];
  for (const [input, want] of cases) {
    const set = parseWindowSet(input);
    assert.equal(set.spec, input);
    assert.deepEqual(
      set.windows.map((w) => [w.days, w.startMinute, w.endMinute]),
      want,
      input,
    );
  }
  assert.deepEqual(parseWindowSet('always'), { spec: 'always', windows: [] });
  assert.deepEqual(parseWindowSet(''), { spec: 'always', windows: [] });
});

test('parseWindowSet refuses windows that never open and out-of-range times, kopia-style', () => {
  const cases: Array<[string, RegExp]> = [
    ['0000-0000', /window "0000-0000" never opens/],
    ['mon 1200-1200', /never opens/],
    ['2500-0800', /invalid hour "25" in "2500-0800", must be between 0 and 24/],
    ['2200-0860', /invalid minute "60" in "2200-0860", must be between 0 and 59/],
    ['2400-0800', /invalid start "2400"/],
    ['2200-2430', /2400 is the latest/],
    ['funday 2200-0600', /unknown day "funday"/],
    ['2200-0600 please', /unexpected "please"/],
    ['22-06', /bad time range "22-06"/],
    ['2200-0600,,0800-0900', /empty entry/],
    ['nightly', /unknown day "nightly"/],
  ];
  for (const [input, message] of cases) assertUnitError(() => parseWindowSet(input), message);
});

test('parseRateTimetable reads single rates and timetables with days and off', () => {
  const single = parseRateTimetable('1MiB/s');
  assert.deepEqual(single.entries, [{ days: ALL, startMinute: 0, endMinute: 1440, bytesPerSecond: MiB }]);

  const table = parseRateTimetable('mon-fri 0800-2200 256KiB/s, 2200-0800 off, sat,sun off');
  assert.equal(table.spec, 'mon-fri 0800-2200 256KiB/s, 2200-0800 off, sat,sun off');
  assert.deepEqual(table.entries, [
    { days: WEEKDAYS, startMinute: 480, endMinute: 1320, bytesPerSecond: 256 * KiB },
    { days: WEEKDAYS, startMinute: 1320, endMinute: 480, bytesPerSecond: null },
    { days: [0, 6], startMinute: 0, endMinute: 1440, bytesPerSecond: null },
  ]);

  const plain = parseRateTimetable('0800-2200 256KiB/s, 2200-0800 4MiB/s');
  assert.deepEqual(
    plain.entries.map((e) => [e.days, e.startMinute, e.endMinute, e.bytesPerSecond]),
    [
      [ALL, 480, 1320, 256 * KiB],
      [ALL, 1320, 480, 4 * MiB],
    ],
  );
  assert.deepEqual(parseRateTimetable('off').entries, [{ days: ALL, startMinute: 0, endMinute: 1440, bytesPerSecond: null }]);
  assert.equal(parseRateTimetable('sat 2 MiB/s').entries[0]!.bytesPerSecond, 2 * MiB);
});

test('parseRateTimetable refuses entries without a rate, bad rates and bad windows', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /a rate such as 1MiB\/s, or a timetable/],
    ['mon-fri 0800-2200', /an entry has no rate/],
    ['0800-2200 fast', /"fast" is not a rate/],
    ['0800-0800 1MiB/s', /never opens/],
    ['2500-0800 1MiB/s', /invalid hour "25"/],
    ['mon-fri', /an entry has no rate/],
    ['funday 0800-2200 1MiB/s', /unknown day "funday"/],
    ['fast', /"fast" is not a rate/],
  ];
  for (const [input, message] of cases) assertUnitError(() => parseRateTimetable(input), message);
});

test('parseBudget reads size per night, window, day, week and month', () => {
  assert.deepEqual(parseBudget('20GiB/night'), { spec: '20GiB/night', bytes: 20 * GiB, per: 'window' });
  assert.deepEqual(parseBudget('1GiB/window'), { spec: '1GiB/window', bytes: GiB, per: 'window' });
  assert.equal(parseBudget('50GiB/day').per, 'day');
  assert.equal(parseBudget('200GiB / week').per, 'week');
  assert.deepEqual(parseBudget('500GB/month'), { spec: '500GB/month', bytes: 500e9, per: 'month' });
  for (const [input, message] of [
    ['20GiB', /a byte budget such as 20GiB\/night/],
    ['20GiB/fortnight', /unknown period "fortnight"/],
    ['lots/day', /a size such as/],
    ['0GiB/day', /more than 0 bytes/],
  ] as const) {
    assertUnitError(() => parseBudget(input), message);
  }
});

test('parseRetention reads every rule', () => {
  assert.deepEqual(parseRetention('last 3, hourly 24, daily 7, weekly 4, monthly 12, yearly 3, within 30d'), {
    spec: 'last 3, hourly 24, daily 7, weekly 4, monthly 12, yearly 3, within 30d',
    last: 3,
    hourly: 24,
    daily: 7,
    weekly: 4,
    monthly: 12,
    yearly: 3,
    withinMs: 30 * D,
  });
  assert.deepEqual(parseRetention('daily 7'), { spec: 'daily 7', daily: 7 });
  assert.deepEqual(parseRetention('within 1y'), { spec: 'within 1y', withinMs: 365 * D });
});

test('parseRetention refuses unknown rules, repeats and bad counts', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /a retention policy such as last 3/],
    ['daily', /bad rule "daily"/],
    ['fortnightly 2', /unknown rule "fortnightly"/],
    ['daily 7, daily 8', /"daily" given twice/],
    ['daily seven', /invalid count "seven" for daily, must be a whole number of at least 1/],
    ['daily 0', /invalid count "0"/],
    ['within forever', /within: a duration such as/],
    ['within 0s', /more than zero/],
  ];
  for (const [input, message] of cases) assertUnitError(() => parseRetention(input), message);
});

test('formatBytes, formatRate and formatDuration read like people write', () => {
  const bytes: Array<[number, string]> = [
    [0, '0 B'],
    [512, '512 B'],
    [1024, '1 KiB'],
    [1.5 * MiB, '1.5 MiB'],
    [10.25 * GiB, '10.3 GiB'],
    [123 * GiB, '123 GiB'],
    [MiB - 1, '1 MiB'],
    [2 * 1024 * GiB, '2 TiB'],
  ];
  for (const [n, want] of bytes) assert.equal(formatBytes(n), want, String(n));
  assert.equal(formatRate(MiB), '1 MiB/s');
  assert.equal(formatRate(256 * KiB), '256 KiB/s');
  assert.equal(formatRate(null), 'off');
  const durations: Array<[number, string]> = [
    [0, '0s'],
    [250, '250ms'],
    [45 * S, '45s'],
    [90 * S, '1m 30s'],
    [2 * H + 5 * M, '2h 5m'],
    [2 * H + 5 * M + 7 * S, '2h 5m'],
    [3 * D + 4 * H, '3d 4h'],
    [2 * H, '2h'],
    [D + 5 * M, '1d'],
  ];
  for (const [ms, want] of durations) assert.equal(formatDuration(ms), want, String(ms));
});

test('formatted sizes, rates and durations parse back to the same value', () => {
  for (const n of [512, 4 * KiB, 256 * MiB, 2 * GiB]) assert.equal(parseSize(formatBytes(n).replace(' ', '')), n);
  assert.equal(parseRate(formatRate(512 * KiB).replace(' ', '')), 512 * KiB);
  assert.equal(parseDuration(formatDuration(2 * H + 5 * M)), 2 * H + 5 * M);
});

test('formatCount groups thousands with commas and rounds', async () => {
  const { formatCount } = await import('../src/jobs/report.js');
  assert.deepEqual([0, 7, 999, 1000, 1234567, -1234, 12.6, 1e9].map(formatCount), ['0', '7', '999', '1,000', '1,234,567', '-1,234', '13', '1,000,000,000']);
});

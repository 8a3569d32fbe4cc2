import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDue, nextRunAt } from '../src/jobs/schedule.js';
import { localTimeText } from '../src/jobs/windows.js';
import { jobConfig, ws } from './helpers/window-set.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
const BER = 'Europe/Berlin';
const NY = 'America/New_York';
const d = (iso: string) => new Date(iso);

interface Case {
  name: string;
  frequencyMs?: number;
  schedule?: string;
  windows?: string[];
  tz?: string;
  last: string | null;
  now: string;
  want: string; // wanted start, UTC
}

// Berlin is UTC+2 in May (2024-05-06 is a Monday); comments give local times.
const cases: Case[] = [
  { name: 'daily, never completed, no windows: now', frequencyMs: DAY, last: null, now: '2024-05-07T10:00:00Z', want: '2024-05-07T10:00:00Z' },
  { name: 'daily, node off two weeks: one catch-up now', frequencyMs: DAY, last: '2024-04-20T10:00:00Z', now: '2024-05-07T10:00:00Z', want: '2024-05-07T10:00:00Z' },
  { name: 'daily, due in 3 h', frequencyMs: DAY, last: '2024-05-06T13:00:00Z', now: '2024-05-07T10:00:00Z', want: '2024-05-07T13:00:00Z' },
  { name: 'daily due at noon, window 2200-0800: waits for 22:00', frequencyMs: DAY, windows: ['2200-0800'], last: '2024-05-06T10:00:00Z', now: '2024-05-07T08:00:00Z', want: '2024-05-07T20:00:00Z' },
  { name: 'overdue outside the window: at the opening', frequencyMs: DAY, windows: ['2200-0800'], last: '2024-04-20T10:00:00Z', now: '2024-05-07T10:00:00Z', want: '2024-05-07T20:00:00Z' },
  { name: 'overdue, laptop wakes 07:55 inside 2200-0800: now', frequencyMs: WEEK, windows: ['2200-0800'], last: '2024-04-29T21:00:00Z', now: '2024-05-07T05:55:00Z', want: '2024-05-07T05:55:00Z' },
  { name: 'weekly, last done Mon 23:10: next Mon 22:00 (anti-drift)', frequencyMs: WEEK, windows: ['2200-0800'], last: '2024-05-06T21:10:00Z', now: '2024-05-07T10:00:00Z', want: '2024-05-13T20:00:00Z' },
  { name: 'weekly, last done Tue 07:50: still next Mon 22:00', frequencyMs: WEEK, windows: ['2200-0800'], last: '2024-05-07T05:50:00Z', now: '2024-05-07T10:00:00Z', want: '2024-05-13T20:00:00Z' },
  { name: 'merged 2200-2400,0000-0800 anchors at 22:00 too', frequencyMs: WEEK, windows: ['2200-2400', '0000-0800'], last: '2024-05-06T23:30:00Z', now: '2024-05-07T10:00:00Z', want: '2024-05-13T20:00:00Z' },
  { name: '6-hourly: no early start inside the window it ran in', frequencyMs: 6 * HOUR, windows: ['2200-0800'], last: '2024-05-06T20:30:00Z', now: '2024-05-06T21:00:00Z', want: '2024-05-07T02:30:00Z' },
  { name: 'hourly: 30 min after the opening is beyond 10 %', frequencyMs: HOUR, windows: ['2200-0800'], last: '2024-05-06T19:30:00Z', now: '2024-05-06T19:31:00Z', want: '2024-05-06T20:30:00Z' },
  { name: 'fri 2200-0600: due Wednesday waits for Friday night', frequencyMs: WEEK, windows: ['fri 2200-0600'], last: '2024-05-01T12:00:00Z', now: '2024-05-08T13:00:00Z', want: '2024-05-10T20:00:00Z' },
  { name: 'fri 2200-0600: Saturday 05:00 is still inside', frequencyMs: WEEK, windows: ['fri 2200-0600'], last: '2024-05-01T12:00:00Z', now: '2024-05-11T03:00:00Z', want: '2024-05-11T03:00:00Z' },
  { name: 'mon-fri 0900-1700: Friday evening waits for Monday', frequencyMs: DAY, windows: ['mon-fri 0900-1700'], last: '2024-05-09T12:00:00Z', now: '2024-05-10T16:00:00Z', want: '2024-05-13T07:00:00Z' },
  // cron
  { name: 'cron 02:00 after the last completion', schedule: '0 2 * * *', last: '2024-05-06T00:10:00Z', now: '2024-05-06T10:00:00Z', want: '2024-05-07T00:00:00Z' },
  { name: 'cron missed for two weeks: one catch-up now', schedule: '0 2 * * *', last: '2024-04-20T00:10:00Z', now: '2024-05-06T10:00:00Z', want: '2024-05-06T10:00:00Z' },
  { name: 'cron never completed: next cron time, not now', schedule: '0 2 * * *', last: null, now: '2024-05-06T10:00:00Z', want: '2024-05-07T00:00:00Z' },
  { name: 'cron at noon outside 2200-0800: at the opening', schedule: '0 12 * * *', windows: ['2200-0800'], last: '2024-05-06T10:05:00Z', now: '2024-05-06T10:10:00Z', want: '2024-05-07T20:00:00Z' },
  { name: 'cron in New York, fall-back night: 01:30 once (EDT)', schedule: '30 1 * * *', tz: NY, last: '2024-11-02T05:35:00Z', now: '2024-11-02T12:00:00Z', want: '2024-11-03T05:30:00Z' },
  { name: 'cron in New York after the first 01:30: next day', schedule: '30 1 * * *', tz: NY, last: '2024-11-03T05:40:00Z', now: '2024-11-03T05:41:00Z', want: '2024-11-04T06:30:00Z' },
  // DST nights
  { name: 'Berlin spring night: 0130-0330, daily, anchored at 01:30 CET', frequencyMs: DAY, windows: ['0130-0330'], last: '2024-03-30T00:45:00Z', now: '2024-03-30T12:00:00Z', want: '2024-03-31T00:30:00Z' },
  { name: 'Berlin spring night: overdue at 03:00 CEST, inside the 1 h window: now', frequencyMs: DAY, windows: ['0130-0330'], last: '2024-03-29T12:00:00Z', now: '2024-03-31T01:00:00Z', want: '2024-03-31T01:00:00Z' },
  { name: 'Berlin fall night: due 02:30 CEST, after 2200-0200 closed: next night', frequencyMs: DAY, windows: ['2200-0200'], last: '2024-10-26T00:30:00Z', now: '2024-10-26T12:00:00Z', want: '2024-10-27T21:00:00Z' },
  { name: 'New York fall night: due at the second 01:30 (EST), still inside 2200-0200', frequencyMs: DAY, windows: ['2200-0200'], tz: NY, last: '2024-11-02T06:30:00Z', now: '2024-11-02T12:00:00Z', want: '2024-11-03T06:30:00Z' },
  { name: 'New York spring night: 0130-0330 anchored at 01:30 EST', frequencyMs: DAY, windows: ['0130-0330'], tz: NY, last: '2024-03-09T06:45:00Z', now: '2024-03-09T12:00:00Z', want: '2024-03-10T06:30:00Z' },
  { name: 'New York spring night: 0230 does not exist, opens 03:00 EDT', frequencyMs: DAY, windows: ['0230-0400'], tz: NY, last: '2024-03-09T05:00:00Z', now: '2024-03-09T12:00:00Z', want: '2024-03-10T07:00:00Z' },
];

describe('nextRunAt (table)', () => {
  for (const c of cases) {
    it(c.name, () => {
      const job = jobConfig({
        name: 'b1',
        frequencyMs: c.frequencyMs ?? null,
        schedule: c.schedule ?? null,
        allowedTimes: ws(...(c.windows ?? [])),
        timezone: c.tz ?? BER,
      });
      const next = nextRunAt(job, c.last ? d(c.last) : null, d(c.now));
      assert.equal(next.at.toISOString(), d(c.want).toISOString(), next.reason);
      assert.ok(next.at.getTime() >= d(c.now).getTime());
      assert.equal(isDue(job, c.last ? d(c.last) : null, d(c.now)), c.want === c.now);
    });
  }
});

describe('weekly without drift over 10 weeks', () => {
  const durationsMin = [70, 5, 300, 590, 1, 120, 45, 400, 30, 200];
  for (const [tz, start] of [
    [BER, '2024-09-30T20:00:00Z'], // Mon 22:00 CEST; crosses the 2024-10-27 fall-back
    [NY, '2024-10-14T02:00:00Z'], // Sun 22:00 EDT; crosses 2024-11-03
    [BER, '2024-03-04T21:00:00Z'], // Mon 22:00 CET; crosses 2024-03-31 spring-forward
  ] as const) {
    it(`${tz} from ${start}`, () => {
      const job = jobConfig({ name: 'w', frequencyMs: WEEK, allowedTimes: ws('2200-0800'), timezone: tz });
      let startAt = d(start);
      const wd = localTimeText(tz, startAt, { weekday: true });
      for (const minutes of durationsMin) {
        const done = new Date(startAt.getTime() + minutes * 60_000);
        const next = nextRunAt(job, done, done).at;
        assert.equal(localTimeText(tz, next, { weekday: true }), wd, `after a ${minutes} min run: ${next.toISOString()}`);
        assert.ok(Math.abs(next.getTime() - startAt.getTime() - WEEK) <= HOUR);
        startAt = next;
      }
    });
  }

  it('a daily 2 h run keeps starting at 22:00 for 10 nights', () => {
    const job = jobConfig({ name: 'n', frequencyMs: DAY, allowedTimes: ws('2200-0800') });
    let startAt = d('2024-05-06T20:00:00Z');
    for (let i = 0; i < 10; i++) {
      const done = new Date(startAt.getTime() + 2 * HOUR);
      startAt = nextRunAt(job, done, done).at;
      assert.equal(localTimeText(BER, startAt), '22:00');
    }
  });
});

describe('nextRunAt errors and reasons', () => {
  it('rejects windows that never open', () => {
    const job = jobConfig({ name: 'x', frequencyMs: DAY, allowedTimes: ws('0000-0000') });
    assert.throws(() => nextRunAt(job, null, d('2024-05-06T10:00:00Z')), /never opens/);
  });

  it('rejects a job with neither frequency nor schedule', () => {
    assert.throws(() => nextRunAt(jobConfig({ name: 'x' }), null, d('2024-05-06T10:00:00Z')), /neither frequency nor schedule/);
  });

  it('explains itself in plain words', () => {
    const job = jobConfig({ name: 'b1', frequencyMs: WEEK, allowedTimes: ws('2200-0800') });
    const overdue = nextRunAt(job, d('2024-04-20T10:00:00Z'), d('2024-05-07T10:00:00Z'));
    assert.match(overdue.reason, /every 7d since the last completion .*overdue since .*one catch-up run.*outside allowed times, waits for the next window 22:00-08:00/);
    assert.equal(overdue.waitsForWindow, true);
    const drift = nextRunAt(job, d('2024-05-06T21:10:00Z'), d('2024-05-07T10:00:00Z'));
    assert.match(drift.reason, /counted from the window opening Mon .*22:00 to keep its rhythm/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobConfig } from '../src/node/config/types.js';
import { alertAfterMs, isOverdue, OverdueTracker, startOverdueWatch } from '../src/jobs/overdue.js';
import { FakeClock } from './helpers/fake-clock.js';
import { ws } from './helpers/window-set.js';

const M = 60_000;
const H = 60 * M;
const D = 24 * H;

function job(over: Partial<JobConfig> = {}): JobConfig {
  return {
    name: 'b1', frequencyMs: D, schedule: null, allowedTimes: ws(), timezone: 'UTC', alertAfterMs: null, enabled: true, ...over,
  } as JobConfig;
}

const NOW = new Date('2026-11-24T12:00:00Z');

describe('alertAfterMs', () => {
  const cases: { name: string; job: JobConfig; want: number }[] = [
    { name: 'always open: twice the frequency', job: job({ frequencyMs: 6 * H }), want: 12 * H },
    { name: 'nightly window 2200-0800: plus the 14 h it stays closed', job: job({ allowedTimes: ws('2200-0800') }), want: 2 * D + 14 * H },
    { name: 'saturdays only: plus six closed days', job: job({ frequencyMs: 7 * D, allowedTimes: ws('sat 0000-2400') }), want: 14 * D + 6 * D },
    { name: 'alert_after set: taken as is', job: job({ alertAfterMs: 3 * D, allowedTimes: ws('2200-0800') }), want: 3 * D },
    { name: 'cron schedule: twice the gap between cron times', job: job({ frequencyMs: null, schedule: '0 3 * * *' }), want: 2 * D },
  ];
  for (const c of cases) it(c.name, () => assert.equal(alertAfterMs(c.job, NOW), c.want));
});

describe('isOverdue', () => {
  const cases: { name: string; job: JobConfig; last: string | null; since?: string; now: string; want: boolean }[] = [
    { name: 'completed within the limit', job: job(), last: '2026-11-23T00:00:00Z', now: '2026-11-24T12:00:00Z', want: false },
    { name: 'exactly at the limit is not yet overdue', job: job(), last: '2026-11-22T12:00:00Z', now: '2026-11-24T12:00:00Z', want: false },
    { name: 'a minute past the limit', job: job(), last: '2026-11-22T11:59:00Z', now: '2026-11-24T12:00:00Z', want: true },
    { name: 'windows stretch the limit', job: job({ allowedTimes: ws('2200-0800') }), last: '2026-11-22T11:59:00Z', now: '2026-11-24T12:00:00Z', want: false },
    { name: 'never completed, no reference: not overdue', job: job(), last: null, now: '2026-11-24T12:00:00Z', want: false },
    { name: 'never completed since the node started 3 days ago', job: job(), last: null, since: '2026-11-21T12:00:00Z', now: '2026-11-24T12:00:00Z', want: true },
    { name: 'disabled jobs are never overdue', job: job({ enabled: false }), last: '2026-01-01T00:00:00Z', now: '2026-11-24T12:00:00Z', want: false },
  ];
  for (const c of cases) {
    it(c.name, () =>
      assert.equal(isOverdue(c.job, c.last ? new Date(c.last) : null, new Date(c.now), c.since ? new Date(c.since) : null), c.want),
    );
  }
});

describe('OverdueTracker', () => {
  it('reports a job once per episode, again after it recovered', () => {
    const t = new OverdueTracker();
    assert.deepEqual(t.update(['a']), ['a']);
    assert.deepEqual(t.update(['a', 'b']), ['b']);
    assert.deepEqual(t.update(['b']), []);
    assert.deepEqual(t.update(['a', 'b']), ['a']);
  });
});

describe('startOverdueWatch', () => {
  it('fires on_overdue once when the limit passes on the fake clock, again only after a success', async () => {
    const clock = new FakeClock('2026-11-24T00:00:00Z');
    let last: Date | null = new Date('2026-11-23T00:00:00Z');
    const fired: string[] = [];
    const watch = startOverdueWatch({
      clock,
      jobs: () => [job({ frequencyMs: 6 * H })],
      lastCompletedAt: async () => last,
      since: clock.now(),
      onOverdue: async (j, info) => void fired.push(`${j.name} ${clock.now().toISOString()} ${info.overdueSince.toISOString()}`),
    });
    try {
      // Last completion 23T00:00 + 12 h = 23T12:00 is already past: overdue at the first check.
      await clock.advance(0);
      await clock.advance(10 * M);
    } finally {
      await watch.stop();
    }
    assert.equal(fired.length, 1, fired.join('\n'));
    assert.match(fired[0]!, /^b1 2026-11-24T00:00:00.000Z 2026-11-23T12:00:00.000Z$/);

    // A fresh watch over a recovering job.
    const fired2: string[] = [];
    last = new Date('2026-11-24T00:00:00Z');
    const w2 = startOverdueWatch({
      clock, jobs: () => [job({ frequencyMs: 6 * H })], lastCompletedAt: async () => last, since: clock.now(),
      onOverdue: async (j) => void fired2.push(`${j.name} ${clock.now().toISOString()}`),
    });
    try {
      await clock.advance(11 * H);
      assert.deepEqual(fired2, []);
      await clock.advance(2 * H); // 13:00 > 12:00
      assert.deepEqual(fired2, ['b1 2026-11-24T12:01:00.000Z']);
      await clock.advance(5 * H);
      assert.equal(fired2.length, 1, 'once per episode');
      last = clock.now(); // a run completed
      await clock.advance(M);
      await clock.advance(13 * H);
      assert.equal(fired2.length, 2, 'a new episode fires again');
    } finally {
      await w2.stop();
    }
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRetention } from '../src/node/config/units.js';
import type { JobConfig } from '../src/node/config/types.js';
import { forgetJob } from '../src/node/commands/forget.js';
import { Repository } from '../src/repo/repository.js';
import { applyRetention, type RetentionSnapshot } from '../src/repo/retention.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { FakeClock } from './helpers/fake-clock.js';

function snaps(times: string[], tags: Record<number, string[]> = {}): RetentionSnapshot[] {
  return times.map((time, i) => ({ id: `s${String(i).padStart(2, '0')}`, time, ...(tags[i] ? { tags: tags[i] } : {}) }));
}

/** Every 6 hours from `start` for `n` snapshots. */
function every(startIso: string, stepMs: number, n: number): string[] {
  const start = Date.parse(startIso);
  return Array.from({ length: n }, (_, i) => new Date(start + i * stepMs).toISOString());
}

const H = 3_600_000;
const D = 24 * H;

interface Case {
  name: string;
  times: string[];
  tags?: Record<number, string[]>;
  keep: string;
  now: string;
  tz?: string;
  /** Indexes of the snapshots that must be kept. */
  kept: number[];
}

const cases: Case[] = [
  { name: 'last 3 keeps the three newest', times: every('2026-11-01T00:00:00Z', D, 6), keep: 'last 3', now: '2026-11-10T00:00:00Z', kept: [3, 4, 5] },
  {
    name: 'daily 2 keeps the newest of each of the two newest days',
    times: ['2026-11-01T08:00:00Z', '2026-11-01T20:00:00Z', '2026-11-02T08:00:00Z', '2026-11-02T20:00:00Z', '2026-11-03T08:00:00Z'],
    keep: 'daily 2', now: '2026-11-10T00:00:00Z', kept: [3, 4],
  },
  {
    name: 'daily buckets follow the job time zone (23:30 UTC is the next day in Berlin)',
    times: ['2026-11-01T22:00:00Z', '2026-11-01T23:30:00Z', '2026-11-02T10:00:00Z'],
    keep: 'daily 3', now: '2026-11-10T00:00:00Z', tz: 'Europe/Berlin',
    // Berlin: 23:00 on 11-01, 00:30 on 11-02, 11:00 on 11-02 → days 11-01 and 11-02
    kept: [0, 2],
  },
  {
    name: 'the same set in UTC has three days',
    times: ['2026-11-01T22:00:00Z', '2026-11-01T23:30:00Z', '2026-11-02T10:00:00Z'],
    keep: 'daily 3', now: '2026-11-10T00:00:00Z', kept: [1, 2],
  },
  {
    name: 'hourly 2 over snapshots every 20 minutes',
    times: every('2026-11-01T10:00:00Z', 20 * 60_000, 7), // 10:00 … 12:00
    keep: 'hourly 2', now: '2026-11-02T00:00:00Z', kept: [5, 6],
  },
  {
    name: 'weekly uses ISO weeks (Sunday and the next Monday are different weeks)',
    times: ['2026-11-15T12:00:00Z', '2026-11-16T12:00:00Z', '2026-11-17T12:00:00Z'],
    keep: 'weekly 5', now: '2026-11-20T00:00:00Z', kept: [0, 2],
  },
  {
    name: 'ISO week across the new year (2026-12-31 and 2027-01-01 share week 2026-W53)',
    times: ['2026-12-28T12:00:00Z', '2027-01-01T12:00:00Z', '2027-01-04T12:00:00Z'],
    keep: 'weekly 5', now: '2027-01-10T00:00:00Z', kept: [1, 2],
  },
  {
    name: 'monthly and yearly',
    times: ['2024-06-01T00:00:00Z', '2025-03-01T00:00:00Z', '2025-11-01T00:00:00Z', '2026-01-15T00:00:00Z', '2026-01-20T00:00:00Z', '2026-02-01T00:00:00Z'],
    keep: 'monthly 2, yearly 3', now: '2026-03-01T00:00:00Z',
    // monthly: 2026-02 (5), 2026-01 (4); yearly: 2026 (5), 2025 (2), 2024 (0)
    kept: [0, 2, 4, 5],
  },
  {
    name: 'within is measured from the newest snapshot, not the clock (a node off for a month loses nothing)',
    times: every('2026-10-01T00:00:00Z', D, 10),
    keep: 'within 3d', now: '2026-12-01T00:00:00Z', kept: [6, 7, 8, 9],
  },
  {
    name: 'the newest snapshot is always kept, even when no rule wants it',
    times: every('2026-10-01T00:00:00Z', D, 3),
    keep: 'yearly 1', now: '2026-12-01T00:00:00Z', kept: [2],
  },
  {
    name: 'future-dated snapshots are kept but take no slot: last 2 still keeps two real ones',
    times: ['2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z', '2026-11-03T00:00:00Z', '2031-01-01T00:00:00Z', '2032-01-01T00:00:00Z'],
    keep: 'last 2', now: '2026-11-10T00:00:00Z', kept: [1, 2, 3, 4],
  },
  {
    name: 'a future-dated snapshot does not shift the within reference',
    times: ['2026-11-01T00:00:00Z', '2026-11-05T00:00:00Z', '2026-11-06T00:00:00Z', '2040-01-01T00:00:00Z'],
    keep: 'within 2d', now: '2026-11-10T00:00:00Z', kept: [1, 2, 3],
  },
  {
    name: 'refused snapshots never count and go',
    times: ['2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z', '2026-11-03T00:00:00Z'],
    tags: { 2: ['refused'] }, keep: 'last 1', now: '2026-11-10T00:00:00Z', kept: [1],
  },
  {
    name: 'combined policy: the union of every rule',
    times: every('2026-11-01T00:00:00Z', 6 * H, 40), // 10 days, 4 a day
    keep: 'last 3, daily 7', now: '2026-11-20T00:00:00Z',
    // last 3: 37,38,39; daily 7: the 18:00 of days 4..10 → 19,23,27,31,35,39
    kept: [15, 19, 23, 27, 31, 35, 37, 38, 39],
  },
  { name: 'no snapshots, nothing to decide', times: [], keep: 'last 3', now: '2026-11-20T00:00:00Z', kept: [] },
];

describe('applyRetention', () => {
  for (const c of cases) {
    it(c.name, () => {
      const input = snaps(c.times, c.tags);
      const out = applyRetention(input, parseRetention(c.keep), new Date(c.now), c.tz ?? 'UTC');
      assert.equal(out.length, input.length);
      const kept = out.flatMap((d, i) => (d.keep ? [i] : []));
      assert.deepEqual(kept, c.kept, out.map((d) => `${d.snapshot.time} ${d.keep} ${d.reasons.join('; ')}`).join('\n'));
      for (const d of out) assert.ok(d.reasons.length > 0, 'every decision says why');
    });
  }

  it('reasons name the rules that keep a snapshot', () => {
    const out = applyRetention(snaps(every('2026-11-01T00:00:00Z', D, 3)), parseRetention('last 1, daily 2'), new Date('2026-12-01T00:00:00Z'));
    assert.deepEqual(out[2]!.reasons, ['newest', 'last 1', 'daily 2 (2026-11-03)']);
    assert.deepEqual(out[1]!.reasons, ['daily 2 (2026-11-02)']);
    assert.deepEqual(out[0]!.reasons, ['no rule keeps it']);
  });
});

describe('forgetJob', () => {
  it('deletes only the forgotten snapshots of its own job, per host; dry run deletes nothing', async () => {
    const clock = new FakeClock('2026-11-20T00:00:00Z');
    const store = new MemoryStore();
    const repo = await Repository.init(store, 'pw', { clock, workers: 1, kdf: { N: 1024, r: 8, p: 1 } });
    const tree = await repo.saveTree({ entries: [] });
    const at = (d: number) => new Date(Date.parse('2026-11-01T00:00:00Z') + d * D);
    for (let d = 0; d < 5; d++) {
      await repo.saveSnapshot({ tree, host: 'h1', job: 'docs', target: 't', source: '/s', time: at(d) });
      await repo.saveSnapshot({ tree, host: 'h2', job: 'docs', target: 't', source: '/s', time: at(d) });
      await repo.saveSnapshot({ tree, host: 'h1', job: 'other', target: 't', source: '/s', time: at(d) });
    }
    await repo.flush();
    const job = { name: 'docs', keep: parseRetention('last 2'), timezone: 'UTC' } as JobConfig;
    const dry = await forgetJob(repo, store, job, { clock, dryRun: true, targetAlias: 't' });
    assert.equal(dry.filter((r) => !r.keep).length, 6);
    assert.equal((await repo.listSnapshots()).length, 15);

    const rows = await forgetJob(repo, store, job, { clock, dryRun: false, targetAlias: 't' });
    assert.equal(rows.filter((r) => r.deleted).length, 6);
    const left = await repo.listSnapshots();
    assert.equal(left.filter((s) => s.job === 'other').length, 5);
    for (const host of ['h1', 'h2']) {
      assert.deepEqual(
        left.filter((s) => s.job === 'docs' && s.host === host).map((s) => s.time),
        [at(3).toISOString(), at(4).toISOString()],
      );
    }
    // The exclusive lock was released: a shared lock can be taken.
    const l = await repo.lock(false);
    await l.release();
    await repo.close();
  });
});

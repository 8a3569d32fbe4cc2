import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openBackupDb, type BackupDb } from '../src/backupdb/index.js';
import { RunGate } from '../src/jobs/run-gate.js';
import { BandwidthManager, budgetPeriod, formatBandwidth, GATE_BUDGET, pacedReads, rateAt } from '../src/node/bandwidth.js';
import { TokenBucket } from '../src/store/token-bucket.js';
import { formatProblem, parseConfig } from '../src/node/config/config.js';
import type { NodeConfig } from '../src/node/config/types.js';
import { parseRateTimetable, parseWindowSet } from '../src/node/config/units.js';
import { FakeClock } from './helpers/fake-clock.js';
import { PacedSink } from './helpers/paced-sink.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const TZ = 'Europe/Berlin';
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function config(...lines: string[]): NodeConfig {
  const { config: c, problems } = parseConfig(lines.join('\n'), { file: '/srv/nj/node.cfg', nodeDir: '/srv/nj' });
  assert.deepEqual(problems.map(formatProblem), []);
  return c!;
}

async function tempDb(clock: FakeClock): Promise<{ db: BackupDb; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'nj-bw-'));
  dirs.push(dir);
  const path = join(dir, 'backupdb.sqlite');
  return { db: await openBackupDb(path, { clock }), path };
}

/** Moves the fake clock in `step` ms steps until `work` settles. */
async function drive<T>(clock: FakeClock, work: Promise<T>, step = 5, maxMs = 3600_000): Promise<T> {
  let done = false;
  const p = work.finally(() => (done = true));
  for (let t = 0; !done && t < maxMs; t += step) await clock.advance(step);
  return p;
}

const TABLE = 'mon-fri 0800-2200 256KiB/s, 2200-0800 4MiB/s, sat,sun off';

test('timetable: weekday boundaries and nights across midnight in Europe/Berlin', () => {
  const t = parseRateTimetable(TABLE);
  const at = (iso: string) => rateAt(t, TZ, new Date(iso));
  // 2024-03-08 is a Friday; Berlin is UTC+1 until 2024-03-31.
  assert.equal(at('2024-03-08T20:59:59+00:00'), 256 * KiB, 'Fri 21:59:59');
  assert.equal(at('2024-03-08T21:00:00+00:00'), 4 * MiB, 'Fri 22:00');
  assert.equal(at('2024-03-08T23:30:00+00:00'), 4 * MiB, 'Sat 00:30, the Friday night goes on');
  assert.equal(at('2024-03-09T06:59:59+00:00'), 4 * MiB, 'Sat 07:59:59');
  assert.equal(at('2024-03-09T07:00:00+00:00'), null, 'Sat 08:00: off');
  assert.equal(at('2024-03-10T12:00:00+00:00'), null, 'Sun noon: off');
  // Days carry forward in a timetable: `2200-0800` is mon-fri too, so no night opens on Sunday.
  assert.equal(at('2024-03-09T22:30:00+00:00'), null, 'Sat 23:30: off');
  assert.equal(at('2024-03-11T06:59:59+00:00'), null, 'Mon 07:59:59: no entry covers it, no limit');
  assert.equal(at('2024-03-11T07:00:00+00:00'), 256 * KiB, 'Mon 08:00');
  assert.equal(at('2024-03-12T06:59:59+00:00'), 4 * MiB, 'Tue 07:59:59, the Monday night');
  assert.equal(at('2024-03-12T22:59:59+00:00'), 4 * MiB, 'Tue 23:59:59');
  assert.equal(at('2024-03-12T23:00:01+00:00'), 4 * MiB, 'Wed 00:00:01');
  // Summer time (UTC+2): the boundary follows the wall clock.
  assert.equal(at('2024-04-02T05:59:59+00:00'), 4 * MiB, 'Tue 07:59:59 CEST');
  assert.equal(at('2024-04-02T06:00:00+00:00'), 256 * KiB, 'Tue 08:00 CEST');
  assert.equal(rateAt(parseRateTimetable('512KiB/s'), TZ, new Date('2024-03-09T03:00:00Z')), 512 * KiB);
  assert.equal(rateAt(null, TZ, new Date(0)), null);
});

test('budget periods: window, day (also a 23 h DST day), week from Monday, month', () => {
  const win = parseWindowSet('2200-0600');
  const p = (per: 'window' | 'day' | 'week' | 'month', iso: string, w = win) => {
    const r = budgetPeriod(per, TZ, w, new Date(iso));
    return [r.start.toISOString(), r.renewsAt?.toISOString() ?? null];
  };
  assert.deepEqual(p('window', '2024-03-08T23:00:00Z'), ['2024-03-08T21:00:00.000Z', '2024-03-09T21:00:00.000Z'], 'in the night window');
  assert.deepEqual(p('window', '2024-03-09T12:00:00Z'), ['2024-03-08T21:00:00.000Z', '2024-03-09T21:00:00.000Z'], 'outside: the last window until the next opens');
  assert.deepEqual(p('day', '2024-03-31T10:00:00Z'), ['2024-03-30T23:00:00.000Z', '2024-03-31T22:00:00.000Z']);
  assert.deepEqual(p('week', '2024-03-06T10:00:00Z'), ['2024-03-03T23:00:00.000Z', '2024-03-10T23:00:00.000Z']);
  assert.deepEqual(p('month', '2024-03-31T21:59:59Z'), ['2024-02-29T23:00:00.000Z', '2024-03-31T22:00:00.000Z']);
  assert.deepEqual(p('month', '2024-12-31T23:00:00Z'), ['2024-12-31T23:00:00.000Z', '2025-01-31T23:00:00.000Z'], 'January in Berlin');
  assert.deepEqual(p('window', '2024-03-08T23:00:00Z', parseWindowSet('always')), ['2024-03-08T23:00:00.000Z', '2024-03-09T23:00:00.000Z'], 'no windows: a day');
});

test('a timetable boundary changes the limit during a running upload (Friday 22:00 Berlin)', async () => {
  const clock = new FakeClock('2024-03-08T20:59:58Z'); // Fri 21:59:58
  const { db } = await tempDb(clock);
  const cfg = config('[node]', 'timezone = Europe/Berlin', `bandwidth = ${TABLE}`, '[targets]', 't = local:/tmp/t', '[backups]', 'b1.source = /data', 'b1.target = t');
  const m = new BandwidthManager({ config: () => cfg, db, clock });
  await m.start({ tick: false });
  const sink = new PacedSink(clock);
  const store = m.wrapStore(sink, { job: 'b1', target: 't' });
  const t0 = clock.nowMs();
  await drive(clock, store.write('data/big', Buffer.alloc(9 * MiB)));
  const before = sink.bytesIn(t0 + 200, t0 + 2000);
  const afterBoundary = sink.bytesIn(t0 + 3000, t0 + 4000);
  assert.ok(Math.abs(before / (1.8 * 256 * KiB) - 1) < 0.05, `before 22:00: ${before / KiB} KiB in 1.8 s`);
  assert.ok(Math.abs(afterBoundary / (4 * MiB) - 1) < 0.05, `after 22:00: ${afterBoundary / MiB} MiB in 1 s`);
  assert.ok(sink.bytesIn(t0 + 2000, t0 + 3000) > 2 * MiB, 'the new limit applies within a second of the boundary');
  await m.stop();
  await db.close();
});

test('a live override takes effect at once, persists across a reopen of the backupdb, and default clears it', async () => {
  const clock = new FakeClock('2024-03-08T12:00:00Z');
  const { db, path } = await tempDb(clock);
  const cfg = config('[targets]', 't = local:/tmp/t', 't.bandwidth = 1MiB/s', '[backups]', 'b1.source = /data', 'b1.target = t', 'b1.bandwidth = 512KiB/s');
  const m = new BandwidthManager({ config: () => cfg, db, clock });
  await m.start({ tick: false });
  assert.equal(m.limitOf('job:b1'), 512 * KiB);
  // An upload waiting at 1 KiB/s is released at once by the override.
  await m.set({ kind: 'job', name: 'b1' }, 1 * KiB);
  const sink = new PacedSink(clock);
  const store = m.wrapStore(sink, { job: 'b1', target: 't' });
  let done = false;
  const w = store.write('data/x', Buffer.alloc(64 * KiB)).then(() => (done = true));
  await clock.advance(500);
  assert.equal(done, false);
  await m.set({ kind: 'job', name: 'b1' }, null); // off: the target's 1 MiB/s is left
  await clock.advance(100);
  await w;
  assert.equal(done, true);
  await m.set({ kind: 'node' }, 2 * MiB);
  await m.stop();
  await db.close();

  const db2 = await openBackupDb(path, { clock });
  const m2 = new BandwidthManager({ config: () => cfg, db: db2, clock });
  await m2.start({ tick: false });
  assert.equal(m2.limitOf('job:b1'), null, 'the override "off" survived');
  assert.equal(m2.limitOf('node'), 2 * MiB);
  const st = await m2.status();
  assert.deepEqual(
    st.limits.map((l) => [l.scope.kind, l.configured, l.override, l.effectiveBytesPerSecond]),
    [
      ['node', 'off', 2 * MiB, 2 * MiB],
      ['target', '1MiB/s', undefined, 1 * MiB],
      ['job', '512KiB/s', null, null],
    ],
  );
  await m2.set({ kind: 'job', name: 'b1' }, 'default');
  await assert.rejects(m2.set({ kind: 'job', name: 'nope' }, 1000), /no job named nope/);
  await assert.rejects(m2.set({ kind: 'node' }, -5), /positive/);
  await m2.stop();
  await db2.close();
  const db3 = await openBackupDb(path, { clock });
  const m3 = new BandwidthManager({ config: () => cfg, db: db3, clock });
  await m3.start({ tick: false });
  assert.equal(m3.limitOf('job:b1'), 512 * KiB, 'cleared: back to node.cfg');
  await db3.close();
});

test('a spent day budget suspends the run through its gate and the next local day resumes it', async () => {
  const clock = new FakeClock('2024-03-08T22:50:00Z'); // Fri 23:50 Berlin
  const { db } = await tempDb(clock);
  const cfg = config('[node]', 'timezone = Europe/Berlin', '[targets]', 't = local:/tmp/t', '[backups]', 'b1.source = /data', 'b1.target = t', 'b1.budget = 1MiB/day', 'b1.bandwidth = 4MiB/s');
  const m = new BandwidthManager({ config: () => cfg, db, clock });
  await m.start();
  const gate = new RunGate();
  const sink = new PacedSink(clock);
  const store = m.wrapStore(sink, { job: 'b1', target: 't', gate });
  await drive(clock, store.write('data/a', Buffer.alloc(1 * MiB)));
  assert.deepEqual(gate.reasons, [GATE_BUDGET], 'spent: the gate closes like at a window close');
  const [budget] = m.budgetStatus();
  assert.equal(budget?.spent, true);
  assert.equal(budget?.renewsAt, '2024-03-08T23:00:00.000Z');
  assert.match(formatBandwidth(await m.status()).join('\n'), /budget of job b1: 1 MiB of 1MiB\/day used — SPENT/);
  // A lock refresh still goes out; a new object waits for the renewal.
  await drive(clock, store.write('locks/l1', Buffer.alloc(100)));
  let written = false;
  const w = store.write('data/b', Buffer.alloc(1000)).then(() => (written = true));
  await drive(clock, clock.sleep(60_000), 500);
  assert.equal(written, false);
  await drive(clock, w, 500);
  assert.ok(clock.nowMs() >= Date.parse('2024-03-08T23:00:00Z'), 'written after local midnight');
  assert.equal(written, true);
  assert.ok(gate.isOpen, 'renewed: the gate reopens');
  assert.equal(m.budgetStatus()[0]?.usedBytes, 1000);
  // Accounting: flushed per minute, per job and target.
  await m.flush();
  assert.equal(await db.usage.usageSince(new Date('2024-03-08T00:00:00Z'), { job: 'b1', target: 't' }), 1 * MiB + 1000 + 100);
  const points = await m.usage({ since: new Date('2024-03-08T00:00:00Z'), job: 'b1', bucketMs: 3600_000 });
  assert.deepEqual(points.map((p) => p.bytes).reduce((a, b) => a + b, 0), 1 * MiB + 1100);
  await store.close();
  await m.stop();
  await db.close();
});

test('a night budget renews when the next window opens; target budgets count every job', async () => {
  const clock = new FakeClock('2024-03-08T21:30:00Z'); // Fri 22:30 Berlin
  const { db } = await tempDb(clock);
  const cfg = config(
    '[node]', 'timezone = Europe/Berlin',
    '[targets]', 't = local:/tmp/t', 't.budget = 3MiB/night',
    '[backups]', 'b1.source = /data', 'b1.target = t', 'b1.allowed_times = 2200-0600', 'b1.budget = 2MiB/night',
    'b2.source = /more', 'b2.target = t', 'b2.allowed_times = 2200-0600',
  );
  const m = new BandwidthManager({ config: () => cfg, db, clock });
  await m.start({ tick: false });
  const g1 = new RunGate();
  const g2 = new RunGate();
  const s1 = m.wrapStore(new PacedSink(clock), { job: 'b1', target: 't', gate: g1 });
  const s2 = m.wrapStore(new PacedSink(clock), { job: 'b2', target: 't', gate: g2 });
  await drive(clock, s1.write('data/a', Buffer.alloc(2 * MiB)));
  assert.deepEqual([g1.isOpen, g2.isOpen], [false, true], 'the job budget holds b1 only');
  await drive(clock, s2.write('data/b', Buffer.alloc(1 * MiB)));
  assert.deepEqual([g1.isOpen, g2.isOpen], [false, false], 'the target budget holds both');
  await clock.advanceTo('2024-03-09T21:00:00Z'); // Sat 22:00: the next window opens
  await m.tick();
  assert.deepEqual([g1.isOpen, g2.isOpen], [true, true]);
  assert.deepEqual(m.budgetStatus().map((b) => [b.name, b.usedBytes, b.periodStart]), [
    ['b1', 0, '2024-03-09T21:00:00.000Z'],
    ['t', 0, '2024-03-09T21:00:00.000Z'],
  ]);
  await m.stop();
  await db.close();
});

test('two jobs sharing the node limit get a fair half each', async () => {
  const clock = new FakeClock('2024-03-08T12:00:00Z');
  const { db } = await tempDb(clock);
  const cfg = config('[node]', 'bandwidth = 1MiB/s', '[targets]', 't = local:/tmp/t', 'u = local:/tmp/u', '[backups]', 'a.source = /a', 'a.target = t', 'b.source = /b', 'b.target = u');
  const m = new BandwidthManager({ config: () => cfg, db, clock });
  await m.start({ tick: false });
  const sink = new PacedSink(clock);
  const sa = m.wrapStore(sink, { job: 'a', target: 't' });
  const sb = m.wrapStore(sink, { job: 'b', target: 'u' });
  const t0 = clock.nowMs();
  const loop = async (s: typeof sa, p: string) => {
    for (let i = 0; clock.nowMs() < t0 + 11_000; i++) await s.write(`${p}/${i}`, Buffer.alloc(700 * KiB));
  };
  await drive(clock, Promise.all([loop(sa, 'a'), loop(sb, 'b')]));
  const a = sink.bytesIn(t0 + 1000, t0 + 11_000, 'a/');
  const b = sink.bytesIn(t0 + 1000, t0 + 11_000, 'b/');
  assert.ok(Math.abs(a / (a + b) - 0.5) < 0.02, `a's share ${a / (a + b)}`);
  assert.ok(Math.abs((a + b) / (10 * MiB) - 1) < 0.02);
  await m.stop();
  await db.close();
});

test('read_bandwidth paces saveFile reads through the gate', async () => {
  const clock = new FakeClock('2024-03-08T12:00:00Z');
  const { db } = await tempDb(clock);
  const cfg = config('[targets]', 't = local:/tmp/t', '[backups]', 'b1.source = /data', 'b1.target = t', 'b1.read_bandwidth = 1MiB/s');
  const m = new BandwidthManager({ config: () => cfg, db, clock });
  await m.start({ tick: false });
  // A fake repository whose saveFile reads 4 MiB in 256 KiB chunks, awaiting the gate before each.
  const repo = {
    other: () => 'untouched',
    async saveFile(_path: Buffer, opts: { gate?: () => Promise<void>; onChunk?: (n: number) => void } = {}) {
      for (let i = 0; i < 16; i++) {
        await opts.gate?.();
        opts.onChunk?.(256 * KiB);
      }
      return 'saved';
    },
  };
  let chunks = 0;
  const paced = m.forRun({ job: 'b1', target: 't' }).wrapRepo(repo);
  assert.equal(paced.other(), 'untouched');
  const t0 = clock.nowMs();
  assert.equal(await drive(clock, paced.saveFile(Buffer.from('/f'), { onChunk: () => chunks++ })), 'saved');
  assert.equal(chunks, 16);
  const s = (clock.nowMs() - t0) / 1000;
  // Each chunk is paid at the next gate: 15 of 16 chunks, less the 20 ms burst.
  assert.ok(s >= 3.5 && s <= 3.8, `4 MiB read at 1 MiB/s took ${s} s`);
  await m.stop();
  await db.close();
});

test('read pacing holds for small files too: the debt of one file is paid at the next file’s gate', async () => {
  const clock = new FakeClock(0);
  const bucket = new TokenBucket(clock, 100 * 1024);
  // A repository whose saveFile reads a whole small file after its only gate, as the workers do.
  const repo = {
    async saveFile(_path: Buffer, opts: { gate?: () => Promise<void>; onChunk?: (n: number) => void } = {}) {
      await opts.gate?.();
      opts.onChunk?.(100 * 1024);
    },
  };
  const paced = pacedReads(repo, () => bucket);
  const work = (async () => {
    for (let i = 0; i < 10; i++) await paced.saveFile(Buffer.from(`f${i}`));
  })();
  let done = false;
  void work.finally(() => (done = true));
  for (let t = 0; !done && t < 60_000; t += 10) await clock.advance(10);
  await work;
  // 10 files of 100 KiB at 100 KiB/s: the first 100 KiB pass on the burst, the rest are paid for.
  assert.ok(clock.nowMs() >= 7_900, `10 small files took ${clock.nowMs()} ms of paced reading`);
});

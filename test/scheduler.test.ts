import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { Clock } from '../src/node/clock.js';
import type { JobConfig } from '../src/node/config/types.js';
import {
  Scheduler,
  type JobRunContext,
  type JobRunner,
  type RunOutcome,
  type SchedulerEvent,
  type SchedulerStore,
} from '../src/jobs/scheduler.js';
import { localTimeText } from '../src/jobs/windows.js';
import { FakeClock } from './helpers/fake-clock.js';
import { jobConfig, ws } from './helpers/window-set.js';

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
const BER = 'Europe/Berlin';
const d = (iso: string) => new Date(iso);

class MemStore implements SchedulerStore {
  readonly last = new Map<string, Date>();
  readonly paused = new Map<string, boolean>();
  failing: string | null = null;
  async lastCompletedAt(job: string): Promise<Date | null> {
    if (this.failing) throw new Error(this.failing);
    return this.last.get(job) ?? null;
  }
  async isPaused(job: string): Promise<boolean> {
    return this.paused.get(job) ?? false;
  }
  async setPaused(job: string, paused: boolean): Promise<void> {
    this.paused.set(job, paused);
  }
}

interface Plan {
  units: number;
  unitMs: number;
  outcome?: RunOutcome;
  throws?: string;
}

/**
 * A runner that "reads" `units` files of `unitMs` each, awaiting the gate before each one,
 * and records completion in the store as the engine does. Progress survives suspension
 * (it lives in the run), so a unit read twice would show in `unitsRead`.
 */
class FakeRunner implements JobRunner {
  readonly starts: Array<{ job: string; at: Date; ctx: JobRunContext }> = [];
  readonly unitsRead: string[] = [];
  readonly progress = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly store: MemStore,
    readonly plans: Record<string, Plan>,
  ) {}

  async start(job: JobConfig, ctx: JobRunContext): Promise<RunOutcome> {
    this.starts.push({ job: job.name, at: this.clock.now(), ctx });
    const plan = this.plans[job.name]!;
    if (plan.throws) throw new Error(plan.throws);
    this.progress.set(job.name, 0);
    for (let i = 0; i < plan.units; i++) {
      await ctx.gate.wait(ctx.signal);
      await this.clock.sleep(plan.unitMs, ctx.signal);
      this.unitsRead.push(`${job.name}#${i}`);
      this.progress.set(job.name, i + 1);
    }
    const outcome = plan.outcome ?? 'completed';
    if (outcome === 'completed' || outcome === 'partial') this.store.last.set(job.name, this.clock.now());
    return outcome;
  }

  progressText(job: JobConfig): string {
    return `${this.progress.get(job.name) ?? 0} of ${this.plans[job.name]!.units} files done`;
  }

  startsOf(job: string): Date[] {
    return this.starts.filter((s) => s.job === job).map((s) => s.at);
  }
}

/** A clock whose wall time can jump without waking anyone: a laptop lid closing. */
class LaptopClock implements Clock {
  private offset = 0;
  constructor(readonly inner: FakeClock) {}
  now(): Date {
    return new Date(this.nowMs());
  }
  nowMs(): number {
    return this.inner.nowMs() + this.offset;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return this.inner.sleep(ms, signal);
  }
  /** The machine sleeps for `ms`: time passes, no timer fires. */
  suspendFor(ms: number): void {
    this.offset += ms;
  }
}

let running: Scheduler[] = [];
afterEach(async () => {
  await Promise.all(running.map((s) => s.stop()));
  running = [];
});

function setup(o: {
  start: string;
  jobs: JobConfig[];
  plans: Record<string, Plan>;
  max?: number;
  last?: Record<string, string>;
  paused?: string[];
  clock?: (fake: FakeClock) => Clock;
}) {
  const fake = new FakeClock(o.start);
  const clock = o.clock ? o.clock(fake) : fake;
  const store = new MemStore();
  for (const [job, at] of Object.entries(o.last ?? {})) store.last.set(job, d(at));
  for (const job of o.paused ?? []) store.paused.set(job, true);
  const runner = new FakeRunner(clock, store, o.plans);
  const events: SchedulerEvent[] = [];
  const sched = new Scheduler({ clock, jobs: o.jobs, store, runner, maxConcurrentJobs: o.max ?? 4, onEvent: (e) => events.push(e) });
  running.push(sched);
  sched.start();
  const status = (name: string) => sched.status().find((s) => s.name === name)!;
  const messages = (job?: string) => events.filter((e) => !job || e.job === job).map((e) => e.message);
  return { fake, clock, store, runner, events, sched, status, messages };
}

const local = (at: Date, tz = BER) => localTimeText(tz, at, { weekday: true });

describe('Scheduler', () => {
  it('3 simulated weeks: a weekly job in a nightly window runs exactly 3 times, each at the opening', async () => {
    const job = jobConfig({ name: 'b1', frequencyMs: WEEK, allowedTimes: ws('2200-0800') });
    const t = setup({ start: '2024-05-06T10:00:00Z', jobs: [job], plans: { b1: { units: 7, unitMs: 10 * MIN } } });
    await t.fake.advance(0);
    assert.equal(t.status('b1').state, 'waiting_window');
    assert.equal(t.status('b1').nextStartAt?.toISOString(), '2024-05-06T20:00:00.000Z');
    assert.ok(t.messages('b1').includes('b1 waiting for window at 22:00 (next window 22:00-08:00)'), t.messages('b1').join('\n'));
    await t.fake.advance(3 * WEEK);
    assert.deepEqual(t.runner.startsOf('b1').map((x) => local(x)), ['Mon 22:00', 'Mon 22:00', 'Mon 22:00']);
    assert.deepEqual(
      t.runner.startsOf('b1').map((x) => x.toISOString()),
      ['2024-05-06T20:00:00.000Z', '2024-05-13T20:00:00.000Z', '2024-05-20T20:00:00.000Z'],
    );
    assert.equal(t.status('b1').lastOutcome, 'completed');
    assert.equal(t.status('b1').state, 'idle');
    assert.equal(t.status('b1').nextStartAt?.toISOString(), '2024-05-27T20:00:00.000Z');
  });

  it('done-when: started 21:59 with window 2200-2201, suspended at 22:01, completed the next night', async () => {
    const job = jobConfig({ name: 'b1', frequencyMs: DAY, allowedTimes: ws('2200-2201') });
    const t = setup({ start: '2024-05-06T19:59:00Z', jobs: [job], plans: { b1: { units: 12, unitMs: 10 * SEC } } });
    await t.fake.advance(0);
    assert.equal(t.runner.starts.length, 0);
    await t.fake.advanceTo('2024-05-06T20:00:00Z');
    assert.deepEqual(t.runner.startsOf('b1').map((x) => x.toISOString()), ['2024-05-06T20:00:00.000Z']);
    assert.equal(t.status('b1').state, 'running');
    await t.fake.advanceTo('2024-05-06T20:01:00Z');
    const s = t.status('b1');
    assert.equal(s.state, 'suspended');
    assert.deepEqual(s.run?.gateReasons, ['window closed']);
    assert.equal(t.runner.starts[0]!.ctx.gate.isOpen, false);
    assert.ok(
      t.messages('b1').some((m) => /^b1 suspended at 22:01: window closed, \d+ of 12 files done, resumes 22:00$/.test(m)),
      t.messages('b1').join('\n'),
    );
    const readBeforeNight = t.runner.unitsRead.length;
    await t.fake.advanceTo('2024-05-07T19:59:59Z');
    assert.equal(t.runner.unitsRead.length, readBeforeNight, 'nothing is read while suspended');
    await t.fake.advanceTo('2024-05-07T20:02:00Z');
    assert.equal(t.status('b1').lastOutcome, 'completed');
    assert.equal(t.runner.starts.length, 1, 'the run continued; it was not started again');
    assert.deepEqual(t.runner.unitsRead, Array.from({ length: 12 }, (_, i) => `b1#${i}`), 'each file read once');
    assert.ok(t.messages('b1').some((m) => m.startsWith('b1 resumed at 22:00')));
  });

  it('a run longer than a window: gate closes at 08:00 sharp, reopens at 22:00, completes', async () => {
    const job = jobConfig({ name: 'big', frequencyMs: WEEK, allowedTimes: ws('2200-0800') });
    const t = setup({ start: '2024-05-06T19:00:00Z', jobs: [job], plans: { big: { units: 84, unitMs: 10 * MIN } } }); // 14 h
    await t.fake.advanceTo('2024-05-07T05:59:59Z'); // 07:59:59
    assert.equal(t.status('big').state, 'running');
    await t.fake.advanceTo('2024-05-07T06:00:00Z'); // 08:00:00
    assert.equal(t.status('big').state, 'suspended');
    assert.equal(t.status('big').run?.suspendedAt?.toISOString(), '2024-05-07T06:00:00.000Z');
    await t.fake.advanceTo('2024-05-07T20:00:00Z');
    assert.equal(t.status('big').state, 'running');
    await t.fake.advanceTo('2024-05-08T06:00:00Z');
    assert.equal(t.status('big').lastOutcome, 'completed');
    // 14 h of work: 10 h the first night (plus the file in flight at 08:00), the rest from 22:00.
    const doneAt = t.status('big').lastOutcomeAt!.getTime();
    assert.ok(doneAt >= d('2024-05-07T23:50:00Z').getTime() && doneAt <= d('2024-05-08T00:00:00Z').getTime());
    assert.equal(new Set(t.runner.unitsRead).size, 84);
    assert.equal(t.runner.unitsRead.length, 84);
  });

  it('finish_job: the window only gates the start', async () => {
    const job = jobConfig({ name: 'fj', frequencyMs: WEEK, allowedTimes: ws('2200-0800'), onWindowClose: 'finish_job' });
    const t = setup({ start: '2024-05-06T19:00:00Z', jobs: [job], plans: { fj: { units: 12, unitMs: HOUR } } });
    await t.fake.advanceTo('2024-05-07T07:00:00Z'); // 09:00, after the close
    assert.equal(t.status('fj').state, 'running');
    assert.equal(t.runner.starts[0]!.ctx.onWindowClose, 'finish_job');
    await t.fake.advanceTo('2024-05-07T08:00:00Z'); // 10:00: 12 h of work done in one go
    assert.equal(t.status('fj').lastOutcome, 'completed');
    assert.equal(t.status('fj').lastOutcomeAt?.toISOString(), '2024-05-07T08:00:00.000Z');
  });

  it('node off for 2 weeks: one catch-up run, then back on rhythm', async () => {
    const job = jobConfig({ name: 'daily', frequencyMs: DAY, allowedTimes: ws('2200-0800') });
    const t = setup({
      start: '2024-05-06T21:00:00Z', // Mon 23:00, inside the window
      jobs: [job],
      plans: { daily: { units: 3, unitMs: 10 * MIN } },
      last: { daily: '2024-04-21T21:30:00Z' },
    });
    await t.fake.advanceTo('2024-05-07T05:59:00Z');
    assert.deepEqual(t.runner.startsOf('daily').map((x) => x.toISOString()), ['2024-05-06T21:00:00.000Z']);
    assert.ok(t.messages('daily').some((m) => m.includes('overdue since') && m.includes('one catch-up run')));
    await t.fake.advanceTo('2024-05-08T06:00:00Z');
    assert.deepEqual(
      t.runner.startsOf('daily').map((x) => local(x)),
      ['Mon 23:00', 'Tue 22:00'],
    );
  });

  it('laptop wakes at 07:55 inside 2200-0800: the overdue job starts once', async () => {
    const job = jobConfig({ name: 'lap', frequencyMs: WEEK, allowedTimes: ws('2200-0800') });
    let laptop!: LaptopClock;
    const t = setup({
      start: '2024-05-06T19:00:00Z', // Mon 21:00
      jobs: [job],
      plans: { lap: { units: 6, unitMs: 10 * MIN } },
      last: { lap: '2024-04-28T20:00:00Z' },
      clock: (fake) => (laptop = new LaptopClock(fake)),
    });
    await t.fake.advance(10 * SEC);
    assert.equal(t.status('lap').state, 'waiting_window');
    laptop.suspendFor(10 * HOUR + 55 * MIN - 10 * SEC); // lid closed 21:00:10, opened 07:55:00
    await t.fake.advance(30 * SEC); // the pending ≤30 s sleep fires late, as a real timer would
    assert.equal(t.runner.starts.length, 1);
    assert.equal(localTimeText(BER, t.runner.starts[0]!.at), '07:55');
    await t.fake.advance(6 * MIN); // 08:01
    assert.equal(t.status('lap').state, 'suspended');
    await t.fake.advance(15 * HOUR); // past 22:00 Tue, the run finishes
    assert.equal(t.status('lap').lastOutcome, 'completed');
    assert.equal(t.runner.starts.length, 1, 'started once, not twice');
    assert.equal(t.runner.unitsRead.length, 6);
  });

  it('pause across a window boundary stays paused; resume continues', async () => {
    const job = jobConfig({ name: 'p', frequencyMs: WEEK, allowedTimes: ws('2200-0800') });
    const t = setup({ start: '2024-05-06T19:59:00Z', jobs: [job], plans: { p: { units: 120, unitMs: 10 * MIN } } }); // 20 h
    await t.fake.advanceTo('2024-05-07T01:00:00Z'); // 03:00
    await t.sched.pause('p');
    await t.fake.advance(10 * MIN); // the unit in flight finishes, then the run parks
    const frozen = t.runner.unitsRead.length;
    assert.deepEqual(t.status('p').run?.gateReasons, ['paused by owner']);
    assert.equal(t.status('p').label, 'paused (running)');
    assert.equal(t.store.paused.get('p'), true, 'the pause is persisted');
    await t.fake.advanceTo('2024-05-07T06:00:00Z'); // 08:00: window closes
    assert.equal(t.status('p').state, 'suspended');
    assert.equal(t.status('p').label, 'paused (suspended)');
    await t.fake.advanceTo('2024-05-07T20:30:00Z'); // 22:30: window open again, still paused
    assert.equal(t.status('p').state, 'running');
    assert.deepEqual(t.status('p').run?.gateReasons, ['paused by owner']);
    assert.equal(t.runner.unitsRead.length, frozen, 'nothing read while paused');
    await t.sched.resume('p');
    await t.fake.advance(HOUR);
    assert.ok(t.runner.unitsRead.length > frozen);
    assert.equal(t.runner.starts.length, 1);
  });

  it('a paused job does not start at its window; resume starts it', async () => {
    const job = jobConfig({ name: 'q', frequencyMs: WEEK, allowedTimes: ws('2200-0800') });
    const t = setup({ start: '2024-05-06T19:00:00Z', jobs: [job], plans: { q: { units: 1, unitMs: MIN } }, paused: ['q'] });
    await t.fake.advanceTo('2024-05-06T21:00:00Z');
    assert.equal(t.runner.starts.length, 0);
    assert.equal(t.status('q').label, 'paused');
    await t.sched.resume('q');
    await t.fake.advance(0);
    assert.equal(t.runner.starts.length, 1);
    assert.equal(localTimeText(BER, t.runner.starts[0]!.at), '23:00');
  });

  it('pauseAll / resumeAll', async () => {
    const jobs = ['a', 'b'].map((name) => jobConfig({ name, frequencyMs: DAY }));
    const t = setup({ start: '2024-05-06T10:00:00Z', jobs, plans: { a: { units: 10, unitMs: MIN }, b: { units: 10, unitMs: MIN } } });
    await t.fake.advance(0);
    await t.sched.pauseAll();
    assert.ok(t.sched.status().every((s) => s.paused && s.run?.gateReasons.includes('paused by owner')));
    await t.sched.resumeAll();
    await t.fake.advance(11 * MIN);
    assert.ok(t.sched.status().every((s) => s.lastOutcome === 'completed'));
  });

  it('cancel a running job: cancelled, not restarted in the same window, runs next night', async () => {
    const job = jobConfig({ name: 'c', frequencyMs: DAY, allowedTimes: ws('2200-0800') });
    const t = setup({ start: '2024-05-06T19:59:00Z', jobs: [job], plans: { c: { units: 60, unitMs: 10 * MIN } } });
    await t.fake.advanceTo('2024-05-06T21:00:00Z'); // 23:00
    assert.equal(await t.sched.cancel('c'), true);
    await t.fake.advance(0);
    assert.equal(t.status('c').lastOutcome, 'cancelled');
    assert.equal(t.status('c').state, 'idle');
    assert.ok(t.messages('c').some((m) => m.startsWith('c cancelled at 23:00 after 1h; next run not before 22:00')), t.messages('c').join('\n'));
    await t.fake.advanceTo('2024-05-07T05:59:00Z');
    assert.equal(t.runner.starts.length, 1);
    await t.fake.advanceTo('2024-05-07T20:00:01Z');
    assert.deepEqual(t.runner.startsOf('c').map((x) => local(x)), ['Mon 22:00', 'Tue 22:00']);
    assert.equal(await t.sched.cancel('c'), true);
    await t.fake.advance(0);
    assert.equal(await t.sched.cancel('c'), false, 'nothing left to cancel');
  });

  it('cancel a job waiting for its window skips that start', async () => {
    const job = jobConfig({ name: 'w', frequencyMs: DAY, allowedTimes: ws('2200-0800') });
    const t = setup({ start: '2024-05-06T10:00:00Z', jobs: [job], plans: { w: { units: 1, unitMs: MIN } } });
    await t.fake.advance(0);
    assert.equal(t.status('w').state, 'waiting_window');
    assert.equal(await t.sched.cancel('w'), true);
    await t.fake.advanceTo('2024-05-06T21:00:00Z');
    assert.equal(t.runner.starts.length, 0);
    assert.equal(t.status('w').state, 'idle');
  });

  it('maxConcurrentJobs = 1: the second due job waits for a free slot', async () => {
    const jobs = ['a', 'b'].map((name) => jobConfig({ name, frequencyMs: DAY }));
    const t = setup({ start: '2024-05-06T10:00:00Z', jobs, max: 1, plans: { a: { units: 6, unitMs: 10 * MIN }, b: { units: 6, unitMs: 10 * MIN } } });
    await t.fake.advance(0);
    assert.equal(t.status('a').state, 'running');
    assert.equal(t.status('b').state, 'waiting_slot');
    assert.equal(t.status('b').label, 'waiting for a free slot');
    assert.ok(t.messages('b').includes('b waiting for a free slot (1 of 1 jobs running)'));
    await t.fake.advance(HOUR);
    assert.deepEqual(
      t.runner.starts.map((s) => [s.job, s.at.toISOString()]),
      [
        ['a', '2024-05-06T10:00:00.000Z'],
        ['b', '2024-05-06T11:00:00.000Z'],
      ],
    );
    await t.fake.advance(HOUR);
    assert.equal(t.status('b').lastOutcome, 'completed');
  });

  it('a suspended run frees its slot; to resume it waits for one', async () => {
    const jobs = [
      jobConfig({ name: 'night', frequencyMs: WEEK, allowedTimes: ws('2200-0800') }),
      jobConfig({ name: 'day', frequencyMs: WEEK, allowedTimes: ws('0900-2330') }),
    ];
    const t = setup({
      start: '2024-05-06T21:45:00Z', // Mon 23:45: night starts, day's window has closed
      jobs,
      max: 1,
      plans: { night: { units: 20, unitMs: HOUR }, day: { units: 14, unitMs: HOUR } },
    });
    await t.fake.advanceTo('2024-05-07T07:00:00Z'); // Tue 09:00
    assert.equal(t.status('night').state, 'suspended');
    assert.deepEqual(t.runner.startsOf('day').map((x) => local(x)), ['Tue 09:00'], 'the suspended run does not hold the slot');
    await t.fake.advanceTo('2024-05-07T20:30:00Z'); // Tue 22:30: night's window is open, day still running
    assert.equal(t.status('night').state, 'suspended');
    assert.deepEqual(t.status('night').run?.gateReasons, ['waiting for a free slot']);
    assert.ok(t.messages('night').some((m) => m.startsWith('night window open, waiting for a free slot to resume')));
    await t.fake.advanceTo('2024-05-07T21:00:01Z'); // day completes at 23:00
    assert.equal(t.status('day').lastOutcome, 'completed');
    assert.equal(t.status('night').state, 'running');
    assert.ok(t.messages('night').includes('night resumed at 23:00 (window 22:00-08:00)'), t.messages('night').join('\n'));
  });

  it('a failing job is retried with backoff and never stops the loop', async () => {
    const jobs = [jobConfig({ name: 'bad', frequencyMs: DAY }), jobConfig({ name: 'good', frequencyMs: HOUR })];
    const t = setup({ start: '2024-05-06T10:00:00Z', jobs, plans: { bad: { units: 0, unitMs: 0, throws: 'disk on fire' }, good: { units: 1, unitMs: MIN } } });
    await t.fake.advance(30 * MIN);
    assert.equal(t.status('bad').lastOutcome, 'failed');
    assert.equal(t.status('bad').lastError, 'disk on fire');
    assert.deepEqual(t.runner.startsOf('bad').map((x) => x.toISOString()), ['2024-05-06T10:00:00.000Z', '2024-05-06T10:05:00.000Z', '2024-05-06T10:20:00.000Z']);
    assert.ok(t.messages('bad').some((m) => /^bad failed at 12:00: disk on fire; retry not before 12:05$/.test(m)));
    assert.equal(t.status('good').lastOutcome, 'completed');
    // The store fails for a while: reported once, then scheduling carries on.
    t.store.failing = 'SQLITE_BUSY: database is locked';
    await t.fake.advance(2 * HOUR);
    assert.equal(t.messages('good').filter((m) => m.includes('database is locked')).length, 1);
    const before = t.runner.startsOf('good').length;
    t.store.failing = null;
    await t.fake.advance(31 * SEC);
    assert.equal(t.runner.startsOf('good').length, before + 1);
  });

  it('refused and partial outcomes', async () => {
    const jobs = [jobConfig({ name: 'r', frequencyMs: DAY }), jobConfig({ name: 'p', frequencyMs: DAY })];
    const t = setup({ start: '2024-05-06T10:00:00Z', jobs, plans: { r: { units: 0, unitMs: 0, outcome: 'refused' }, p: { units: 1, unitMs: MIN, outcome: 'partial' } } });
    await t.fake.advance(2 * MIN);
    assert.equal(t.status('r').lastOutcome, 'refused');
    assert.equal(t.status('r').failures, 1);
    assert.equal(t.status('p').lastOutcome, 'partial');
    assert.equal(t.status('p').nextStartAt?.toISOString(), '2024-05-07T10:01:00.000Z');
  });

  it('run now: waits for the window, or ignores it when asked', async () => {
    const jobs = [
      jobConfig({ name: 'n', frequencyMs: WEEK, allowedTimes: ws('2200-0800') }),
      jobConfig({ name: 'i', frequencyMs: WEEK, allowedTimes: ws('2200-0800') }),
    ];
    const t = setup({
      start: '2024-05-06T10:00:00Z',
      jobs,
      plans: { n: { units: 1, unitMs: MIN }, i: { units: 30, unitMs: MIN } },
      last: { n: '2024-05-05T22:00:00Z', i: '2024-05-05T22:00:00Z' },
    });
    await t.fake.advance(0);
    assert.equal(t.status('n').state, 'idle');
    assert.equal(await t.sched.runNow('n'), 'queued');
    assert.equal(await t.sched.runNow('i', { ignoreWindow: true }), 'queued');
    await t.fake.advance(0);
    assert.equal(t.status('n').state, 'waiting_window');
    assert.equal(t.status('i').state, 'running');
    assert.equal(t.runner.startsOf('i')[0]?.toISOString(), '2024-05-06T10:00:00.000Z');
    assert.equal(t.runner.starts.find((s) => s.job === 'i')!.ctx.ignoreWindow, true);
    assert.equal(await t.sched.runNow('i'), 'already_running');
    await t.fake.advance(31 * MIN);
    assert.equal(t.status('i').lastOutcome, 'completed', 'never suspended outside the window');
    await t.fake.advanceTo('2024-05-06T20:00:00Z');
    assert.deepEqual(t.runner.startsOf('n').map((x) => x.toISOString()), ['2024-05-06T20:00:00.000Z']);
    await assert.rejects(t.sched.runNow('nope'), /no job named "nope"/);
  });

  it('only one run per job even when due again while running', async () => {
    const job = jobConfig({ name: 'o', frequencyMs: MIN });
    const t = setup({ start: '2024-05-06T10:00:00Z', jobs: [job], plans: { o: { units: 10, unitMs: MIN } } });
    await t.fake.advance(9 * MIN);
    assert.equal(t.runner.starts.length, 1);
    await t.fake.advance(2 * MIN);
    assert.equal(t.runner.starts.length, 2);
  });

  it('the loop sleeps at most 30 s at a time', async () => {
    const fake = new FakeClock('2024-05-06T10:00:00Z');
    const sleeps: number[] = [];
    const spy: Clock = { now: () => fake.now(), nowMs: () => fake.nowMs(), sleep: (ms, s) => (sleeps.push(ms), fake.sleep(ms, s)) };
    const store = new MemStore();
    store.last.set('x', d('2024-05-06T09:00:00Z'));
    const sched = new Scheduler({
      clock: spy,
      jobs: [jobConfig({ name: 'x', frequencyMs: WEEK, allowedTimes: ws('2200-0800') })],
      store,
      runner: new FakeRunner(spy, store, { x: { units: 1, unitMs: 1 } }),
      maxConcurrentJobs: 1,
    });
    running.push(sched);
    sched.start();
    await fake.advance(DAY);
    assert.ok(Math.max(...sleeps) <= 30 * SEC);
    assert.ok(sleeps.length >= DAY / (30 * SEC));
  });

  it('stop() resolves promptly, aborting live runs', async () => {
    const job = jobConfig({ name: 's', frequencyMs: DAY });
    const t = setup({ start: '2024-05-06T10:00:00Z', jobs: [job], plans: { s: { units: 100, unitMs: HOUR } } });
    await t.fake.advance(0);
    assert.equal(t.status('s').state, 'running');
    await t.sched.stop(); // no clock advance needed
    assert.equal(t.runner.starts[0]!.ctx.signal.aborted, true);
    assert.ok(t.messages('s').some((m) => m.includes('because the node is stopping')));
  });

  it('status shows state, next start and window', async () => {
    const job = jobConfig({ name: 'st', frequencyMs: WEEK, allowedTimes: ws('2200-2400', '0000-0800') });
    const t = setup({ start: '2024-05-06T10:00:00Z', jobs: [job], plans: { st: { units: 1, unitMs: MIN } }, last: { st: '2024-05-05T21:00:00Z' } });
    await t.fake.advance(0);
    const s = t.status('st');
    assert.equal(s.state, 'idle');
    assert.equal(s.nextStartAt?.toISOString(), '2024-05-12T20:00:00.000Z');
    assert.equal(s.window.current, null);
    assert.equal(s.window.next?.opensAt.toISOString(), '2024-05-06T20:00:00.000Z');
    assert.equal(s.window.next?.closesAt?.toISOString(), '2024-05-07T06:00:00.000Z');
    assert.equal(s.window.spec, '2200-2400,0000-0800');
  });
});

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { RunGate } from '../src/jobs/run-gate.js';
import { GATE_PAUSED, GATE_SLOT, GATE_WINDOW, Scheduler, type JobRunContext, type JobRunner, type RunOutcome, type SchedulerStore } from '../src/jobs/scheduler.js';
import type { JobConfig } from '../src/node/config/types.js';
import { FakeClock } from './helpers/fake-clock.js';
import { jobConfig, ws } from './helpers/window-set.js';

const DAY = 86_400_000;
let running: Scheduler[] = [];
afterEach(async () => {
  await Promise.all(running.map((s) => s.stop()));
  running = [];
});

describe('Scheduler and a run left unfinished by a previous process', () => {
  it('continues it at the next window although the frequency has not elapsed, once', async () => {
    const clock = new FakeClock('2024-05-06T10:00:00Z');
    const starts: Array<{ at: string; reason: string }> = [];
    const runner: JobRunner = {
      start: async (_job: JobConfig, ctx: JobRunContext): Promise<RunOutcome> => {
        starts.push({ at: clock.now().toISOString(), reason: ctx.reason });
        unfinished = false;
        last = clock.now();
        return 'completed';
      },
    };
    let unfinished = true;
    let last: Date | null = new Date('2024-05-06T06:00:00Z'); // completed this morning: not due for a day
    const store: SchedulerStore = {
      lastCompletedAt: async () => last,
      isPaused: async () => false,
      hasUnfinishedRun: async () => unfinished,
    };
    const events: string[] = [];
    const sched = new Scheduler({
      clock,
      jobs: [jobConfig({ name: 'b1', frequencyMs: DAY, allowedTimes: ws('2200-0800'), timezone: 'UTC' })],
      store,
      runner,
      maxConcurrentJobs: 1,
      onEvent: (e) => events.push(e.message),
    });
    running.push(sched);
    sched.start();
    await clock.advance(0);
    assert.ok(events.includes('b1 waiting for window at 22:00 (next window 22:00-08:00)'), events.join('\n'));
    await clock.advanceTo('2024-05-07T08:00:00Z');
    assert.deepEqual(starts, [{ at: '2024-05-06T22:00:00.000Z', reason: 'continuing the run the node was stopped in' }]);
  });
});

describe('RunGate.wait with ignored reasons (finish_file chunk boundaries)', () => {
  it('lets a caller through a closed window, but not through a pause', async () => {
    const gate = new RunGate();
    gate.close(GATE_WINDOW);
    gate.close(GATE_SLOT);
    let passed = false;
    await gate.wait(undefined, [GATE_WINDOW, GATE_SLOT]).then(() => (passed = true));
    assert.equal(passed, true);
    gate.close(GATE_PAUSED);
    let chunk = false;
    let file = false;
    void gate.wait(undefined, [GATE_WINDOW, GATE_SLOT]).then(() => (chunk = true));
    void gate.wait().then(() => (file = true));
    assert.equal(gate.isOpenIgnoring([GATE_WINDOW, GATE_SLOT]), false);
    gate.open(GATE_PAUSED);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([chunk, file], [true, false], 'the pause ended: chunks go on, the file boundary stays parked');
    gate.open(GATE_WINDOW);
    gate.open(GATE_SLOT);
    await new Promise((r) => setImmediate(r));
    assert.equal(file, true);
  });
});

/**
 * The scheduler loop: starts each job when it is due and inside its window, suspends its
 * run when the window closes (by closing the run's gate) and reopens the gate at the next
 * window, so the run continues in memory. Owner controls (pause, resume, run now, cancel)
 * are one in-process API for the web UI and the CLI.
 *
 * Time: the loop never sleeps more than 30 s and re-reads the clock after every sleep
 * (a laptop that wakes at 07:55 inside 2200-0800 starts its overdue job once). It sleeps
 * until the earliest of the next start, window close or window opening it cares about, so
 * transitions happen on time, and is woken early by every owner control and finished run.
 *
 * Truth: the last successful completion is read from the store (the backupdb) on every
 * tick, never remembered instead of it (backrest); the scheduler only keeps the completion
 * of a run it saw finish, as a floor, so a store that has not recorded it yet cannot cause
 * a second run. The paused flags are read from the store at start and written through on
 * change. A failing job (or store) is logged and retried; nothing stops the loop but stop().
 */
import type { Clock } from '../node/clock.js';
import type { JobConfig, OnWindowClose } from '../node/config/types.js';
import { durationText } from './eta.js';
import { RunGate } from './run-gate.js';
import { describeState, stateForOutcome, transition, type RunOutcome, type RunState } from './run-state.js';
import { nextRunAt, type NextRun } from './schedule.js';
import {
  currentWindow,
  isInWindow,
  localTimeText,
  nextAllowedAt,
  nextWindowOpen,
  windowText,
  type CurrentWindow,
  type NextWindow,
} from './windows.js';

export type { RunOutcome } from './run-state.js';

/** Upper bound of one sleep of the loop (croner and kopia use 15–30 s). */
export const MAX_SLEEP_MS = 30_000;
/** Waits before retrying a failed or refused run: 5 min, 15 min, then hourly. */
export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [5 * 60_000, 15 * 60_000, 60 * 60_000];

/** Gate reasons the scheduler uses. */
export const GATE_WINDOW = 'window closed';
export const GATE_PAUSED = 'paused by owner';
export const GATE_SLOT = 'waiting for a free slot';

/** What a runner gets for one run. */
export interface JobRunContext {
  /** Await `gate.wait(signal)` at every chunk/file boundary: closed = suspended or paused. */
  readonly gate: RunGate;
  /** Aborted on cancel (reason: CancelledError) or node stop (reason: SchedulerStoppingError). */
  readonly signal: AbortSignal;
  /** The job's `on_window_close`: `finish_file` runners stop at a file boundary when the gate closes. */
  readonly onWindowClose: OnWindowClose;
  /** True for run-now with `--ignore-window`: the window never gates this run. */
  readonly ignoreWindow: boolean;
  /** Why the run started, in plain words. */
  readonly reason: string;
}

/** The backup engine as the scheduler sees it. */
export interface JobRunner {
  /**
   * Runs `job` to its end and reports how it ended. It must await `ctx.gate.wait(ctx.signal)`
   * between units of work and end promptly when `ctx.signal` aborts. A thrown error counts
   * as `failed` (`cancelled` when the run was cancelled).
   */
  start(job: JobConfig, ctx: JobRunContext): Promise<RunOutcome>;
  /** Optional progress for messages (`12,345 of 40,102 files done`), or null. */
  progressText?(job: JobConfig): string | null;
}

/** Persistent job state the scheduler reads (the backupdb implements it). Keys are job names. */
export interface SchedulerStore {
  /** End of the last successful (completed or partial) run, or null. */
  lastCompletedAt(job: string): Promise<Date | null>;
  /** Whether the owner paused the job (survives restarts). */
  isPaused(job: string): Promise<boolean>;
  /** Persists a pause/resume; optional (without it pause lasts until the node stops). */
  setPaused?(job: string, paused: boolean): Promise<void>;
  /**
   * Whether the job has a run left unfinished by a previous node process (killed, or
   * stopped while running or suspended). Read once at start: such a job starts at its next
   * window whatever its frequency says, and the runner continues that run. Optional.
   */
  hasUnfinishedRun?(job: string): Promise<boolean>;
}

export type SchedulerEventKind =
  | 'scheduled'
  | 'waiting_window'
  | 'waiting_slot'
  | 'started'
  | 'suspended'
  | 'resumed'
  | 'paused'
  | 'unpaused'
  | 'run_now'
  | 'completed'
  | 'partial'
  | 'failed'
  | 'cancelled'
  | 'error';

/** One transition in plain words (`b1 suspended at 08:00: window closed, resumes 22:00`). */
export interface SchedulerEvent {
  readonly at: Date;
  readonly job: string | null;
  readonly kind: SchedulerEventKind;
  readonly message: string;
}

export interface SchedulerLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface SchedulerOptions {
  readonly clock: Clock;
  readonly jobs: readonly JobConfig[];
  readonly store: SchedulerStore;
  readonly runner: JobRunner;
  /**
   * At most this many runs working at once; at least 1. A suspended run does not count (it
   * waits, possibly for days); when its window opens it needs a free slot to resume.
   */
  readonly maxConcurrentJobs: number;
  readonly log?: SchedulerLog;
  /** Every event, synchronously; errors thrown here are ignored. */
  readonly onEvent?: (event: SchedulerEvent) => void;
  /** Longest single sleep, at most (and by default) MAX_SLEEP_MS. */
  readonly maxSleepMs?: number;
  readonly retryDelaysMs?: readonly number[];
}

/** One job as `status()` shows it. */
export interface JobStatus {
  readonly name: string;
  readonly state: RunState;
  readonly paused: boolean;
  readonly enabled: boolean;
  /** State in plain words: `waiting for window`, `paused (suspended)`. */
  readonly label: string;
  /** Next planned start (null while running, paused, disabled or unplannable). */
  readonly nextStartAt: Date | null;
  readonly nextStartReason: string | null;
  readonly window: {
    readonly spec: string;
    readonly timezone: string;
    readonly current: CurrentWindow | null;
    readonly next: NextWindow | null;
  };
  readonly run: {
    readonly startedAt: Date;
    readonly suspendedAt: Date | null;
    readonly ignoreWindow: boolean;
    readonly gateReasons: readonly string[];
    /** Time spent not suspended since the start (for the achieved rate behind the ETA). */
    readonly activeMs: number;
  } | null;
  readonly lastOutcome: RunOutcome | null;
  readonly lastOutcomeAt: Date | null;
  readonly lastError: string | null;
  /** Failures in a row (reset by a successful run). */
  readonly failures: number;
}

/** What `runNow` did. */
export type RunNowResult = 'queued' | 'already_running' | 'paused';

/** The abort reason of a run the owner cancelled. */
export class CancelledError extends Error {
  readonly code = 'NJ_CANCELLED';
  constructor(message = 'cancelled by owner') {
    super(message);
    this.name = 'AbortError';
  }
}

/** The abort reason of runs interrupted because the node stops. */
export class SchedulerStoppingError extends Error {
  readonly code = 'NJ_STOPPING';
  constructor() {
    super('the node is stopping');
    this.name = 'AbortError';
  }
}

/** A control named a job the scheduler does not have. */
export class UnknownJobError extends Error {
  readonly code = 'NJ_UNKNOWN_JOB';
  constructor(readonly job: string) {
    super(`no job named "${job}"`);
    this.name = 'UnknownJobError';
  }
}

interface LiveRun {
  readonly gate: RunGate;
  readonly abort: AbortController;
  readonly startedAt: Date;
  ignoreWindow: boolean;
  suspendedAt: Date | null;
  /** Time spent not suspended, up to `activeSince` (null while suspended). */
  activeMs: number;
  activeSince: Date | null;
  cancelled: boolean;
  stopping: boolean;
  done: Promise<void>;
}

interface Entry {
  readonly job: JobConfig;
  readonly index: number;
  state: RunState;
  paused: boolean;
  request: { ignoreWindow: boolean } | null;
  /** A run left unfinished by a previous process waits to be continued. */
  unfinished: boolean;
  run: LiveRun | null;
  /** No automatic start before this (after a failure or a cancel). */
  notBefore: Date | null;
  failures: number;
  lastOutcome: RunOutcome | null;
  lastOutcomeAt: Date | null;
  lastError: string | null;
  /** Completion of a run seen finishing here: a floor under the store's value. */
  seenCompletedAt: Date | null;
  plan: NextRun | null;
  /** Inputs `plan` was computed from (last completion, notBefore). */
  planKey: string | null;
  planError: string | null;
  waitingSince: number | null;
  /** Last waiting/scheduled announcement, so each is said once. */
  announced: string | null;
}

/**
 * Runs the jobs' schedules. Build it, call `start()`, and `await stop()` on shutdown.
 * Controls (`pause`, `resume`, `pauseAll`, `resumeAll`, `runNow`, `cancel`) take effect at
 * once: the loop is woken, and pause closes a running job's gate immediately.
 */
export class Scheduler {
  private readonly clock: Clock;
  private readonly store: SchedulerStore;
  private readonly runner: JobRunner;
  private readonly maxConcurrent: number;
  private readonly maxSleepMs: number;
  private readonly retryDelays: readonly number[];
  private readonly log: SchedulerLog | null;
  private readonly onEvent: ((e: SchedulerEvent) => void) | null;
  private readonly entries: Entry[];
  private readonly byName = new Map<string, Entry>();
  private loopDone: Promise<void> | null = null;
  private wakeCtl: AbortController | null = null;
  private pokes = 0;
  private stopping = false;

  constructor(opts: SchedulerOptions) {
    this.clock = opts.clock;
    this.store = opts.store;
    this.runner = opts.runner;
    this.maxConcurrent = Math.max(1, Math.floor(opts.maxConcurrentJobs || 1));
    this.maxSleepMs = Math.min(MAX_SLEEP_MS, Math.max(1, opts.maxSleepMs ?? MAX_SLEEP_MS));
    this.retryDelays = opts.retryDelaysMs?.length ? opts.retryDelaysMs : DEFAULT_RETRY_DELAYS_MS;
    this.log = opts.log ?? null;
    this.onEvent = opts.onEvent ?? null;
    this.entries = opts.jobs.map((job, index) => ({
      job,
      index,
      state: 'idle',
      paused: false,
      request: null,
      unfinished: false,
      run: null,
      notBefore: null,
      failures: 0,
      lastOutcome: null,
      lastOutcomeAt: null,
      lastError: null,
      seenCompletedAt: null,
      plan: null,
      planKey: null,
      planError: null,
      waitingSince: null,
      announced: null,
    }));
    for (const e of this.entries) this.byName.set(e.job.name, e);
  }

  /** Starts the loop (idempotent). Paused flags are loaded from the store first. */
  start(): void {
    if (this.loopDone || this.stopping) return;
    this.loopDone = this.loop();
  }

  /**
   * Stops the loop and, unless `abortRuns` is false, aborts every live run (signal reason
   * SchedulerStoppingError; the engine checkpoints and the next start resumes from the
   * backupdb). Resolves once the loop and the aborted runs have ended.
   */
  async stop(opts: { abortRuns?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.poke();
    const runs: Promise<void>[] = [];
    for (const e of this.entries) {
      if (!e.run) continue;
      if (opts.abortRuns !== false) {
        e.run.stopping = true;
        e.run.abort.abort(new SchedulerStoppingError());
        runs.push(e.run.done);
      }
    }
    await Promise.allSettled([this.loopDone ?? Promise.resolve(), ...runs]);
  }

  /** Pauses a job: no new run starts, and a live run parks at its next chunk boundary. */
  async pause(name: string): Promise<void> {
    const e = this.entry(name);
    if (!e.paused) {
      e.paused = true;
      e.run?.gate.close(GATE_PAUSED);
      const progress = e.run ? this.progress(e) : null;
      this.event(e, 'paused', `${name} paused by owner at ${this.hm(e, this.clock.now())}${progress ? `: ${progress}` : ''}`);
    }
    await this.persistPause(e);
    this.poke();
  }

  /** Undoes `pause`: the job is scheduled again and a live run continues (if its window allows). */
  async resume(name: string): Promise<void> {
    const e = this.entry(name);
    if (e.paused) {
      e.paused = false;
      e.run?.gate.open(GATE_PAUSED);
      e.announced = null;
      this.event(e, 'unpaused', `${name} resumed by owner at ${this.hm(e, this.clock.now())}`);
    }
    await this.persistPause(e);
    this.poke();
  }

  /** Pauses every job. */
  async pauseAll(): Promise<void> {
    for (const e of this.entries) await this.pause(e.job.name);
  }

  /** Resumes every job. */
  async resumeAll(): Promise<void> {
    for (const e of this.entries) await this.resume(e.job.name);
  }

  /**
   * Starts a run as soon as allowed regardless of the job's frequency: at once inside its
   * window (or anywhere with `ignoreWindow`), else at the next opening. A live run is not
   * started twice (`already_running`; with `ignoreWindow` a suspended run continues now).
   * A paused job keeps the request until it is resumed (`paused`).
   */
  async runNow(name: string, opts: { ignoreWindow?: boolean } = {}): Promise<RunNowResult> {
    const e = this.entry(name);
    const ignoreWindow = opts.ignoreWindow === true;
    if (e.run) {
      if (ignoreWindow && !e.run.ignoreWindow) {
        e.run.ignoreWindow = true;
        this.poke();
      }
      return 'already_running';
    }
    e.request = { ignoreWindow };
    e.notBefore = null;
    e.announced = null;
    this.event(e, 'run_now', `${name}: run now requested${ignoreWindow ? ' (ignoring the window)' : ''}`);
    this.poke();
    return e.paused ? 'paused' : 'queued';
  }

  /**
   * Cancels a job's live run (its signal aborts with CancelledError), or its pending start
   * (a run-now request, or the due run it is waiting to start). A cancelled due run is
   * skipped until the job's next regular due time. Returns false when there was nothing.
   */
  async cancel(name: string): Promise<boolean> {
    const e = this.entry(name);
    const now = this.clock.now();
    if (e.run) {
      if (!e.run.cancelled) {
        e.run.cancelled = true;
        e.run.abort.abort(new CancelledError());
      }
      return true;
    }
    if (e.request || e.state === 'waiting_window' || e.state === 'waiting_slot') {
      e.request = null;
      e.unfinished = false;
      e.notBefore = this.skipUntil(e, now);
      if (e.state !== 'idle') {
        e.state = transition(e.state, 'cancelled');
        e.state = transition(e.state, 'idle');
      }
      e.waitingSince = null;
      e.announced = null;
      this.event(e, 'cancelled', `${name} cancelled before it started; next run not before ${this.when(e, e.notBefore, now)}`);
      this.poke();
      return true;
    }
    return false;
  }

  /** Every job's state, next start and window, as of now. */
  status(): JobStatus[] {
    const now = this.clock.now();
    return this.entries.map((e) => {
      const { allowedTimes: set, timezone: tz } = e.job;
      let current: CurrentWindow | null = null;
      let next: NextWindow | null = null;
      try {
        current = currentWindow(set, tz, now);
        next = nextWindowOpen(set, tz, now);
      } catch {
        // Shown without window details; the error is in planError/lastError.
      }
      const showPlan = !e.run && !e.paused && e.job.enabled;
      return {
        name: e.job.name,
        state: e.state,
        paused: e.paused,
        enabled: e.job.enabled,
        label: e.job.enabled ? describeState(e.state, e.paused) : 'disabled',
        nextStartAt: showPlan ? (e.plan?.at ?? null) : null,
        nextStartReason: showPlan ? (e.planError ?? e.plan?.reason ?? null) : null,
        window: { spec: set.spec, timezone: tz, current, next },
        run: e.run
          ? {
              startedAt: e.run.startedAt,
              suspendedAt: e.run.suspendedAt,
              ignoreWindow: e.run.ignoreWindow,
              gateReasons: e.run.gate.reasons,
              activeMs: e.run.activeMs + (e.run.activeSince ? Math.max(0, now.getTime() - e.run.activeSince.getTime()) : 0),
            }
          : null,
        lastOutcome: e.lastOutcome,
        lastOutcomeAt: e.lastOutcomeAt,
        lastError: e.lastError ?? e.planError,
        failures: e.failures,
      };
    });
  }

  /** The live run's gate of a job (for the engine adapter and tests), or null. */
  gateOf(name: string): RunGate | null {
    return this.entry(name).run?.gate ?? null;
  }

  // ------------------------------------------------------------------ the loop

  private async loop(): Promise<void> {
    for (const e of this.entries) {
      try {
        e.paused = await this.store.isPaused(e.job.name);
      } catch (err) {
        this.log?.warn(`${e.job.name}: could not read the paused flag: ${message(err)}`);
      }
      try {
        e.unfinished = e.job.enabled && (await this.store.hasUnfinishedRun?.(e.job.name)) === true;
      } catch (err) {
        this.log?.warn(`${e.job.name}: could not look for an unfinished run: ${message(err)}`);
      }
    }
    while (!this.stopping) {
      this.pokes = 0;
      let wakeAt: number;
      try {
        wakeAt = await this.tick();
      } catch (err) {
        // Defensive: tick() catches per job; this keeps the loop alive whatever happens.
        this.log?.error(`scheduler: ${message(err)}`);
        wakeAt = this.clock.nowMs() + this.maxSleepMs;
      }
      if (this.stopping) break;
      if (this.pokes > 0) continue; // something changed while we were busy: look again
      const delay = Math.min(this.maxSleepMs, Math.max(1, wakeAt - this.clock.nowMs()));
      const ctl = new AbortController();
      this.wakeCtl = ctl;
      try {
        await this.clock.sleep(delay, ctl.signal);
      } catch {
        // Woken early by a control, a finished run or stop().
      } finally {
        if (this.wakeCtl === ctl) this.wakeCtl = null;
      }
    }
  }

  /** One look at every job; returns when the loop should look again (epoch ms). */
  private async tick(): Promise<number> {
    let wakeAt = Number.POSITIVE_INFINITY;
    const dueNow: Entry[] = [];
    const resumable: Entry[] = [];
    for (const e of this.entries) {
      const now = this.clock.now();
      try {
        const next = e.run ? this.tickRun(e, now, resumable) : await this.tickIdle(e, now, dueNow);
        if (next !== null && next > now.getTime()) wakeAt = Math.min(wakeAt, next);
        e.planError = null;
      } catch (err) {
        const msg = message(err);
        if (e.planError !== msg) {
          e.planError = msg;
          this.event(e, 'error', `${e.job.name}: cannot schedule: ${msg}`, 'error');
        }
      }
    }
    // Suspended runs whose window is open again go first: they hold work in memory.
    resumable.sort((a, b) => (a.run!.suspendedAt?.getTime() ?? 0) - (b.run!.suspendedAt?.getTime() ?? 0) || a.index - b.index);
    for (const e of resumable) {
      if (this.stopping) break;
      const now = this.clock.now();
      if (this.activeRuns() < this.maxConcurrent) {
        this.resumeRun(e, now);
      } else {
        e.run!.gate.close(GATE_SLOT);
        e.run!.gate.open(GATE_WINDOW);
        this.announce(e, 'waiting_slot', 'resume', () => `${e.job.name} window open, waiting for a free slot to resume (${this.activeRuns()} of ${this.maxConcurrent} jobs running)`);
      }
    }
    // Free slots go to the jobs that have waited longest, then in config order.
    dueNow.sort((a, b) => (a.waitingSince ?? Infinity) - (b.waitingSince ?? Infinity) || a.index - b.index);
    for (const e of dueNow) {
      if (this.stopping) break;
      const now = this.clock.now();
      if (this.activeRuns() < this.maxConcurrent) {
        this.startRun(e, now);
        continue;
      }
      if (e.state !== 'waiting_slot') e.state = transition(e.state, 'waiting_slot');
      e.waitingSince ??= now.getTime();
      this.announce(
        e,
        'waiting_slot',
        'slot',
        () => `${e.job.name} waiting for a free slot (${this.activeRuns()} of ${this.maxConcurrent} jobs running)`,
      );
    }
    return wakeAt;
  }

  /**
   * A job with a live run: suspend it when its window closed; when a suspended run's window
   * is open again, put it on `resumable` (the slot check decides). Returns the next boundary.
   */
  private tickRun(e: Entry, now: Date, resumable: Entry[]): number | null {
    const run = e.run!;
    const { allowedTimes: set, timezone: tz } = e.job;
    const windowGates = !run.ignoreWindow && e.job.onWindowClose !== 'finish_job';
    const inWindow = isInWindow(set, tz, now);
    if (windowGates && !inWindow) {
      run.gate.close(GATE_WINDOW);
      run.gate.open(GATE_SLOT); // a run waiting for a slot to resume is back to waiting for its window
      if (e.state !== 'suspended') {
        run.suspendedAt = now;
        if (run.activeSince) run.activeMs += Math.max(0, now.getTime() - run.activeSince.getTime());
        run.activeSince = null;
        e.state = transition(e.state, 'suspended');
        const progress = this.progress(e);
        const next = nextWindowOpen(set, tz, now);
        this.event(
          e,
          'suspended',
          `${e.job.name} suspended at ${this.hm(e, now)}: window closed${progress ? `, ${progress}` : ''}` +
            (next ? `, resumes ${this.when(e, next.opensAt, now)}` : ''),
        );
      }
      return nextWindowOpen(set, tz, now)?.opensAt.getTime() ?? null;
    }
    if (e.state === 'suspended') resumable.push(e);
    if (!windowGates) return null;
    return currentWindow(set, tz, now)?.closesAt?.getTime() ?? null;
  }

  private resumeRun(e: Entry, now: Date): void {
    const run = e.run!;
    const { allowedTimes: set, timezone: tz } = e.job;
    run.gate.open(GATE_WINDOW);
    run.gate.open(GATE_SLOT);
    run.suspendedAt = null;
    run.activeSince = now;
    e.state = transition(e.state, 'running');
    e.announced = null;
    const w = currentWindow(set, tz, now);
    this.event(
      e,
      'resumed',
      `${e.job.name} resumed at ${this.hm(e, now)}` +
        (run.ignoreWindow ? ' (ignoring the window)' : w ? ` (window ${windowText(tz, w)})` : '') +
        (e.paused ? '; still paused by owner' : ''),
    );
  }

  /** A job without a run: plan its next start; pushes it on `dueNow` when it should start. */
  private async tickIdle(e: Entry, now: Date, dueNow: Entry[]): Promise<number | null> {
    if (!e.job.enabled || e.paused) {
      this.toIdle(e);
      e.plan = null;
      return null;
    }
    const stored = await this.store.lastCompletedAt(e.job.name);
    if (e.run || e.paused || this.stopping) return null; // changed while we awaited the store
    const last = latest(stored, e.seenCompletedAt);
    const { allowedTimes: set, timezone: tz } = e.job;
    let plan: NextRun;
    if (e.request || e.unfinished) {
      const at = e.request?.ignoreWindow ? now : nextAllowedAt(set, tz, now);
      if (!at) throw new RangeError(`allowed_times "${set.spec}" never opens`);
      const reason = e.request ? 'run now requested by owner' : 'continuing the run the node was stopped in';
      plan = { at, dueAt: now, reason, waitsForWindow: at.getTime() > now.getTime() };
    } else {
      // The plan depends on `now` only once it is reached, so an unchanged one is reused.
      const key = `${last?.getTime() ?? '-'}|${e.notBefore?.getTime() ?? '-'}`;
      if (e.plan && e.planKey === key && e.plan.at.getTime() > now.getTime()) {
        plan = e.plan;
      } else {
        plan = nextRunAt(e.job, last, now);
        if (e.notBefore && e.notBefore.getTime() > plan.at.getTime()) {
          const at = nextAllowedAt(set, tz, e.notBefore) ?? e.notBefore;
          plan = { ...plan, at, waitsForWindow: false, reason: `${plan.reason}; held until ${this.when(e, e.notBefore, now)} after the last ${e.lastOutcome ?? 'attempt'}` };
        }
      }
      e.planKey = key;
    }
    e.plan = plan;
    const at = plan.at.getTime();
    if (at <= now.getTime()) {
      dueNow.push(e);
      return null;
    }
    if (plan.waitsForWindow && plan.dueAt.getTime() <= now.getTime()) {
      if (e.state !== 'waiting_window') e.state = transition(this.toIdle(e), 'waiting_window');
      this.announce(e, 'waiting_window', `w${at}`, () => {
        const next = nextWindowOpen(set, tz, now);
        return `${e.job.name} waiting for window at ${this.when(e, plan.at, now)}` + (next ? ` (next window ${windowText(tz, next)})` : '');
      });
    } else {
      this.toIdle(e);
      this.announce(e, 'scheduled', `s${at}`, () => `${e.job.name} next run ${this.when(e, plan.at, now)} (${plan.reason})`);
    }
    return at;
  }

  private startRun(e: Entry, now: Date): void {
    const ignoreWindow = e.request?.ignoreWindow ?? false;
    const reason = e.plan?.reason ?? 'due';
    e.request = null;
    e.unfinished = false;
    e.notBefore = null;
    e.waitingSince = null;
    e.announced = null;
    e.state = transition(e.state, 'running');
    const gate = new RunGate();
    const run: LiveRun = {
      gate,
      abort: new AbortController(),
      startedAt: now,
      ignoreWindow,
      suspendedAt: null,
      activeMs: 0,
      activeSince: now,
      cancelled: false,
      stopping: false,
      done: Promise.resolve(),
    };
    e.run = run;
    this.event(e, 'started', `${e.job.name} started at ${this.hm(e, now)} (${reason})`);
    const ctx: JobRunContext = { gate, signal: run.abort.signal, onWindowClose: e.job.onWindowClose, ignoreWindow, reason };
    run.done = Promise.resolve()
      .then(() => this.runner.start(e.job, ctx))
      .then(
        (outcome) => this.finishRun(e, run, outcome, null),
        (err: unknown) => this.finishRun(e, run, 'failed', err),
      )
      .catch((err: unknown) => this.log?.error(`${e.job.name}: scheduler bookkeeping failed: ${message(err)}`));
  }

  private finishRun(e: Entry, run: LiveRun, reported: RunOutcome, err: unknown): void {
    if (e.run !== run) return;
    const now = this.clock.now();
    let outcome = reported;
    // A cancelled run that gave up (threw, or said failed) is cancelled, not failed.
    if (run.cancelled && outcome !== 'completed' && outcome !== 'partial') outcome = 'cancelled';
    e.run = null;
    e.state = transition(e.state, stateForOutcome(outcome));
    e.lastOutcome = outcome;
    e.lastOutcomeAt = now;
    e.lastError = err ? message(err) : outcome === 'refused' ? 'the run refused to start' : null;
    const took = durationText(now.getTime() - run.startedAt.getTime()) || '0s';
    let text: string;
    if (outcome === 'completed' || outcome === 'partial') {
      e.seenCompletedAt = now;
      e.failures = 0;
      e.notBefore = null;
      text = `${e.job.name} ${outcome === 'completed' ? 'completed' : 'completed partially'} at ${this.hm(e, now)} after ${took}`;
    } else if (run.stopping) {
      text = `${e.job.name} interrupted at ${this.hm(e, now)} because the node is stopping; it resumes at the next start`;
    } else if (outcome === 'cancelled') {
      e.notBefore = this.skipUntil(e, now);
      text = `${e.job.name} cancelled at ${this.hm(e, now)} after ${took}; next run not before ${this.when(e, e.notBefore, now)}`;
    } else {
      e.failures++;
      const delay = this.retryDelays[Math.min(e.failures, this.retryDelays.length) - 1]!;
      e.notBefore = new Date(now.getTime() + delay);
      text =
        `${e.job.name} ${outcome === 'refused' ? 'refused to run' : 'failed'} at ${this.hm(e, now)}` +
        `${e.lastError ? `: ${e.lastError}` : ''}; retry not before ${this.when(e, e.notBefore, now)}`;
    }
    this.event(e, stateForOutcome(outcome) as SchedulerEventKind, text, outcome === 'completed' || outcome === 'partial' ? 'info' : 'warn');
    e.state = transition(e.state, 'idle');
    this.poke();
  }

  // ------------------------------------------------------------------ helpers

  private entry(name: string): Entry {
    const e = this.byName.get(name);
    if (!e) throw new UnknownJobError(name);
    return e;
  }

  /**
   * Runs holding a slot: live and not suspended. A suspended run frees its slot for jobs
   * whose windows are open, and needs one again to resume.
   */
  private activeRuns(): number {
    let n = 0;
    for (const e of this.entries) if (e.run && e.state === 'running') n++;
    return n;
  }

  /** Waiting states fall back to idle (pause, disable); other states are left alone. */
  private toIdle(e: Entry): RunState {
    if (e.state === 'waiting_window' || e.state === 'waiting_slot') {
      e.state = transition(e.state, 'idle');
      e.waitingSince = null;
    }
    return e.state;
  }

  /** After a cancel: the next regular due time, as if the skipped run had completed now. */
  private skipUntil(e: Entry, now: Date): Date {
    try {
      return nextRunAt(e.job, now, now).at;
    } catch {
      return new Date(now.getTime() + this.retryDelays[0]!);
    }
  }

  private async persistPause(e: Entry): Promise<void> {
    try {
      await this.store.setPaused?.(e.job.name, e.paused);
    } catch (err) {
      this.log?.warn(`${e.job.name}: could not store the paused flag: ${message(err)}`);
    }
  }

  private progress(e: Entry): string | null {
    try {
      return this.runner.progressText?.(e.job) ?? null;
    } catch {
      return null;
    }
  }

  private poke(): void {
    this.pokes++;
    this.wakeCtl?.abort();
  }

  /** Emits an event once per distinct `key` (waiting and scheduled announcements). */
  private announce(e: Entry, kind: SchedulerEventKind, key: string, text: () => string): void {
    const k = `${kind}:${key}`;
    if (e.announced === k) return;
    e.announced = k;
    this.event(e, kind, text(), kind === 'scheduled' ? null : 'info');
  }

  private event(e: Entry | null, kind: SchedulerEventKind, text: string, level: 'info' | 'warn' | 'error' | null = 'info'): void {
    if (level) this.log?.[level](text);
    try {
      this.onEvent?.({ at: this.clock.now(), job: e?.job.name ?? null, kind, message: text });
    } catch {
      // The listener's problem, not the scheduler's.
    }
  }

  /** `22:00` in the job's zone. */
  private hm(e: Entry, at: Date): string {
    return localTimeText(e.job.timezone, at);
  }

  /** `22:00` within the next 24 h, else `Thu 22:00` (or with the date beyond six days). */
  private when(e: Entry, at: Date, now: Date): string {
    const d = at.getTime() - now.getTime();
    if (d >= 0 && d < 24 * 3_600_000) return localTimeText(e.job.timezone, at);
    return localTimeText(e.job.timezone, at, Math.abs(d) < 6 * 86_400_000 ? { weekday: true } : { date: true });
  }
}

function latest(a: Date | null, b: Date | null): Date | null {
  if (!a) return b;
  if (!b) return a;
  return a.getTime() >= b.getTime() ? a : b;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The node's bandwidth manager (issue 5): upload limits (node-wide, per target, per job)
 * from rclone-style timetables and live overrides, byte budgets that suspend a run like
 * a window close, per-minute accounting in the backupdb, and the read limit of a job.
 *
 * Time: every decision uses the injected clock. Timetables are re-resolved at least once
 * a second (a tick) and at each slice when the last resolution is a second old, so a
 * limit changes at its boundary during a running upload, across midnight and on the
 * next day. Node and target timetables are read in `[node] timezone`, a job's in the
 * job's time zone.
 */
import type { BackupDb } from '../backupdb/index.js';
import type { UsageSample } from '../backupdb/usage.js';
import type { RunGate } from '../jobs/run-gate.js';
import { currentWindow, isAlwaysOpen, isInWindow, localDate, localMidnight, nextWindowOpen, previousWindowOpen } from '../jobs/windows.js';
import type { Store } from '../store/store.js';
import { chainThrottle, throttleStore, type UploadThrottle } from '../store/throttled-store.js';
import { TokenBucket } from '../store/token-bucket.js';
import type { BandwidthControls, BandwidthLimitStatus, BandwidthScope, BandwidthStatus, UsagePoint } from '../wui/controls.js';
import type { Clock } from './clock.js';
import type { Budget, NodeConfig, RateTimetable, WindowSet } from './config/types.js';
import { formatBytes } from './config/units.js';

/** The gate reason a spent budget closes a run's gate with. */
export const GATE_BUDGET = 'budget spent';
/** Settings key prefix of live overrides (`bandwidth.override.node`, `….target.ALIAS`, `….job.NAME`). */
export const OVERRIDE_PREFIX = 'bandwidth.override.';

const RESOLVE_EVERY_MS = 1000;
const DAY_MS = 86_400_000;

// ---------------------------------------------------------------- zone math

/** Start of the local day holding `ms` in `tz` (for rolling usage up into local days). */
export function localDayStart(tz: string, ms: number): number {
  const p = localDate(tz, ms);
  return localMidnight(tz, p.y, p.m, p.d);
}

// ---------------------------------------------------------------- timetables and budgets

const entrySets = new WeakMap<object, WindowSet>();

/**
 * The limit a timetable sets at `at` (bytes/s, null = no limit): the first entry whose
 * window covers `at` in `tz` (windows.ts rules: days name the day an entry opens, so
 * `fri 2200-0600` runs into Saturday), none = no limit; a null table = no limit.
 */
export function rateAt(table: RateTimetable | null, tz: string, at: Date): number | null {
  if (!table) return null;
  for (const entry of table.entries) {
    let set = entrySets.get(entry);
    if (!set) entrySets.set(entry, (set = { spec: table.spec, windows: [entry] }));
    if (isInWindow(set, tz, at)) return entry.bytesPerSecond;
  }
  return null;
}

/** One budget period: `[start, renewsAt)`; renewsAt null = never (a window set that never opens again). */
export interface BudgetPeriod {
  readonly start: Date;
  readonly renewsAt: Date | null;
}

/**
 * The budget period holding `at`, in `tz`: `day` from local midnight, `week` from Monday
 * 00:00, `month` from the 1st 00:00, each renewing at the next one; `window` from the
 * opening of the current allowed window (outside one: the latest window's opening)
 * until the next window opens. Without windows (or always open) `window` is a day.
 */
export function budgetPeriod(per: Budget['per'], tz: string, windows: WindowSet | null, at: Date): BudgetPeriod {
  const ms = at.getTime();
  if (per === 'window' && windows && windows.windows.length > 0 && !isAlwaysOpen(windows, tz)) {
    const cw = currentWindow(windows, tz, at);
    if (cw?.openedAt) {
      const next = cw.closesAt ? nextWindowOpen(windows, tz, cw.closesAt) : null;
      return { start: cw.openedAt, renewsAt: next?.opensAt ?? null };
    }
    const prev = previousWindowOpen(windows, tz, at);
    const next = nextWindowOpen(windows, tz, at);
    return { start: prev ?? new Date(localDayStart(tz, ms)), renewsAt: next?.opensAt ?? null };
  }
  const p = localDate(tz, ms);
  if (per === 'month') return { start: new Date(localMidnight(tz, p.y, p.m, 1)), renewsAt: new Date(localMidnight(tz, p.y, p.m + 1, 1)) };
  if (per === 'week') {
    const back = (p.weekday + 6) % 7; // days since Monday
    return { start: new Date(localMidnight(tz, p.y, p.m, p.d - back)), renewsAt: new Date(localMidnight(tz, p.y, p.m, p.d - back + 7)) };
  }
  return { start: new Date(localMidnight(tz, p.y, p.m, p.d)), renewsAt: new Date(localMidnight(tz, p.y, p.m, p.d + 1)) };
}

// ---------------------------------------------------------------- the manager

/** A budget as status shows it (`nightjar status`, the API). */
export interface BudgetStatus {
  readonly scope: 'job' | 'target';
  readonly name: string;
  /** As configured: `20GiB/night`. */
  readonly spec: string;
  readonly bytes: number;
  /** Bytes sent in the current period. */
  readonly usedBytes: number;
  readonly periodStart: string;
  /** When the budget renews (ISO), or null for never. */
  readonly renewsAt: string | null;
  readonly spent: boolean;
}

/** BandwidthStatus plus the budgets (the shape `/api/v1/bandwidth` may serve). */
export interface BandwidthReport extends BandwidthStatus {
  readonly budgets: readonly BudgetStatus[];
}

export interface BandwidthManagerOptions {
  /** The config in force (re-read at every resolution, so a reload applies). */
  readonly config: () => NodeConfig;
  readonly db: BackupDb;
  readonly clock: Clock;
  readonly log?: { warn(message: string): void; info(message: string): void };
  /** How often sent bytes are written to `db.usage` (default 5 s). */
  readonly flushIntervalMs?: number;
  /** Minute rows older than this are rolled up into days (default 7 days). */
  readonly rollUpAfterMs?: number;
}

/** What one run (a job writing to a target) gets: see BandwidthManager.forRun. */
export interface RunBandwidth {
  /** The store, throttled for this run; closing it ends the run's registration. */
  wrapStore(store: Store): Store;
  /** The repository with `saveFile` reads paced by the job's read_bandwidth. */
  wrapRepo<R extends object>(repo: R): R;
}

interface BudgetState {
  readonly key: string;
  readonly scope: 'job' | 'target';
  readonly name: string;
  readonly budget: Budget;
  start: number;
  renewsAt: number | null;
  used: number;
}

/** A run as it registers with the manager (see forRun). */
export interface RunRegistration {
  readonly job: string;
  readonly target: string;
  readonly gate?: RunGate;
  readonly signal?: AbortSignal;
  /**
   * Awaited before each object upload starts, after the budget check: the runner holds
   * uploads here while the run is paused or suspended (an upload already sending finishes).
   */
  readonly uploadGate?: (name: string) => Promise<void>;
}

interface Run {
  readonly job: string;
  readonly target: string;
  readonly gate: RunGate | null;
}

/**
 * Owns every bucket of the node and implements the web UI's BandwidthControls. Build it
 * from config, backupdb and clock; `start()` loads the persisted overrides and starts the
 * once-a-second tick (timetables, budget renewals, usage flush, roll-up); `stop()`
 * flushes the accounting. Runs get their throttled store with `forRun(...).wrapStore`.
 *
 * Budgets: a job budget counts the job's bytes, a target budget every job's bytes to the
 * target (a target's `/night` budget uses the windows of the first job writing to it).
 * When either is spent, the run's gate is closed with reason `budget spent` (the run
 * suspends exactly as at a window close), new writes wait (lock refreshes excepted),
 * a write already sending finishes; the gate reopens when the budget renews.
 */
export class BandwidthManager implements BandwidthControls {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly overrides = new Map<string, number | null>();
  private readonly budgets = new Map<string, BudgetState>();
  private readonly runs = new Set<Run>();
  /** Sent bytes not yet in db.usage, per `job\0target\0minute`; `flushing` is the batch being written. */
  private pending = new Map<string, number>();
  private flushing = new Map<string, number>();
  /** Bytes per whole second, for the current rate. */
  private readonly perSecond = new Map<number, number>();
  private lastResolveMs = -Infinity;
  private lastFlushMs: number;
  private lastRollUpMs = -Infinity;
  private loopAbort: AbortController | null = null;
  private loopDone: Promise<void> = Promise.resolve();
  private refreshing: Promise<void> | null = null;

  constructor(private readonly o: BandwidthManagerOptions) {
    this.lastFlushMs = o.clock.nowMs();
  }

  /** Loads the overrides kept in the backupdb, resolves every limit and budget, starts the tick. */
  async start(opts: { tick?: boolean } = {}): Promise<void> {
    for (const [key, value] of await this.o.db.settings.list(OVERRIDE_PREFIX)) {
      const v = (value as { bytesPerSecond?: unknown } | null)?.bytesPerSecond;
      if (v === null || (typeof v === 'number' && v > 0)) this.overrides.set(key.slice(OVERRIDE_PREFIX.length), v);
    }
    this.resolve();
    await this.refreshBudgets();
    if (opts.tick === false) return;
    const abort = (this.loopAbort = new AbortController());
    this.loopDone = (async () => {
      while (!abort.signal.aborted) {
        try {
          await this.o.clock.sleep(RESOLVE_EVERY_MS, abort.signal);
        } catch {
          return;
        }
        try {
          await this.tick();
        } catch (err) {
          this.o.log?.warn(`bandwidth: ${(err as Error).message}`);
        }
      }
    })();
  }

  /** Stops the tick and writes the remaining accounting. Idempotent. */
  async stop(): Promise<void> {
    this.loopAbort?.abort();
    await this.loopDone;
    await this.flush();
  }

  /**
   * One tick: re-resolve limits, flush accounting when due, refresh budgets (renewals
   * reopen gates), roll up old usage hourly. The loop calls it every second; tests may
   * call it directly.
   */
  async tick(): Promise<void> {
    this.resolve();
    const now = this.o.clock.nowMs();
    if (now - this.lastFlushMs >= (this.o.flushIntervalMs ?? 5000)) await this.flush();
    await this.refreshBudgets();
    if (now - this.lastRollUpMs >= 3600_000) {
      this.lastRollUpMs = now;
      const tz = this.o.config().node.timezone;
      await this.o.db.usage.rollUp(new Date(now - (this.o.rollUpAfterMs ?? 7 * DAY_MS)), (ms) => localDayStart(tz, ms));
    }
  }

  /** The limit in force for a bucket key (`node`, `target:A`, `job:J`, `read:J`). */
  limitOf(key: string): number | null {
    this.maybeResolve();
    return this.bucket(key).bytesPerSecond;
  }

  /**
   * What a run of `job` writing to `target` uses. `gate` is closed with `budget spent`
   * while a budget of the job or target is spent; `signal` aborts waiting. The run is
   * registered when its store is wrapped and unregistered when that store is closed.
   */
  forRun(run: RunRegistration): RunBandwidth {
    return {
      wrapStore: (store) => this.wrapStore(store, run),
      wrapRepo: (repo) => pacedReads(repo, () => this.limitedBucket(`read:${run.job}`), run.signal),
    };
  }

  /** The store throttled by the node, target and job limits, accounted to job/target (job '' = no job). */
  wrapStore(store: Store, run: RunRegistration): Store {
    const reg: Run = { job: run.job, target: run.target, gate: run.gate ?? null };
    this.runs.add(reg);
    if (this.isSpentFor(reg)) reg.gate?.close(GATE_BUDGET);
    const keys = [...(run.job ? [`job:${run.job}`] : []), `target:${run.target}`, 'node'];
    const chain = chainThrottle(
      () => {
        this.maybeResolve();
        return keys.map((k) => this.bucket(k));
      },
      { ...(run.signal ? { signal: run.signal } : {}), onSent: (n) => this.sent(reg, n) },
    );
    const throttle: UploadThrottle = {
      sliceBytes: () => chain.sliceBytes(),
      take: (n) => chain.take(n),
      beforeWrite: async (name) => {
        await this.waitForBudget(reg, name, run.signal);
        await run.uploadGate?.(name);
      },
      close: () => {
        this.runs.delete(reg);
        reg.gate?.open(GATE_BUDGET);
      },
    };
    return throttleStore(store, throttle);
  }

  // ------------------------------------------------------------ BandwidthControls

  async status(): Promise<BandwidthReport> {
    this.resolve();
    const config = this.o.config();
    const limit = (scope: BandwidthScope, key: string, table: RateTimetable | null): BandwidthLimitStatus => ({
      scope,
      configured: table?.spec ?? 'off',
      ...(this.overrides.has(key) ? { override: this.overrides.get(key)! } : {}),
      effectiveBytesPerSecond: this.bucket(key).bytesPerSecond,
    });
    const limits: BandwidthLimitStatus[] = [limit({ kind: 'node' }, 'node', config.node.bandwidth)];
    for (const t of Object.values(config.targets)) limits.push(limit({ kind: 'target', name: t.alias }, `target:${t.alias}`, t.bandwidth));
    for (const j of Object.values(config.jobs)) limits.push(limit({ kind: 'job', name: j.name }, `job:${j.name}`, j.bandwidth));
    return { limits, currentBytesPerSecond: this.currentRate(), budgets: this.budgetStatus() };
  }

  /**
   * Sets (a number of bytes/s, or null = no limit) or clears (`'default'`: back to
   * node.cfg) the live override of a limit. Takes effect at once, also for uploads
   * waiting now; persists in the backupdb until cleared. Throws for an unknown job or
   * target, or a limit that is not a positive number.
   */
  async set(scope: BandwidthScope, limit: number | null | 'default'): Promise<void> {
    const config = this.o.config();
    if (scope.kind === 'job' && !Object.hasOwn(config.jobs, scope.name)) throw new Error(`no job named ${scope.name}`);
    if (scope.kind === 'target' && !Object.hasOwn(config.targets, scope.name)) throw new Error(`no target named ${scope.name}`);
    if (limit !== null && limit !== 'default' && !(typeof limit === 'number' && Number.isFinite(limit) && limit > 0)) {
      throw new Error(`a bandwidth limit must be a positive number of bytes per second, null (off) or 'default'`);
    }
    const key = scope.kind === 'node' ? 'node' : `${scope.kind}:${scope.name}`;
    const settingsKey = OVERRIDE_PREFIX + key;
    if (limit === 'default') {
      this.overrides.delete(key);
      await this.o.db.settings.delete(settingsKey);
    } else {
      this.overrides.set(key, limit);
      await this.o.db.settings.set(settingsKey, { bytesPerSecond: limit });
    }
    this.resolve();
    this.o.log?.info(`bandwidth: ${key} limit ${limit === 'default' ? 'back to node.cfg' : limit === null ? 'set to off' : `set to ${formatBytes(limit)}/s`}`);
  }

  async usage(query: { since: Date; job?: string; target?: string; bucketMs: number }): Promise<readonly UsagePoint[]> {
    const bucketMs = Math.max(60_000, query.bucketMs);
    const sums = new Map<number, number>();
    const add = (at: number, bytes: number) => {
      const b = Math.floor(at / bucketMs) * bucketMs;
      sums.set(b, (sums.get(b) ?? 0) + bytes);
    };
    const rows = await this.o.db.usage.listUsage({
      since: query.since,
      ...(query.job !== undefined ? { job: query.job } : {}),
      ...(query.target !== undefined ? { target: query.target } : {}),
    });
    for (const r of rows) add(r.at.getTime(), r.bytes);
    for (const [job, target, at, bytes] of this.unflushed()) {
      if (at < query.since.getTime()) continue;
      if ((query.job !== undefined && job !== query.job) || (query.target !== undefined && target !== query.target)) continue;
      add(at, bytes);
    }
    return [...sums.entries()].sort((a, b) => a[0] - b[0]).map(([at, bytes]) => ({ at: new Date(at).toISOString(), bytes }));
  }

  /** Every configured budget with its period and what was sent in it. */
  budgetStatus(): BudgetStatus[] {
    return [...this.budgets.values()].map((s) => ({
      scope: s.scope,
      name: s.name,
      spec: s.budget.spec,
      bytes: s.budget.bytes,
      usedBytes: s.used,
      periodStart: new Date(s.start).toISOString(),
      renewsAt: s.renewsAt === null ? null : new Date(s.renewsAt).toISOString(),
      spent: s.used >= s.budget.bytes,
    }));
  }

  /** Writes the bytes counted so far to `db.usage` (one transaction). */
  async flush(): Promise<void> {
    this.lastFlushMs = this.o.clock.nowMs();
    if (this.pending.size === 0 || this.flushing.size > 0) return;
    this.flushing = this.pending;
    this.pending = new Map();
    const batch: UsageSample[] = [];
    for (const [key, bytes] of this.flushing) {
      const [job, target, at] = key.split('\0') as [string, string, string];
      batch.push({ job, target, bytes, at: new Date(Number(at)) });
    }
    try {
      await this.o.db.usage.addUsage(batch);
    } catch (err) {
      // Keep the bytes for the next flush.
      for (const [key, bytes] of this.flushing) this.pending.set(key, (this.pending.get(key) ?? 0) + bytes);
      throw err;
    } finally {
      this.flushing = new Map();
    }
  }

  // ------------------------------------------------------------ internals

  private bucket(key: string): TokenBucket {
    let b = this.buckets.get(key);
    if (!b) {
      b = new TokenBucket(this.o.clock, this.configuredRate(key));
      this.buckets.set(key, b);
    }
    return b;
  }

  private limitedBucket(key: string): TokenBucket | null {
    const b = this.bucket(key);
    this.maybeResolve();
    return b.bytesPerSecond === null ? null : b;
  }

  /** The rate a key should have now: the override, else its timetable at the current time. */
  private configuredRate(key: string): number | null {
    if (this.overrides.has(key)) return this.overrides.get(key)!;
    const config = this.o.config();
    const at = this.o.clock.now();
    if (key === 'node') return rateAt(config.node.bandwidth, config.node.timezone, at);
    const colon = key.indexOf(':');
    const kind = key.slice(0, colon);
    const name = key.slice(colon + 1);
    if (kind === 'target') return rateAt(config.targets[name]?.bandwidth ?? null, config.node.timezone, at);
    const job = config.jobs[name];
    if (!job) return null;
    return rateAt(kind === 'read' ? job.readBandwidth : job.bandwidth, job.timezone, at);
  }

  private resolve(): void {
    this.lastResolveMs = this.o.clock.nowMs();
    for (const [key, b] of this.buckets) b.setRate(this.configuredRate(key));
  }

  private maybeResolve(): void {
    if (this.o.clock.nowMs() - this.lastResolveMs >= RESOLVE_EVERY_MS) this.resolve();
  }

  private sent(run: Run, bytes: number): void {
    const now = this.o.clock.nowMs();
    const key = `${run.job}\0${run.target}\0${Math.floor(now / 60_000) * 60_000}`;
    this.pending.set(key, (this.pending.get(key) ?? 0) + bytes);
    const sec = Math.floor(now / 1000);
    this.perSecond.set(sec, (this.perSecond.get(sec) ?? 0) + bytes);
    if (this.perSecond.size > 20) for (const s of this.perSecond.keys()) if (s < sec - 10) this.perSecond.delete(s);
    for (const key of [`job:${run.job}`, `target:${run.target}`]) {
      const s = this.budgets.get(key);
      if (!s || now < s.start) continue;
      const was = s.used >= s.budget.bytes;
      s.used += bytes;
      if (!was && s.used >= s.budget.bytes) {
        this.o.log?.info(`bandwidth: the budget of ${s.scope} ${s.name} (${s.budget.spec}) is spent; its runs suspend until ${s.renewsAt === null ? 'never' : new Date(s.renewsAt).toISOString()}`);
        for (const r of this.runs) if (this.isSpentFor(r)) r.gate?.close(GATE_BUDGET);
      }
    }
  }

  /** Bytes per second over the last 5 whole seconds. */
  private currentRate(): number {
    const sec = Math.floor(this.o.clock.nowMs() / 1000);
    let sum = 0;
    for (let s = sec - 5; s < sec; s++) sum += this.perSecond.get(s) ?? 0;
    return Math.round(sum / 5);
  }

  private *unflushed(): Generator<[string, string, number, number]> {
    for (const m of [this.flushing, this.pending]) {
      for (const [key, bytes] of m) {
        const [job, target, at] = key.split('\0') as [string, string, string];
        yield [job, target, Number(at), bytes];
      }
    }
  }

  private isSpentFor(run: Run): boolean {
    for (const key of [`job:${run.job}`, `target:${run.target}`]) {
      const s = this.budgets.get(key);
      if (s && s.used >= s.budget.bytes) return true;
    }
    return false;
  }

  /** Recomputes every budget's period and use (db + unflushed), then opens or closes run gates. */
  private refreshBudgets(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const config = this.o.config();
        const now = this.o.clock.now();
        const wanted = new Map<string, { scope: 'job' | 'target'; name: string; budget: Budget; tz: string; windows: WindowSet | null }>();
        for (const j of Object.values(config.jobs)) {
          if (j.budget) wanted.set(`job:${j.name}`, { scope: 'job', name: j.name, budget: j.budget, tz: j.timezone, windows: j.allowedTimes });
        }
        for (const t of Object.values(config.targets)) {
          if (!t.budget) continue;
          const j = Object.values(config.jobs).find((x) => x.target.alias === t.alias && x.allowedTimes.windows.length > 0);
          wanted.set(`target:${t.alias}`, { scope: 'target', name: t.alias, budget: t.budget, tz: j?.timezone ?? config.node.timezone, windows: j?.allowedTimes ?? null });
        }
        for (const key of this.budgets.keys()) if (!wanted.has(key)) this.budgets.delete(key);
        for (const [key, w] of wanted) {
          const period = budgetPeriod(w.budget.per, w.tz, w.windows, now);
          const start = period.start.getTime();
          const filter = w.scope === 'job' ? { job: w.name } : { target: w.name };
          const fromDb = await this.o.db.usage.usageSince(period.start, filter);
          let used = fromDb;
          for (const [job, target, at, bytes] of this.unflushed()) {
            if (at >= start && (w.scope === 'job' ? job === w.name : target === w.name)) used += bytes;
          }
          this.budgets.set(key, { key, scope: w.scope, name: w.name, budget: w.budget, start, renewsAt: period.renewsAt?.getTime() ?? null, used });
        }
        for (const r of this.runs) {
          if (this.isSpentFor(r)) r.gate?.close(GATE_BUDGET);
          else r.gate?.open(GATE_BUDGET);
        }
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /**
   * Before a write: while a budget of the run is spent, close its gate and wait (checking
   * every second; renewals are found by the tick, or here once `renewsAt` has passed).
   * Lock objects are never held back: a lock that is not refreshed goes stale.
   */
  private async waitForBudget(run: Run, name: string, signal?: AbortSignal): Promise<void> {
    if (name.startsWith('locks/')) return;
    for (;;) {
      const now = this.o.clock.nowMs();
      const stale = [...this.budgets.values()].some((s) => s.renewsAt !== null && now >= s.renewsAt);
      if (stale) await this.refreshBudgets();
      if (!this.isSpentFor(run)) return;
      run.gate?.close(GATE_BUDGET);
      await this.o.clock.sleep(RESOLVE_EVERY_MS, signal);
    }
  }
}

/**
 * `repo` with its `saveFile` reads paced by `bucket()` (null = no limit): the bytes the
 * repository reports through `onChunk` are taken from the bucket at the next `gate` the
 * repository awaits (before each chunk), so reading slows to the limit. The workers read
 * a little ahead of the gate, so the limit holds over seconds, not per chunk. Every other
 * member is the repository's own.
 */
export function pacedReads<R extends object>(repo: R, bucket: () => TokenBucket | null, signal?: AbortSignal): R {
  // Bytes read and not paid for yet, across files: a small file is one chunk, read after
  // its only gate, so a debt kept per file would never be paid.
  let owed = 0;
  // One payment at a time (every gate waits for the debt paid so far): a take per waiting
  // file would also mean an abort listener per file on the signal. Null once paid.
  let paying: Promise<void> | null = null;
  // Takes what is owed from the bucket; the payment to await, if one is still running.
  const pay = (): Promise<void> | undefined => {
    const b = bucket();
    const n = owed;
    owed = 0;
    if (b && n > 0) {
      const paid: Promise<void> = (paying ?? Promise.resolve()).then(() => b.take(n, signal));
      paying = paid;
      void paid.then(() => {
        if (paying === paid) paying = null;
      }, () => {});
    }
    return paying ?? undefined;
  };
  const paced = (saveFile: (p: unknown, o: unknown) => unknown, target: R) =>
    (path: unknown, opts: { gate?: () => Promise<void> | undefined; onChunk?: (n: number) => void } = {}) =>
      saveFile.call(target, path, {
        ...opts,
        // Nothing to await (gate open, no limit or nothing owed): no promise.
        gate: () => {
          const open = opts.gate?.();
          return open ? open.then(pay) : pay();
        },
        onChunk: (n: number) => {
          owed += n;
          opts.onChunk?.(n);
        },
      });
  // Methods bound (and saveFile wrapped) once: a backup calls some per file, and a
  // function made per call is garbage.
  const bound = new Map<string | symbol, { value: unknown; fn: unknown }>();
  return new Proxy(repo, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      let b = bound.get(prop);
      if (b?.value !== value) {
        const fn = prop === 'saveFile' ? paced(value as (p: unknown, o: unknown) => unknown, target) : (value as (...a: unknown[]) => unknown).bind(target);
        bound.set(prop, (b = { value, fn }));
      }
      return b.fn;
    },
  });
}

/** Lines for `nightjar status`: limits in force, current rate, budgets. */
export function formatBandwidth(report: BandwidthReport): string[] {
  const rate = (v: number | null) => (v === null ? 'off' : `${formatBytes(v)}/s`);
  const lines = [`bandwidth: now ${formatBytes(report.currentBytesPerSecond)}/s`];
  for (const l of report.limits) {
    if (l.configured === 'off' && l.override === undefined && l.scope.kind !== 'node') continue;
    const who = l.scope.kind === 'node' ? 'node' : `${l.scope.kind} ${l.scope.name}`;
    const over = l.override !== undefined ? ` (override ${rate(l.override)}; node.cfg: ${l.configured})` : l.configured.includes(' ') ? ` (${l.configured})` : '';
    lines.push(`  ${who}: limit ${rate(l.effectiveBytesPerSecond)}${over}`);
  }
  for (const b of report.budgets) {
    const renew = b.renewsAt ? `, renews ${b.renewsAt}` : '';
    lines.push(`  budget of ${b.scope} ${b.name}: ${formatBytes(b.usedBytes)} of ${b.spec} used${b.spent ? ' — SPENT, runs suspended' : ''}${renew}`);
  }
  return lines;
}

/**
 * The bandwidth report from config and backupdb alone (no running node: overrides and
 * accounting as stored; the current rate is 0).
 */
export async function offlineBandwidthReport(config: NodeConfig, db: BackupDb, clock: Clock): Promise<BandwidthReport> {
  const m = new BandwidthManager({ config: () => config, db, clock });
  await m.start({ tick: false });
  return m.status();
}

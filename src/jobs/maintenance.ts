import type { BackupDb } from '../backupdb/index.js';
import type { Clock } from '../node/clock.js';
import type { JobConfig } from '../node/config/types.js';
import { prune } from '../repo/prune.js';
import type { Repository } from '../repo/repository.js';
import { listPacks, packsInSubset, subsetForCycle, verifyPacks } from '../repo/verify.js';
import { isInWindow } from './windows.js';
import { startPeriodicCheck, type PeriodicCheck } from './periodic-check.js';

/** Scheduled repository work a job can ask for. Recorded in the run history with this kind. */
export type MaintenanceKind = 'verify' | 'prune';

/** How often the maintenance watch looks for due work. */
export const MAINTENANCE_CHECK_MS = 60_000;
/** After a failed verify or prune (a lock held by a backup, an unreachable target), wait this long. */
export const MAINTENANCE_RETRY_MS = 60 * 60_000;

/**
 * Whether `kind` is due for `job` at `now` (pure): the job asks for it (`verify_frequency`
 * / `prune_frequency`), is enabled, `now` is inside its windows, the last successful one
 * ended at least a frequency ago (or never ran), and the last failed attempt is at least
 * MAINTENANCE_RETRY_MS ago.
 */
export function maintenanceDue(
  kind: MaintenanceKind,
  job: JobConfig,
  lastSuccessAt: Date | null,
  lastFailureAt: Date | null,
  now: Date,
): boolean {
  const freq = kind === 'verify' ? job.verifyFrequencyMs : job.pruneFrequencyMs;
  if (freq === null || !job.enabled) return false;
  if (!isInWindow(job.allowedTimes, job.timezone, now)) return false;
  if (lastFailureAt && now.getTime() - lastFailureAt.getTime() < MAINTENANCE_RETRY_MS) return false;
  return lastSuccessAt === null || now.getTime() - lastSuccessAt.getTime() >= freq;
}

export interface MaintenanceWatchOptions {
  readonly clock: Clock;
  readonly db: BackupDb;
  jobs(): readonly JobConfig[];
  /** Opens the job's target repository (throttled as the node wants), runs `fn`, closes it. */
  withRepo<T>(job: JobConfig, fn: (repo: Repository) => Promise<T>): Promise<T>;
  readonly log: { info(m: string): void; warn(m: string): void };
  /** True while a backup writes to the job's target: a prune then waits (it would take the lock from the backup). */
  targetBusy?(job: JobConfig): boolean;
  readonly intervalMs?: number;
}

/**
 * Runs due verifies and prunes (see maintenanceDue), one at a time, each recorded as a run
 * of kind `verify` / `prune` with an event. A verify checks the structure and reads back
 * `verify_read_data` percent of the packs, rotating (bucket = frequency periods since the
 * epoch), so every pack is read once per ceil(100/percent) verifies. A prune takes the
 * exclusive lock, so it fails (and retries an hour later) while a backup holds the target.
 * Windows gate the start only. Runs left unfinished by a previous process are closed as
 * failed at start. `stop()` aborts a verify between packs and waits.
 */
export function startMaintenanceWatch(opts: MaintenanceWatchOptions): PeriodicCheck {
  const stopper = new AbortController();
  const failures = new Map<string, Date>();
  const { db, clock } = opts;
  const cleanup = (async () => {
    for (const r of await db.runs.unfinishedRuns()) {
      if (r.kind === 'verify' || r.kind === 'prune') await db.runs.finishRun(r.id, { result: 'failed', error: 'interrupted (node stopped)' });
    }
  })().catch((err) => opts.log.warn(`maintenance: ${err instanceof Error ? err.message : String(err)}`));

  const runOne = async (kind: MaintenanceKind, job: JobConfig) => {
    const run = await db.runs.startRun({ job: job.name, target: job.target.alias, kind });
    const startedMs = clock.nowMs();
    try {
      const { stats, problems } = await opts.withRepo(job, (repo) => (kind === 'verify' ? verifyJob(repo, job, clock.now(), stopper.signal) : pruneJob(repo)));
      const durationMs = clock.nowMs() - startedMs;
      const ok = problems.length === 0;
      await db.runs.finishRun(run.id, { result: ok ? 'completed' : 'failed', stats: { ...stats, durationMs }, error: ok ? null : problems.slice(0, 5).join('; ') });
      const message = `${job.name}: ${kind} ${ok ? 'finished' : 'found damage'}: ${summary(kind, stats)}${ok ? '' : ` — ${problems.slice(0, 3).join('; ')}`}`;
      await db.events.addEvent({ job: job.name, runId: run.id, level: ok ? 'info' : 'error', kind: `${kind}.${ok ? 'done' : 'failed'}`, message });
      (ok ? opts.log.info : opts.log.warn)(message);
      if (ok) failures.delete(`${kind}\u0000${job.name}`);
      else failures.set(`${kind}\u0000${job.name}`, clock.now());
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      failures.set(`${kind}\u0000${job.name}`, clock.now());
      await db.runs.finishRun(run.id, { result: stopper.signal.aborted ? 'cancelled' : 'failed', error: why, stats: { durationMs: clock.nowMs() - startedMs } });
      const message = `${job.name}: ${kind} ${stopper.signal.aborted ? 'stopped' : 'failed'}: ${why}`;
      await db.events.addEvent({ job: job.name, runId: run.id, level: 'warn', kind: `${kind}.failed`, message });
      opts.log.warn(message);
    }
  };

  const check = async () => {
    await cleanup;
    for (const job of opts.jobs()) {
      for (const kind of ['verify', 'prune'] as const) {
        if (stopper.signal.aborted) return;
        try {
          const last = await db.runs.lastSuccessfulRun(job.name, kind);
          if (kind === 'prune' && opts.targetBusy?.(job)) continue;
          if (maintenanceDue(kind, job, last?.endedAt ?? null, failures.get(`${kind}\u0000${job.name}`) ?? null, clock.now())) await runOne(kind, job);
        } catch (err) {
          opts.log.warn(`maintenance ${kind} of ${job.name}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
  };
  return startPeriodicCheck(clock, opts.intervalMs ?? MAINTENANCE_CHECK_MS, check, stopper);
}

interface TaskResult {
  stats: Record<string, number>;
  problems: string[];
}

async function verifyJob(repo: Repository, job: JobConfig, now: Date, signal: AbortSignal): Promise<TaskResult> {
  const lock = await repo.lock(false);
  try {
    const report = await repo.check({ readData: false });
    const problems = report.problems.map((p) => `${p.object}: ${p.message}`);
    let bytesRead = 0;
    let packsRead = 0;
    if (job.verifyReadDataPercent > 0 && !signal.aborted) {
      const cycle = Math.floor(now.getTime() / (job.verifyFrequencyMs ?? 1));
      const subset = subsetForCycle(job.verifyReadDataPercent, cycle);
      const packs = packsInSubset(await listPacks(repo), subset);
      const v = await verifyPacks(repo, packs, { signal });
      bytesRead = v.bytesRead;
      packsRead = v.packs;
      problems.push(...v.problems.map((p) => `data/${p.pack.slice(0, 2)}/${p.pack}: ${p.message}`));
    }
    return { stats: { snapshots: report.snapshots, trees: report.trees, blobs: report.blobs, packs: report.packs, packsRead, bytesRead }, problems };
  } finally {
    await lock.release();
  }
}

async function pruneJob(repo: Repository): Promise<TaskResult> {
  const r = await prune(repo);
  return { stats: { bytesFreed: r.bytesFreed, packsDeleted: r.deletedPacks.length + r.unreferencedPacks.length, snapshots: r.snapshots }, problems: [] };
}

function summary(kind: MaintenanceKind, s: Record<string, number>): string {
  return kind === 'verify'
    ? `${s.snapshots ?? 0} snapshots, ${s.packs ?? 0} packs; ${s.packsRead ?? 0} packs (${s.bytesRead ?? 0} bytes) read back`
    : `${s.bytesFreed ?? 0} bytes freed (${s.packsDeleted ?? 0} packs deleted)`;
}

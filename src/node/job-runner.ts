import type { BackupDb } from '../backupdb/index.js';
import type { RunProgress, RunResult, RunStatus } from '../jobs/backup-run.js';
import { PreCommandFailedError, runJobHook, type HookInfo, type HookKind, type HookResult } from '../jobs/hooks.js';
import { runBackupRecorded } from '../jobs/job-run.js';
import { formatCount } from '../jobs/report.js';
import { GATE_SLOT, GATE_WINDOW, SchedulerStoppingError, type JobRunContext, type JobRunner, type RunOutcome } from '../jobs/scheduler.js';
import type { BandwidthManager } from './bandwidth.js';
import type { Clock } from './clock.js';
import type { JobConfig, NodeConfig } from './config/types.js';
import type { Logger } from './log.js';
import type { NodeDirLayout } from './node-dir.js';
import { openTarget } from './open-target.js';

const OUTCOME: Record<RunStatus, RunOutcome> = {
  complete: 'completed',
  partial: 'partial',
  refused: 'refused',
  failed: 'failed',
  cancelled: 'cancelled',
};

export interface BackupJobRunnerDeps {
  readonly config: () => NodeConfig;
  readonly db: BackupDb;
  readonly clock: Clock;
  readonly log: Logger;
  readonly layout: NodeDirLayout;
  /** Upload limits, budgets (they close the run's gate with 'budget spent') and read limits (issue 5). */
  readonly bandwidth?: BandwidthManager;
}

/**
 * The backup engine as the scheduler's JobRunner: one run opens the job's target
 * repository, runs the backup recorded in the backupdb, and closes it again. The run parks
 * on the scheduler's gate before every file and chunk, so a closed window or a pause
 * suspends it in place (walk position and partial trees stay in memory). A node stop
 * aborts the run after a checkpoint; the run row stays unfinished and the next start
 * continues it, skipping everything already stored.
 */
export class BackupJobRunner implements JobRunner {
  private readonly progress = new Map<string, RunProgress>();

  constructor(private readonly deps: BackupJobRunnerDeps) {}

  /**
   * One run with its hooks (issue 9): `pre_command` first (a failure skips the run: it
   * throws PreCommandFailedError, so the run ends failed with that reason), then the
   * backup, then `post_command` with the result and `on_failure` when it failed. Hooks of
   * a run stopped by a node stop are skipped (the run continues at the next start).
   */
  async start(job: JobConfig, ctx: JobRunContext): Promise<RunOutcome> {
    const pre = await this.hook('pre_command', { job }, ctx);
    if (pre && !pre.ok) {
      const err = new PreCommandFailedError(pre, job.hookTimeoutMs);
      await this.hook('on_failure', { job, result: 'failed', error: err.message }, ctx);
      throw err;
    }
    let result: RunResult;
    try {
      result = await this.backup(job, ctx);
    } catch (err) {
      if (!(ctx.signal.reason instanceof SchedulerStoppingError)) {
        const error = err instanceof Error ? err.message : String(err);
        // A cancel by the owner is not a failure.
        const result = ctx.signal.aborted ? 'cancelled' : 'failed';
        await this.hook('post_command', { job, result, error }, ctx);
        if (result === 'failed') await this.hook('on_failure', { job, result, error }, ctx);
      }
      throw err;
    }
    const outcome = OUTCOME[result.status];
    if (!(ctx.signal.reason instanceof SchedulerStoppingError)) {
      const info: HookInfo = {
        job, result: outcome, stats: result.stats,
        ...(result.snapshot ? { snapshotId: result.snapshot.id } : {}),
        ...(result.error !== undefined ? { error: result.error } : {}),
      };
      await this.hook('post_command', info, ctx);
      if (outcome === 'failed') await this.hook('on_failure', info, ctx);
    }
    return outcome;
  }

  /** Runs one of the job's hooks (if configured), recorded in the event log and the node log. */
  private hook(kind: HookKind, info: HookInfo, ctx: JobRunContext): Promise<HookResult | null> {
    // pre_command obeys a cancel; the hooks after a run always get to run (bounded by hook_timeout).
    return runJobHook(kind, info, {
      ...(kind === 'pre_command' ? { signal: ctx.signal } : {}),
      record: async (e) => {
        this.deps.log[e.level](e.message);
        await this.deps.db.events.addEvent({ job: info.job.name, level: e.level, kind: e.kind, message: e.message, detail: e.detail });
      },
    });
  }

  private async backup(job: JobConfig, ctx: JobRunContext): Promise<RunResult> {
    const { db, clock, layout } = this.deps;
    const config = this.deps.config();
    const target = config.targets[job.target.alias]!;
    const chunkIgnores = ctx.onWindowClose === 'finish_file' ? [GATE_WINDOW, GATE_SLOT] : [];
    // While the run is parked no new upload starts (packs already sealed wait too), except
    // the writes of the checkpoint taken at the park, so what was read is made durable.
    let parkCheckpoint = false;
    const uploadGate = async (name: string) => {
      if (!parkCheckpoint && !name.startsWith('locks/')) await ctx.gate.wait(ctx.signal, chunkIgnores);
    };
    const bandwidth = this.deps.bandwidth?.forRun({ job: job.name, target: target.alias, gate: ctx.gate, signal: ctx.signal, uploadGate });
    const opened = await openTarget(target, { clock, workers: config.node.workers, startWorkers: true, sharedLock: true, ...(bandwidth ? { bandwidth } : {}) });
    try {
      const lock = opened.repo.takeOpeningLock() ?? (await opened.repo.lock(false));
      try {
        const result = await runBackupRecorded({
          db,
          targetAlias: target.alias,
          repo: opened.repo,
          fileCache: db.fileCache,
          job,
          clock,
          host: config.node.nickname,
          signal: ctx.signal,
          // finish_file: a closed window (or a resume waiting for a slot) parks the run only
          // at file boundaries; a pause parks it at the next chunk, as in suspend mode.
          gate: (at) => ctx.gate.wait(ctx.signal, at === 'chunk' ? chunkIgnores : undefined),
          gateClosed: (at) => {
            const closed = at === 'chunk' ? !ctx.gate.isOpenIgnoring(chunkIgnores) : !ctx.gate.isOpen;
            if (closed) parkCheckpoint = true; // the engine checkpoints now (see uploadGate)
            return closed;
          },
          onCheckpoint: (_stats, info) => {
            if (info?.parked) parkCheckpoint = false;
          },
          keepUnfinished: () => ctx.signal.reason instanceof SchedulerStoppingError,
          skipDirs: [layout.root, ...(target.kind === 'local' ? [target.location] : [])],
          onProgress: (p) => this.progress.set(job.name, p),
          onEvent: (e) => this.deps.log[e.level](e.message),
        });
        return result;
      } finally {
        await lock.release().catch(() => {});
      }
    } finally {
      this.progress.delete(job.name);
      await opened.repo.close().catch(() => {});
      await opened.store.close().catch(() => {});
    }
  }

  /** The live progress of a job's run, if one is running. */
  progressOf(job: string): RunProgress | null {
    return this.progress.get(job) ?? null;
  }

  progressText(job: JobConfig): string | null {
    const p = this.progress.get(job.name);
    if (!p) return null;
    const of = p.estimatedFiles > 0 ? ` of about ${formatCount(p.estimatedFiles)}` : '';
    return `${formatCount(p.stats.filesTotal)}${of} files done`;
  }
}

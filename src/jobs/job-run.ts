import type { BackupDb } from '../backupdb/index.js';
import type { RunStats as DbRunStats, FinalRunResult } from '../backupdb/runs.js';
import type { JsonValue } from '../backupdb/values.js';
import { runBackup, type BackupRunOptions, type RunResult, type RunStatus } from './backup-run.js';
import { formatBytes, formatCount, formatDuration } from './report.js';
import type { RunStats } from './run-stats.js';

/** Run statistics in the backupdb's shape: its well-known keys plus the full object under `detail`. */
export function toDbStats(s: RunStats): DbRunStats {
  return {
    filesSeen: s.filesTotal,
    bytesSeen: s.bytesTotal,
    filesNew: s.filesNew,
    filesChanged: s.filesChanged,
    filesUnchanged: s.filesUnchanged,
    filesRemoved: s.filesRemoved,
    dirsSeen: s.dirs,
    bytesRead: s.bytesRead,
    bytesNew: s.bytesNew,
    bytesWritten: s.bytesWritten,
    warnings: s.warningCount,
    durationMs: s.durationMs,
    detail: JSON.parse(JSON.stringify(s)) as JsonValue,
  };
}

const DB_RESULT: Record<RunStatus, FinalRunResult> = {
  complete: 'completed',
  partial: 'partial',
  refused: 'refused',
  failed: 'failed',
  cancelled: 'cancelled',
};

export interface RecordedRunOptions extends BackupRunOptions {
  readonly db: BackupDb;
  /** The target alias, for the run history. */
  readonly targetAlias: string;
  /** How often progress statistics go to the backupdb (default 5 s). */
  readonly dbProgressIntervalMs?: number;
  /**
   * Asked when the run ends cancelled: true when the cancel is a node stop rather than the
   * owner's, so the run row stays unfinished (suspended) and the next start continues it.
   */
  readonly keepUnfinished?: () => boolean;
  /** Every event also goes here (the node log), after it is stored. */
  readonly onEvent?: (e: { level: 'info' | 'warn' | 'error'; message: string }) => void;
}

/**
 * A backup run recorded in the backupdb: the run history row (start, progress every few
 * seconds, finish with the final statistics and snapshot id) and events for the start
 * and the end. An unfinished run of the job left by a killed process is resumed (same
 * row) rather than refused. A dry run records nothing. Never throws for the run's own
 * failures (they are in the RunResult); backupdb errors propagate.
 */
export async function runBackupRecorded(opts: RecordedRunOptions): Promise<RunResult & { runId: number | null }> {
  const { db, job, clock } = opts;
  const event = async (e: Parameters<BackupDb['events']['addEvent']>[0] & { level: 'info' | 'warn' | 'error' }) => {
    await db.events.addEvent(e);
    opts.onEvent?.(e);
  };
  if (opts.dryRun) return { ...(await runBackup(opts)), runId: null };

  let runId: number;
  const unfinished = (await db.runs.unfinishedRuns()).find((r) => r.job === job.name && r.kind === 'backup');
  if (unfinished) {
    runId = (await db.runs.resumeRun(unfinished.id)).id;
    await event({
      job: job.name,
      runId,
      level: 'info',
      kind: 'run.resumed',
      message: `${job.name}: continuing run #${runId}, which was interrupted; work already stored is skipped`,
    });
  } else {
    runId = (await db.runs.startRun({ job: job.name, target: opts.targetAlias })).id;
    await event({ job: job.name, runId, level: 'info', kind: 'run.started', message: `${job.name}: backup of ${job.source} started` });
  }

  let lastDbMs = clock.nowMs();
  let writing: Promise<void> = Promise.resolve();
  const interval = opts.dbProgressIntervalMs ?? 5000;
  const result = await runBackup({
    ...opts,
    onProgress: (p) => {
      opts.onProgress?.(p);
      const now = clock.nowMs();
      if (now - lastDbMs < interval) return;
      lastDbMs = now;
      // One write at a time; a slow disk never queues up progress rows.
      writing = writing.then(() => db.runs.updateRunProgress(runId, toDbStats(p.stats)).catch(() => {}));
    },
    onCheckpoint: async (stats, info) => {
      await opts.onCheckpoint?.(stats, info);
      const checkpoint = { checkpointAt: clock.now().toISOString(), filesDone: stats.filesTotal };
      if (!info?.parked) {
        await db.runs.updateRunProgress(runId, toDbStats(stats), checkpoint);
        return;
      }
      // Parked at a closed gate (window closed, paused): the run history says `suspended`
      // until the run goes on, and everything stored so far survives a kill.
      await db.runs.suspendRun(runId, toDbStats(stats), checkpoint);
      await event({
        job: job.name,
        runId,
        level: 'info',
        kind: 'run.checkpoint',
        message:
          `${job.name}: checkpoint written while suspended: ${formatCount(stats.filesCheckpointed)} files safely stored ` +
          `(${formatCount(stats.filesTotal)} walked), ` +
          `${formatBytes(stats.bytesRead)} read, ${formatBytes(stats.bytesWritten)} written`,
      });
    },
    onUnpark: async () => {
      await opts.onUnpark?.();
      await db.runs.resumeRun(runId);
    },
  });
  await writing;
  if (result.status === 'cancelled' && opts.keepUnfinished?.()) {
    await db.runs.suspendRun(runId, toDbStats(result.stats));
    await event({
      job: job.name,
      runId,
      level: 'info',
      kind: 'run.interrupted',
      message: `${job.name}: interrupted by the node stopping; ${formatCount(result.stats.filesTotal)} files done, continues at the next start`,
    });
    return { ...result, runId };
  }
  await db.runs.finishRun(runId, {
    result: DB_RESULT[result.status],
    snapshotId: result.snapshot?.id ?? null,
    error: result.error ?? result.refusal?.message ?? null,
    stats: toDbStats(result.stats),
  });
  const s = result.stats;
  const summary =
    `${formatCount(s.filesTotal)} files (${formatBytes(s.bytesTotal)}): ${formatCount(s.filesNew)} new, ` +
    `${formatCount(s.filesChanged)} changed, ${formatCount(s.filesUnchanged)} unchanged, ${formatCount(s.filesRemoved)} removed; ` +
    `${formatBytes(s.bytesWritten)} written in ${formatDuration(s.durationMs)}`;
  const message =
    result.status === 'complete'
      ? `${job.name}: completed, snapshot ${result.snapshot!.id.slice(0, 12)}; ${summary}`
      : result.status === 'partial'
        ? `${job.name}: completed with ${formatCount(s.warningCount)} warnings, snapshot ${result.snapshot!.id.slice(0, 12)}; ${summary}`
        : result.status === 'refused'
          ? `${job.name}: refused: ${result.refusal?.message ?? ''}`
          : result.status === 'cancelled'
            ? `${job.name}: cancelled; work stored so far is kept`
            : `${job.name}: failed: ${result.error ?? 'unknown error'}`;
  await event({
    job: job.name,
    runId,
    level: result.status === 'complete' ? 'info' : result.status === 'partial' || result.status === 'cancelled' ? 'warn' : 'error',
    kind: `run.${result.status}`,
    message,
  });
  return { ...result, runId };
}

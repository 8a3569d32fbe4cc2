import type { BackupDb } from '../backupdb/index.js';
import type { JobState } from '../backupdb/jobs.js';
import type { RunProgress } from '../jobs/backup-run.js';
import { estimateCompletion } from '../jobs/eta.js';
import { describeState } from '../jobs/run-state.js';
import { overdueSince } from '../jobs/overdue.js';
import { nextRunAt } from '../jobs/schedule.js';
import type { JobStatus as SchedulerJobStatus } from '../jobs/scheduler.js';
import { currentWindow, nextWindowOpen, windowText } from '../jobs/windows.js';
import type { JobStatus, NodeStatus, RunProgressStatus } from '../wui/status.js';
import type { Clock } from './clock.js';
import type { JobConfig, NodeConfig } from './config/types.js';
import { formatDuration } from './config/units.js';

/** What a running node adds to what the config and backupdb know. */
export interface LiveView {
  readonly startedAt: Date;
  scheduler(job: string): SchedulerJobStatus | null;
  progress(job: string): RunProgress | null;
}

/**
 * The status of the node and every job. With `live` (a running node) the states come
 * from the scheduler; without it (`nightjar status` while no node runs) they are derived
 * from the backupdb and the pure schedule functions, so both views agree on next starts.
 */
export async function buildNodeStatus(config: NodeConfig, db: BackupDb, clock: Clock, live: LiveView | null): Promise<NodeStatus> {
  const now = clock.now();
  const states = new Map((await db.jobs.listJobStates()).map((s) => [s.job, s]));
  const verifies = new Map<string, JobStatus['lastVerify']>();
  for (const job of Object.values(config.jobs)) {
    if (job.verifyFrequencyMs === null) continue;
    const [v] = await db.runs.listRuns(job.name, 1, { kind: 'verify' });
    verifies.set(job.name, v ? { endedAt: v.endedAt?.toISOString() ?? null, result: v.result, error: v.error } : null);
  }
  const unfinishedRuns = await db.runs.unfinishedRuns();
  const unfinished = new Set(unfinishedRuns.map((r) => r.job));
  // Offline ETA inputs: the unfinished run's stored progress and the last complete size.
  const offline = new Map<string, EtaFacts>();
  if (!live) {
    for (const r of unfinishedRuns) {
      if (r.kind !== 'backup') continue;
      const last = await db.runs.lastSuccessfulRun(r.job);
      offline.set(r.job, {
        bytesDone: r.stats.bytesSeen ?? 0,
        bytesExpected: last?.stats.bytesSeen ?? 0,
        // Stored durations include suspended time: a pessimistic rate, good enough offline.
        activeMs: r.stats.durationMs ?? 0,
        ignoreWindow: false,
      });
    }
  }
  return {
    nickname: config.node.nickname,
    startedAt: live ? live.startedAt.toISOString() : null,
    now: now.toISOString(),
    running: live !== null,
    jobs: Object.values(config.jobs).map((job) => ({
      ...jobStatus(
        job,
        states.get(job.name) ?? null,
        live?.scheduler(job.name) ?? null,
        live?.progress(job.name) ?? null,
        unfinished.has(job.name),
        now,
        offline.get(job.name) ?? null,
      ),
      ...overdueStatus(job, states.get(job.name)?.lastCompletedAt ?? null, now, live?.startedAt ?? null),
      ...(verifies.has(job.name) ? { lastVerify: verifies.get(job.name) ?? null } : {}),
    })),
  };
}

function jobStatus(
  job: JobConfig,
  state: JobState | null,
  sched: SchedulerJobStatus | null,
  progress: RunProgress | null,
  hasUnfinishedRun: boolean,
  now: Date,
  offlineEta: EtaFacts | null,
): JobStatus {
  const paused = sched?.paused ?? state?.paused ?? false;
  let runState: string;
  let nextStart: Date | null = null;
  let nextReason: string | null = null;
  if (sched) {
    runState = sched.state;
    nextStart = sched.nextStartAt;
    nextReason = sched.nextStartReason;
  } else {
    runState = !job.enabled ? 'idle' : hasUnfinishedRun ? 'suspended' : 'idle';
    if (job.enabled && !paused) {
      try {
        const next = nextRunAt(job, state?.lastCompletedAt ?? null, now);
        nextStart = next.at;
        nextReason = next.reason;
      } catch {
        // A job that can never be planned is a config error the loader reports.
      }
    }
  }
  const win = job.allowedTimes.windows.length === 0 ? null : (currentWindow(job.allowedTimes, job.timezone, now) ?? nextWindowOpen(job.allowedTimes, job.timezone, now));
  return {
    name: job.name,
    source: job.source,
    target: `${job.target.alias}:${job.target.name}`,
    schedule: job.schedule ?? `every ${formatDuration(job.frequencyMs ?? 0)}`,
    allowedTimes: job.allowedTimes.windows.length ? job.allowedTimes.spec : 'any time',
    timezone: job.timezone,
    state: job.enabled ? runState : 'disabled',
    label: job.enabled ? (sched?.label ?? describeState(runState as Parameters<typeof describeState>[0], paused)) : 'disabled',
    paused,
    enabled: job.enabled,
    nextStartAt: nextStart?.toISOString() ?? null,
    nextStartReason: nextReason,
    window: win ? windowText(job.timezone, win) : null,
    lastResult: sched?.lastOutcome ?? state?.lastResult ?? null,
    lastCompletedAt: state?.lastCompletedAt?.toISOString() ?? null,
    lastRunId: state?.lastRunId ?? null,
    lastEndedAt: state?.lastEndedAt?.toISOString() ?? null,
    lastError: sched?.lastError ?? null,
    progress: progress ? progressStatus(progress) : null,
    eta: etaOf(job, now, sched?.run && progress ? liveEtaFacts(sched, progress) : offlineEta),
  };
}

/** The overdue fields of a job's status (issue 9). */
function overdueStatus(job: JobConfig, lastCompletedAt: Date | null, now: Date, since: Date | null): Pick<JobStatus, 'overdue' | 'overdueSince'> {
  let at: Date | null = null;
  try {
    at = overdueSince(job, lastCompletedAt, now, since);
  } catch {
    // An unplannable schedule is a config error reported elsewhere.
  }
  return { overdue: at !== null, overdueSince: at?.toISOString() ?? null };
}

/** What the ETA is computed from: bytes walked of bytes expected, over the time spent working. */
export interface EtaFacts {
  readonly bytesDone: number;
  /** The size of the source at the last snapshot (0 = unknown: the first backup). */
  readonly bytesExpected: number;
  readonly activeMs: number;
  readonly ignoreWindow: boolean;
}

function liveEtaFacts(sched: SchedulerJobStatus, p: RunProgress): EtaFacts {
  return {
    bytesDone: p.stats.bytesTotal,
    bytesExpected: p.estimatedBytes,
    activeMs: sched.run?.activeMs ?? 0,
    ignoreWindow: sched.run?.ignoreWindow ?? false,
  };
}

/**
 * Window-aware ETA of a live or suspended run. Bytes left: the previous snapshot's size
 * less the bytes walked so far (unchanged files count: they are walked, not read); rate:
 * bytes walked per second of running (suspended time excluded when the node runs).
 */
export function etaOf(job: Pick<JobConfig, 'allowedTimes' | 'timezone' | 'onWindowClose'>, now: Date, f: EtaFacts | null): NonNullable<JobStatus['eta']> | null {
  if (!f) return null;
  if (f.bytesExpected <= 0) return { text: 'unknown until the first backup has completed', doneAt: null };
  const bytesLeft = Math.max(0, f.bytesExpected - f.bytesDone);
  const eta = estimateCompletion({
    bytesLeft: bytesLeft > 0 ? bytesLeft : 1, // the estimate ran out: "almost done", not "done"
    bytesPerSecond: f.activeMs > 0 ? (f.bytesDone * 1000) / f.activeMs : 0,
    now,
    windows: job.allowedTimes,
    timezone: job.timezone,
    ignoreWindows: f.ignoreWindow || job.onWindowClose === 'finish_job',
  });
  return { text: eta.text, doneAt: eta.doneAt?.toISOString() ?? null };
}

function progressStatus(p: RunProgress): RunProgressStatus {
  const s = p.stats;
  return {
    startedAt: s.startedAt,
    currentPath: p.currentPath,
    filesDone: s.filesTotal,
    filesEstimated: p.estimatedFiles,
    filesNew: s.filesNew,
    filesChanged: s.filesChanged,
    filesUnchanged: s.filesUnchanged,
    bytesRead: s.bytesRead,
    bytesNew: s.bytesNew,
    bytesWritten: s.bytesWritten,
    warnings: s.warningCount,
  };
}

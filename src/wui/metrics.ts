import express from 'express';
import type { BandwidthControls, BandwidthStatus, NodeData, RunSummary } from './controls.js';
import type { NodeStatus } from './status.js';

/** Every run state a job can be in; `nightjar_job_state` has one series per state (1 = current). */
export const JOB_STATES = ['idle', 'waiting_window', 'waiting_slot', 'running', 'suspended', 'completed', 'partial', 'failed', 'cancelled', 'disabled'] as const;

/** What /metrics is built from. */
export interface MetricsSources {
  readonly status: () => Promise<NodeStatus>;
  readonly bandwidth?: BandwidthControls;
  readonly data?: NodeData;
}

/** The facts about a job's last ended backup run that metrics expose. */
export interface LastRunFacts {
  readonly result: string;
  readonly endedAt: string;
  readonly durationMs: number | null;
  readonly bytesSent: number | null;
  readonly files: number | null;
}

/** A budget as metrics see it (BandwidthReport's budgets, when the controls give them). */
interface BudgetFacts {
  readonly scope: string;
  readonly name: string;
  readonly bytes: number;
  readonly usedBytes: number;
}

/**
 * The Prometheus text exposition (format 0.0.4) of a node: per job the last success
 * time, the last run's duration, bytes sent and files, the state, paused and overdue;
 * node-wide the upload rate, limits in force and budgets left. Pure; times are Unix
 * seconds, sizes bytes. Label values are escaped as the format requires.
 */
export function renderMetrics(
  status: NodeStatus,
  lastRuns: ReadonlyMap<string, LastRunFacts | null>,
  bandwidth: (BandwidthStatus & { budgets?: readonly BudgetFacts[] }) | null,
): string {
  const out: string[] = [];
  const family = (name: string, type: 'gauge' | 'counter', help: string, samples: [Record<string, string>, number | null][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      if (value === null || !Number.isFinite(value)) continue;
      const l = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
      out.push(`${name}${l ? `{${l}}` : ''} ${formatValue(value)}`);
    }
  };
  const secs = (iso: string | null | undefined) => (iso ? Date.parse(iso) / 1000 : null);
  family('nightjar_up', 'gauge', 'Whether the node is running (1).', [[{ node: status.nickname }, status.running ? 1 : 0]]);
  const jobs = status.jobs;
  family('nightjar_job_last_success_timestamp_seconds', 'gauge', 'End of the last successful (completed or partial) run, Unix time.',
    jobs.map((j) => [{ job: j.name }, secs(j.lastCompletedAt)]));
  family('nightjar_job_last_run_timestamp_seconds', 'gauge', 'End of the last ended backup run, whatever its result, Unix time.',
    jobs.map((j) => [{ job: j.name }, secs(lastRuns.get(j.name)?.endedAt)]));
  family('nightjar_job_last_run_duration_seconds', 'gauge', 'Duration of the last ended backup run (suspended time included).',
    jobs.map((j) => [{ job: j.name }, lastRuns.get(j.name)?.durationMs != null ? lastRuns.get(j.name)!.durationMs! / 1000 : null]));
  family('nightjar_job_last_run_sent_bytes', 'gauge', 'Bytes uploaded by the last ended backup run.',
    jobs.map((j) => [{ job: j.name }, lastRuns.get(j.name)?.bytesSent ?? null]));
  family('nightjar_job_last_run_files', 'gauge', 'Files in the last ended backup run.',
    jobs.map((j) => [{ job: j.name }, lastRuns.get(j.name)?.files ?? null]));
  family('nightjar_job_last_run_success', 'gauge', '1 when the last ended run completed, 0.5 when partial, 0 otherwise.',
    jobs.map((j) => {
      const r = lastRuns.get(j.name)?.result ?? j.lastResult;
      return [{ job: j.name }, r == null ? null : r === 'completed' ? 1 : r === 'partial' ? 0.5 : 0];
    }));
  const states: [Record<string, string>, number][] = [];
  for (const j of jobs) {
    const known = (JOB_STATES as readonly string[]).includes(j.state);
    for (const s of known ? JOB_STATES : [...JOB_STATES, j.state]) states.push([{ job: j.name, state: s }, j.state === s ? 1 : 0]);
  }
  family('nightjar_job_state', 'gauge', 'The job state: 1 for the current one.', states);
  family('nightjar_job_paused', 'gauge', 'Whether the owner paused the job.', jobs.map((j) => [{ job: j.name }, j.paused ? 1 : 0]));
  family('nightjar_job_overdue', 'gauge', 'No successful backup for longer than alert_after.', jobs.map((j) => [{ job: j.name }, j.overdue ? 1 : 0]));
  family('nightjar_job_last_verify_timestamp_seconds', 'gauge', 'End of the last scheduled verify, Unix time.',
    jobs.map((j) => [{ job: j.name }, secs(j.lastVerify?.endedAt)]));
  family('nightjar_job_last_verify_success', 'gauge', '1 when the last scheduled verify passed, 0 when it failed.',
    jobs.map((j) => [{ job: j.name }, j.lastVerify ? (j.lastVerify.result === 'completed' ? 1 : j.lastVerify.result === 'failed' ? 0 : null) : null]));
  family('nightjar_job_next_start_timestamp_seconds', 'gauge', 'Next planned start, Unix time.', jobs.map((j) => [{ job: j.name }, secs(j.nextStartAt)]));
  if (bandwidth) {
    family('nightjar_upload_rate_bytes_per_second', 'gauge', 'Node-wide upload rate over the last few seconds.', [[{}, bandwidth.currentBytesPerSecond]]);
    family('nightjar_bandwidth_limit_bytes_per_second', 'gauge', 'Upload limit in force now (absent: no limit).',
      bandwidth.limits.map((l) => [{ scope: l.scope.kind, name: l.scope.kind === 'node' ? '' : l.scope.name }, l.effectiveBytesPerSecond]));
    const budgets = bandwidth.budgets ?? [];
    family('nightjar_budget_bytes', 'gauge', 'Upload budget per period.', budgets.map((b) => [{ scope: b.scope, name: b.name }, b.bytes]));
    family('nightjar_budget_left_bytes', 'gauge', 'Upload budget left in the current period.',
      budgets.map((b) => [{ scope: b.scope, name: b.name }, Math.max(0, b.bytes - b.usedBytes)]));
  }
  return out.join('\n') + '\n';
}

/** The last ended backup run of a job, from the newest-first history. */
export function lastRunFacts(runs: readonly RunSummary[]): LastRunFacts | null {
  const r = runs.find((x) => x.endedAt !== null && (x.kind === 'backup' || x.kind === undefined));
  if (!r || r.endedAt === null) return null;
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return {
    result: r.result,
    endedAt: r.endedAt,
    durationMs: n(r.stats.durationMs),
    bytesSent: n(r.stats.bytesSent) ?? n(r.stats.bytesWritten),
    files: n(r.stats.filesSeen),
  };
}

/**
 * `GET /metrics` (Prometheus text). Mount after the authentication middleware: it serves
 * whoever passed it (owner or read-only token). A failing source answers 500, never a
 * partial exposition.
 */
export function metricsRouter(src: MetricsSources): express.Router {
  const router = express.Router();
  router.get('/metrics', async (_req, res) => {
    try {
      const status = await src.status();
      const lastRuns = new Map<string, LastRunFacts | null>();
      for (const j of status.jobs) lastRuns.set(j.name, src.data ? lastRunFacts(await src.data.runs(j.name, 20)) : null);
      const bandwidth = src.bandwidth ? await src.bandwidth.status() : null;
      res.type('text/plain; version=0.0.4; charset=utf-8').send(renderMetrics(status, lastRuns, bandwidth));
    } catch (err) {
      res.status(500).type('text/plain').send(`metrics unavailable: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  });
  return router;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatValue(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(15)));
}

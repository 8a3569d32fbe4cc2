import type { NodeStatus } from '../wui/status.js';
import { alertAfterMs } from '../jobs/overdue.js';
import type { NodeConfig } from './config/types.js';

/** Nagios plugin exit codes. */
export const HEALTH = { ok: 0, warning: 1, critical: 2, unknown: 3 } as const;
export type HealthCode = (typeof HEALTH)[keyof typeof HEALTH];
export const NAMES = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'] as const;

export interface JobHealth {
  readonly job: string;
  readonly code: HealthCode;
  /** Why, in plain words (`overdue: no successful backup since …`). */
  readonly reason: string;
  /** Seconds since the last successful run, or null when it never succeeded. */
  readonly ageSeconds: number | null;
  readonly alertAfterSeconds: number;
}

export interface HealthReport {
  readonly code: HealthCode;
  /** The Nagios status line: `NIGHTJAR WARNING - b1 overdue … | 'b1_age'=…`. */
  readonly line: string;
  readonly jobs: readonly JobHealth[];
  readonly perfdata: string;
}

/**
 * The health of a node from its status (pure): per enabled job CRITICAL when the last
 * run failed or was refused, the last scheduled verify failed, or it is overdue by more than twice its alert_after; WARNING
 * when it is overdue or the last run was partial; else OK. A node that is not running is
 * a WARNING. The node's code is the worst; perfdata gives each job's age (s) with the
 * warning and critical thresholds.
 */
export function assessHealth(status: NodeStatus, config: NodeConfig, now: Date): HealthReport {
  const jobs: JobHealth[] = [];
  for (const j of status.jobs) {
    const job = config.jobs[j.name];
    if (!job || !j.enabled) continue;
    const alertMs = alertAfterMs(job, now);
    const ageSeconds = j.lastCompletedAt ? Math.max(0, Math.round((now.getTime() - Date.parse(j.lastCompletedAt)) / 1000)) : null;
    const since = j.overdueSince ? Date.parse(j.overdueSince) : null;
    let code: HealthCode = HEALTH.ok;
    let reason = j.lastCompletedAt ? `last success ${j.lastCompletedAt}` : 'no successful backup yet';
    if (j.overdue) {
      const beyond = since !== null && now.getTime() - since > alertMs;
      code = beyond ? HEALTH.critical : HEALTH.warning;
      reason = `overdue${beyond ? ' by more than twice alert_after' : ''}: ${j.lastCompletedAt ? `no successful backup since ${j.lastCompletedAt}` : 'never backed up'}`;
    }
    if (j.lastResult === 'failed' || j.lastResult === 'refused') {
      code = HEALTH.critical;
      reason = `last run ${j.lastResult}${j.lastError ? `: ${j.lastError}` : ''}${j.overdue ? '; ' + reason : ''}`;
    } else if (j.lastVerify?.result === 'failed' && j.lastVerify.error) {
      code = HEALTH.critical;
      reason = `last verify failed: ${j.lastVerify.error}`;
    } else if (j.lastResult === 'partial' && code === HEALTH.ok) {
      code = HEALTH.warning;
      reason = 'last run partial (some files could not be read)';
    }
    jobs.push({ job: j.name, code, reason, ageSeconds, alertAfterSeconds: Math.round(alertMs / 1000) });
  }
  let code: HealthCode = jobs.reduce<HealthCode>((worst, j) => (j.code > worst ? j.code : worst), HEALTH.ok);
  const problems = jobs.filter((j) => j.code !== HEALTH.ok).map((j) => `${j.job} ${j.reason}`);
  if (!status.running) {
    if (code === HEALTH.ok) code = HEALTH.warning;
    problems.unshift('node not running');
  }
  const perf = jobs
    .map((j) => `'${j.job.replace(/'/g, '')}_age'=${j.ageSeconds ?? ''}s;${j.alertAfterSeconds};${2 * j.alertAfterSeconds};0`)
    .concat([
      `'jobs_ok'=${jobs.filter((j) => j.code === HEALTH.ok).length}`,
      `'jobs_warning'=${jobs.filter((j) => j.code === HEALTH.warning).length}`,
      `'jobs_critical'=${jobs.filter((j) => j.code === HEALTH.critical).length}`,
    ])
    .join(' ');
  const summary = problems.length > 0 ? problems.join('; ') : `${jobs.length} job(s) fresh`;
  return { code, jobs, perfdata: perf, line: `NIGHTJAR ${NAMES[code]} - ${summary} | ${perf}` };
}

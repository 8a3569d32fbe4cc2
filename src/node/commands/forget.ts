import type { Command } from 'commander';
import type { JobConfig, NodeConfig } from '../config/types.js';
import type { Clock } from '../clock.js';
import type { Repository } from '../../repo/repository.js';
import type { RetentionDecision } from '../../repo/retention.js';
import type { Snapshot } from '../../repo/types.js';
import type { Store } from '../../store/store.js';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { nodeDirLayout } from '../node-dir.js';
import { nodeDirOption } from './options.js';

/** One line of a forget report. */
export interface ForgetRow {
  readonly job: string;
  readonly host: string;
  readonly target: string;
  readonly id: string;
  readonly time: string;
  readonly keep: boolean;
  readonly reasons: string[];
  /** True when the snapshot object was deleted (never on a dry run). */
  readonly deleted: boolean;
}

/**
 * Applies `job.keep` to the job's snapshots in an open repository, per host, and (unless
 * `dryRun`) deletes the forgotten `snapshots/<id>` objects under an exclusive repository
 * lock (so no backup or prune runs meanwhile). Only snapshots of `job.name` are touched.
 * Data stays until `prune`. Throws RepoLockedError when the repository is locked.
 */
export async function forgetJob(
  repo: Repository,
  store: Store,
  job: JobConfig,
  opts: { clock: Clock; dryRun: boolean; targetAlias: string },
): Promise<ForgetRow[]> {
  if (!job.keep) return [];
  const { applyRetention, groupForRetention } = await import('../../repo/retention.js');
  const lock = opts.dryRun ? null : await repo.lock(true);
  try {
    const mine = (await repo.listSnapshots()).filter((s) => s.job === job.name);
    const rows: ForgetRow[] = [];
    for (const group of groupForRetention(mine).values()) {
      const decisions: RetentionDecision<Snapshot>[] = applyRetention(group, job.keep, opts.clock.now(), job.timezone);
      for (const d of decisions) {
        let deleted = false;
        if (!d.keep && !opts.dryRun) {
          await store.delete(`snapshots/${d.snapshot.id}`);
          deleted = true;
        }
        rows.push({
          job: job.name, host: d.snapshot.host, target: opts.targetAlias, id: d.snapshot.id, time: d.snapshot.time,
          keep: d.keep, reasons: d.reasons, deleted,
        });
      }
    }
    return rows;
  } finally {
    await lock?.release();
  }
}

/**
 * `nightjar forget [--job JOB] [--dry-run] [--json]`: applies each job's `keep` policy
 * (jobs without one are skipped and named), printing every snapshot with keep/forget and
 * why. Exit 1 when some job's target could not be processed (the others still are).
 */
export function registerForget(program: Command, env: CliEnv): void {
  program
    .command('forget')
    .description("remove snapshots that the jobs' keep policies no longer want (data stays until prune)")
    .addOption(nodeDirOption())
    .option('--job <job>', 'only this job')
    .option('--dry-run', 'show what would be forgotten, delete nothing')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { nodeDirectory: string; job?: string; dryRun?: boolean; json?: boolean }) => {
      const { findJob, jobTarget, loadNodeConfig, withTarget } = await import('../open-target.js');
      const config: NodeConfig = await loadNodeConfig(nodeDirLayout(opts.nodeDirectory));
      const jobs = opts.job !== undefined ? [findJob(config, opts.job)] : Object.values(config.jobs);
      const rows: ForgetRow[] = [];
      const skipped: string[] = [];
      let failed = 0;
      for (const job of jobs) {
        if (!job.keep) {
          skipped.push(job.name);
          continue;
        }
        const target = jobTarget(config, job);
        try {
          rows.push(
            ...(await withTarget(target, { clock: env.clock, workers: 1 }, ({ repo, store }) =>
              forgetJob(repo, store, job, { clock: env.clock, dryRun: opts.dryRun === true, targetAlias: target.alias }),
            )),
          );
        } catch (err) {
          env.stderr.write(`nightjar: forget ${job.name}: ${err instanceof Error ? err.message : String(err)}\n`);
          failed++;
        }
      }
      if (opts.json) {
        env.stdout.write(JSON.stringify({ dryRun: opts.dryRun === true, skippedJobs: skipped, snapshots: rows }, null, 2) + '\n');
      } else {
        for (const name of skipped) env.stdout.write(`job ${name}: no keep policy, nothing forgotten\n`);
        for (const r of rows) {
          const verb = r.keep ? 'keep  ' : opts.dryRun ? 'would forget' : 'forget';
          env.stdout.write(`${verb}  ${r.id.slice(0, 12)}  ${r.time.replace(/\.\d+Z$/, 'Z')}  ${r.job}@${r.host}  ${r.reasons.join(', ')}\n`);
        }
        const gone = rows.filter((r) => !r.keep).length;
        env.stdout.write(
          `${gone} snapshot${gone === 1 ? '' : 's'} ${opts.dryRun ? 'would be forgotten' : 'forgotten'}, ${rows.length - gone} kept` +
            (gone > 0 && !opts.dryRun ? ' (run nightjar prune to free their data)' : '') + '\n',
        );
      }
      if (failed > 0) throw new CliExit(EXIT.failure, `${failed} job(s) could not be processed`);
    });
}

import type { Command } from 'commander';
import type { BackupDb } from '../../backupdb/index.js';
import type { HookInfo, HookKind } from '../../jobs/hooks.js';
import type { JobStatus, NodeStatus } from '../../wui/status.js';
import type { BandwidthManager } from '../bandwidth.js';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { formatBytes } from '../config/units.js';
import { formatCount } from '../../jobs/report.js';
import type { NodeApiClient } from '../node-api-client.js';
import { nodeDirLayout } from '../node-dir.js';
import type { OpenedTarget } from '../open-target.js';
import { nodeDirOption } from './options.js';

interface RunJobOpts {
  nodeDirectory: string;
  dryRun?: boolean;
  json?: boolean;
  allowMassDelete?: boolean;
  ignoreWindow?: boolean;
}

/** How often a run on the node is polled (the status is cheap; a second is responsive enough). */
const POLL_MS = 1000;

/**
 * `nightjar run-job JOB [--dry-run] [--json] [--allow-mass-delete]`: one backup run now,
 * in the foreground. Progress bar on stderr when it is a TTY; the final report on stdout
 * (as JSON with --json). Exit 0 complete, 3 partial (warnings), 1 failed or refused.
 * SIGINT/SIGTERM cancel the run cleanly (stored work is kept for the next run).
 *
 * With a node running on the directory, the run is the node's (one writer per repository):
 * the command asks it to run the job now (inside the job's window unless --ignore-window),
 * follows the run through the node's status until it ends, and exits with the run's code.
 * Interrupting the command then only stops following; the run goes on in the node.
 * `--dry-run` always runs here: it writes nothing.
 */
export function registerRunJob(program: Command, env: CliEnv): void {
  program
    .command('run-job')
    .description('run one backup of JOB now, in the foreground')
    .argument('<job>', 'job name from node.cfg')
    .addOption(nodeDirOption())
    .option('--dry-run', 'walk and compare only: report what would be stored, write nothing')
    .option('--json', 'print the final report as JSON on stdout')
    .option('--allow-mass-delete', 'override the mass-deletion guard (missing/empty source, many files gone)')
    .option('--ignore-window', "with a running node: start now even outside the job's allowed times")
    .action((jobName: string, opts: RunJobOpts) => runJob(jobName, opts, env));
}

async function runJob(jobName: string, opts: RunJobOpts, env: CliEnv): Promise<void> {
  const { findJob, jobTarget, loadNodeConfig, openTarget } = await import('../open-target.js');
  const layout = nodeDirLayout(opts.nodeDirectory);
  const config = await loadNodeConfig(layout);
  const job = findJob(config, jobName);
  if (!opts.dryRun) {
    const { connectToRunningNode } = await import('../node-api-client.js');
    const client = await connectToRunningNode(layout);
    if (client) {
      if (opts.allowMassDelete) {
        throw new CliExit(EXIT.usage, `a node runs on ${layout.root}: --allow-mass-delete works only without it (stop the node, or run the job there)`);
      }
      await runOnNode(client, job.name, opts, env);
      return;
    }
  }
  const target = jobTarget(config, job);
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => ac.abort(new Error(`cancelled by ${sig}`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Start-up steps overlap: the key derivation (scrypt, ~0.1 s on the thread pool) starts
  // as soon as the config is read, while the backupdb opens and the run's modules load.
  // A pre_command may mount the target's disk: then the repository opens after it (no hooks on a dry run).
  const early = opts.dryRun === true || !job.preCommand;
  let openedP: Promise<OpenedTarget> | undefined;
  const openRepo = (): Promise<OpenedTarget> => {
    if (!openedP) {
      const runBandwidth = bandwidthP.then((b) => b.forRun({ job: job.name, target: target.alias, signal: ac.signal }));
      openedP = openTarget(target, { clock: env.clock, workers: config.node.workers, bandwidth: runBandwidth, startWorkers: true, sharedLock: !opts.dryRun });
      openedP.catch(() => {}); // awaited below
    }
    return openedP;
  };
  // The rest loads after the repository's modules, so that the derivation starts first.
  const first = early ? import('../../repo/repository.js') : Promise.resolve(null);
  const dbP = first.then(() => import('../../backupdb/index.js')).then((m) => m.openBackupDb(layout.backupDbFile, { clock: env.clock }));
  // The same upload limits, budgets and accounting as runs the node starts.
  const bandwidthP = Promise.all([dbP, import('../bandwidth.js')]).then(async ([db, { BandwidthManager }]) => {
    const b = new BandwidthManager({ config: () => config, db, clock: env.clock });
    await b.start({ tick: false });
    return b;
  });
  bandwidthP.catch(() => {}); // awaited below (or by openTarget)
  if (early) void openRepo();
  const modsP = first.then(() =>
    Promise.all([import('../../jobs/job-run.js'), import('../../jobs/hooks.js'), import('../../jobs/progress-bar.js'), import('../../jobs/report.js')]),
  );
  const settled = <T>(p: Promise<T> | undefined): Promise<T | null> => (p ? p.catch(() => null) : Promise.resolve(null));
  let repoClosed = false;
  const closeRepo = async (): Promise<void> => {
    if (repoClosed) return;
    repoClosed = true;
    const opened = await settled(openedP);
    await opened?.repo.close().catch(() => {});
    await opened?.store.close().catch(() => {});
    const bandwidth: BandwidthManager | null = await settled(bandwidthP);
    await bandwidth?.stop();
  };
  try {
    const [db, [{ runBackupRecorded }, { PreCommandFailedError, runJobHook }, { ProgressBar }, { formatRunReport, runReportJson }]] =
      await Promise.all([dbP, modsP]);
    // Hooks as for runs the node starts (issue 9), recorded in the event log; none for a dry run.
    const hook = (kind: HookKind, info: HookInfo) =>
      opts.dryRun
        ? Promise.resolve(null)
        : runJobHook(kind, info, {
            ...(kind === 'pre_command' ? { signal: ac.signal } : {}),
            record: async (e) => {
              if (e.level !== 'info') env.stderr.write(`nightjar: ${e.message}\n`);
              await db.events.addEvent({ job: job.name, level: e.level, kind: e.kind, message: e.message, detail: e.detail });
            },
          });
    const pre = await hook('pre_command', { job });
    if (pre && !pre.ok) {
      const err = new PreCommandFailedError(pre, job.hookTimeoutMs);
      await hook('on_failure', { job, result: 'failed', error: err.message });
      throw new CliExit(EXIT.failure, err.message);
    }
    const opened = await openRepo();
    const bar = new ProgressBar(env.stderr as NodeJS.WritableStream & { isTTY?: boolean }, env.clock);
    let result;
    try {
      const lock = opts.dryRun ? null : (opened.repo.takeOpeningLock() ?? (await opened.repo.lock(false)));
      try {
        result = await runBackupRecorded({
          db,
          targetAlias: target.alias,
          repo: opened.repo,
          fileCache: db.fileCache,
          job,
          clock: env.clock,
          dryRun: opts.dryRun === true,
          allowMassDelete: opts.allowMassDelete === true,
          signal: ac.signal,
          skipDirs: [layout.root, ...(target.kind === 'local' ? [target.location] : [])],
          onProgress: (p) => bar.backup(p),
        });
      } finally {
        await lock?.release();
      }
    } finally {
      bar.done();
      await closeRepo();
    }
    {
      const outcome = ({ complete: 'completed', partial: 'partial', refused: 'refused', failed: 'failed', cancelled: 'cancelled' } as const)[result.status];
      const info: HookInfo = {
        job, result: outcome, stats: result.stats,
        ...(result.snapshot ? { snapshotId: result.snapshot.id } : {}),
        ...(result.error !== undefined ? { error: result.error } : {}),
      };
      await hook('post_command', info);
      if (outcome === 'failed') await hook('on_failure', info);
    }
    if (opts.json) env.stdout.write(JSON.stringify(runReportJson(job.name, result), null, 2) + '\n');
    else env.stdout.write(formatRunReport(job.name, result));
    if (result.status === 'partial') throw new CliExit(EXIT.partial, '');
    if (result.status !== 'complete') throw new CliExit(EXIT.failure, '');
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await closeRepo();
    const db: BackupDb | null = await settled(dbP);
    await db?.close();
  }
}

/** Exit codes by the run's result, as for a local run. */
function exitFor(result: string | null | undefined): number {
  return result === 'completed' ? EXIT.ok : result === 'partial' ? EXIT.partial : EXIT.failure;
}

/**
 * Asks the running node to run `job` now and follows it until the run ends (a new entry in
 * the job's run history). Progress lines go to stderr, the result to stdout; throws CliExit
 * with the run's exit code when it did not complete.
 */
async function runOnNode(client: NodeApiClient, job: string, opts: RunJobOpts, env: CliEnv): Promise<void> {
  const jobOf = async (): Promise<JobStatus> => {
    const st = await client.get<NodeStatus>('/api/v1/status');
    const j = st.jobs.find((x) => x.name === job);
    if (!j) throw new CliExit(EXIT.failure, `the running node has no job ${job} (reload it after editing node.cfg)`);
    return j;
  };
  const before = await jobOf();
  const answer = await client.post<{ result: string }>(`/api/v1/jobs/${encodeURIComponent(job)}/run`, { ignoreWindow: opts.ignoreWindow === true });
  if (answer.result === 'paused') {
    throw new CliExit(EXIT.failure, `${job} is paused: the node keeps the request until you resume it (nightjar resume ${job})`);
  }
  env.stderr.write(
    answer.result === 'already_running'
      ? `${job} is already running in the node at ${client.url}; following it\n`
      : `asked the node at ${client.url} to run ${job}${opts.ignoreWindow ? ' now, ignoring its window' : ''}; following it (Ctrl-C stops following, not the run)\n`,
  );
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let said = '';
  let last = before;
  try {
    for (;;) {
      try {
        await env.clock.sleep(POLL_MS, ac.signal);
      } catch {
        throw new CliExit(EXIT.failure, `stopped following; ${job} goes on in the node (nightjar status shows it)`);
      }
      try {
        last = await jobOf();
      } catch (err) {
        if (err instanceof CliExit) throw err;
        throw new CliExit(EXIT.failure, `lost the node (${err instanceof Error ? err.message : String(err)}); an unfinished run continues at the node's next start`);
      }
      const ended = last.lastRunId != null && last.lastRunId !== before.lastRunId;
      if (ended) break;
      const p = last.progress;
      const line =
        `${job}: ${last.label}` +
        (p ? `, ${formatCount(p.filesDone)} files, ${formatBytes(p.bytesRead)} read` : '') +
        (last.state === 'waiting_window' && last.nextStartAt ? `, starts ${last.nextStartAt}` : '') +
        (last.eta && last.state === 'running' ? `, ETA ${last.eta.text}` : '');
      if (line !== said) {
        env.stderr.write(line + '\n');
        said = line;
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const code = exitFor(last.lastResult);
  if (opts.json) env.stdout.write(JSON.stringify({ job, via: 'node', runId: last.lastRunId, result: last.lastResult, error: last.lastError }, null, 2) + '\n');
  else env.stdout.write(`${job}: ${last.lastResult ?? 'ended'} (run #${last.lastRunId} on the node)${last.lastError ? `: ${last.lastError}` : ''}\n`);
  if (code !== EXIT.ok) throw new CliExit(code, '');
}


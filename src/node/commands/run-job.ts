import type { Command } from 'commander';
import { openBackupDb } from '../../backupdb/index.js';
import { runBackupRecorded } from '../../jobs/job-run.js';
import { ProgressBar } from '../../jobs/progress-bar.js';
import { formatRunReport, runReportJson } from '../../jobs/report.js';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { nodeDirLayout } from '../node-dir.js';
import { findJob, jobTarget, loadNodeConfig, openTarget } from '../open-target.js';
import { nodeDirOption } from './options.js';

interface RunJobOpts {
  nodeDirectory: string;
  dryRun?: boolean;
  json?: boolean;
  allowMassDelete?: boolean;
}

/**
 * `nightjar run-job JOB [--dry-run] [--json] [--allow-mass-delete]`: one backup run now,
 * in the foreground. Progress bar on stderr when it is a TTY; the final report on stdout
 * (as JSON with --json). Exit 0 complete, 3 partial (warnings), 1 failed or refused.
 * SIGINT/SIGTERM cancel the run cleanly (stored work is kept for the next run).
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
    .action(async (jobName: string, opts: RunJobOpts) => {
      const layout = nodeDirLayout(opts.nodeDirectory);
      const config = await loadNodeConfig(layout);
      const job = findJob(config, jobName);
      const target = jobTarget(config, job);
      const db = await openBackupDb(layout.backupDbFile, { clock: env.clock });
      const ac = new AbortController();
      const onSignal = (sig: NodeJS.Signals) => ac.abort(new Error(`cancelled by ${sig}`));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const bar = new ProgressBar(env.stderr as NodeJS.WritableStream & { isTTY?: boolean }, env.clock);
      try {
        const opened = await openTarget(target, { clock: env.clock, workers: config.node.workers });
        let result;
        try {
          const lock = opts.dryRun ? null : await opened.repo.lock(false);
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
              skipDirs: target.kind === 'local' ? [target.location] : [],
              onProgress: (p) => bar.backup(p),
            });
          } finally {
            await lock?.release();
          }
        } finally {
          bar.done();
          await opened.repo.close().catch(() => {});
          await opened.store.close().catch(() => {});
        }
        if (opts.json) env.stdout.write(JSON.stringify(runReportJson(job.name, result), null, 2) + '\n');
        else env.stdout.write(formatRunReport(job.name, result));
        if (result.status === 'partial') throw new CliExit(EXIT.partial, '');
        if (result.status !== 'complete') throw new CliExit(EXIT.failure, '');
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await db.close();
      }
    });
}

import type { Command } from 'commander';
import type { Snapshot } from '../../repo/types.js';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { nodeDirLayout } from '../node-dir.js';
import { nodeDirOption } from './options.js';

/**
 * `nightjar snapshots [--job JOB] [--json]`: every snapshot in the targets the node's
 * jobs use (or the job's target), oldest first. Targets that cannot be opened are named
 * on stderr and skipped. `--json`: an array of snapshots with their target alias.
 */
export function registerSnapshots(program: Command, env: CliEnv): void {
  program
    .command('snapshots')
    .description('list snapshots')
    .addOption(nodeDirOption())
    .option('--job <job>', 'only snapshots of JOB (from its target)')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { nodeDirectory: string; job?: string; json?: boolean }) => {
      const [{ loadNodeConfig, targetsFor, withEachTarget }, { formatBytes, formatCount }, { statsFromJson }] = await Promise.all([
        import('../open-target.js'),
        import('../../jobs/report.js'),
        import('../../jobs/run-stats.js'),
      ]);
      const layout = nodeDirLayout(opts.nodeDirectory);
      const config = await loadNodeConfig(layout);
      const rows: (Snapshot & { targetAlias: string })[] = [];
      const failedTargets = await withEachTarget(
        targetsFor(config, opts.job),
        { clock: env.clock, workers: 1 },
        (target, err) => env.stderr.write(`nightjar: skipping target ${target.alias}: ${err.message}\n`),
        async (target, { repo }) => {
          for (const s of await repo.listSnapshots()) {
            if (opts.job === undefined || s.job === opts.job) rows.push({ ...s, targetAlias: target.alias });
          }
        },
      );
      rows.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
      if (opts.json) {
        env.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        if (failedTargets > 0) throw new CliExit(EXIT.failure, `${failedTargets} target(s) could not be read`);
        return;
      }
      if (rows.length === 0) {
        env.stdout.write('no snapshots\n');
        return;
      }
      const lines = [['ID', 'TIME', 'JOB', 'HOST', 'TARGET', 'FILES', 'SIZE', 'SOURCE']];
      for (const s of rows) {
        const st = statsFromJson(s.stats);
        lines.push([
          s.id.slice(0, 12),
          s.time.replace(/\.\d+Z$/, 'Z'),
          s.job,
          s.host,
          s.targetAlias,
          st?.filesTotal !== undefined ? formatCount(st.filesTotal) : '?',
          st?.bytesTotal !== undefined ? formatBytes(st.bytesTotal) : '?',
          s.source,
        ]);
      }
      env.stdout.write(table(lines));
      env.stdout.write(`${rows.length} snapshot${rows.length === 1 ? '' : 's'}\n`);
      if (failedTargets > 0) throw new CliExit(EXIT.failure, `${failedTargets} target(s) could not be read`);
    });
}

/** Left-aligned columns separated by two spaces. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

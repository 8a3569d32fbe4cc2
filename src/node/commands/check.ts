import { randomInt } from 'node:crypto';
import type { Command } from 'commander';
import type { CheckReport } from '../../repo/types.js';
import type { DataSubset } from '../../repo/verify.js';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { nodeDirLayout } from '../node-dir.js';
import { nodeDirOption } from './options.js';

/**
 * `nightjar check [--read-data] [--job JOB] [--json]`: verifies the repository of every
 * target (or JOB's): indexes, trees and snapshots readable and consistent; with
 * --read-data every blob decrypts to its id. Names each damaged object and the snapshot
 * paths that depend on it. Exit 0 when all is well, 1 on any damage.
 */
export function registerCheck(program: Command, env: CliEnv): void {
  program
    .command('check')
    .description('verify the repositories; --read-data also reads every stored byte back')
    .addOption(nodeDirOption())
    .option('--read-data', 'read and verify every blob')
    .option('--read-data-subset <subset>', 'read and verify a share of the packs: n/t (bucket n of t) or P% (a random bucket)')
    .option('--job <job>', "only JOB's target")
    .option('--json', 'print the reports as JSON on stdout')
    .action(async (opts: { nodeDirectory: string; readData?: boolean; readDataSubset?: string; job?: string; json?: boolean }) => {
      const [{ formatBytes, formatCount }, { listPacks, packsInSubset, parseDataSubset, verifyPacks }, { loadNodeConfig, targetsFor, withEachTarget }] = await Promise.all([
        import('../../jobs/report.js'),
        import('../../repo/verify.js'),
        import('../open-target.js'),
      ]);
      let subset: DataSubset | null = null;
      try {
        // P%: a random bucket (the scheduled verify rotates through them instead).
        if (opts.readDataSubset !== undefined && !opts.readData) subset = parseDataSubset(opts.readDataSubset, randomInt(1_000_000));
      } catch (err) {
        throw new CliExit(EXIT.usage, (err as Error).message);
      }
      const layout = nodeDirLayout(opts.nodeDirectory);
      const config = await loadNodeConfig(layout);
      const reports: (CheckReport & { target: string })[] = [];
      const failedTargets = await withEachTarget(
        targetsFor(config, opts.job),
        { clock: env.clock, workers: config.node.workers },
        (target, err) => env.stderr.write(`nightjar: skipping target ${target.alias}: ${err.message}\n`),
        async (target, { repo }) => {
            const lock = await repo.lock(false);
            try {
              const report = await repo.check({ readData: opts.readData === true });
              if (subset) {
                // Issue 9: read back one bucket of the packs (every pack once per rotation).
                const v = await verifyPacks(repo, packsInSubset(await listPacks(repo), subset));
                for (const p of v.problems) report.problems.push({ object: `data/${p.pack.slice(0, 2)}/${p.pack}`, kind: 'hash-mismatch', message: p.message, affected: [] });
                report.bytesVerified += v.bytesRead;
                report.ok &&= v.problems.length === 0;
              }
              reports.push({ target: target.alias, ...report });
            } finally {
              await lock.release();
            }
        },
      );
      const ok = failedTargets === 0 && reports.every((r) => r.ok);
      if (opts.json) env.stdout.write(JSON.stringify(reports, null, 2) + '\n');
      else {
        for (const r of reports) {
          env.stdout.write(
            `target ${r.target}: ${r.ok ? 'no damage found' : `${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`} ` +
              `(${formatCount(r.snapshots)} snapshots, ${formatCount(r.trees)} trees, ${formatCount(r.blobs)} blobs, ${formatCount(r.packs)} packs` +
              `${opts.readData || subset ? `, ${formatBytes(r.bytesVerified)} read back${subset ? ` (subset ${subset.bucket + 1}/${subset.of})` : ''}` : ''})\n`,
          );
          for (const p of r.problems) {
            env.stdout.write(`  DAMAGED ${p.object} (${p.kind}): ${p.message}\n`);
            for (const a of p.affected.slice(0, 20)) env.stdout.write(`    affects ${a}\n`);
            if (p.affected.length > 20) env.stdout.write(`    … and ${p.affected.length - 20} more paths\n`);
          }
          if (r.unreferencedPacks.length) {
            env.stdout.write(`  ${r.unreferencedPacks.length} unreferenced packs (left by an interrupted run; harmless, prune removes them)\n`);
          }
        }
      }
      if (!ok) throw new CliExit(EXIT.failure, 'check found damage');
    });
}

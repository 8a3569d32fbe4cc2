import type { Command } from 'commander';
import { formatBytes } from '../config/units.js';
import type { PruneReport } from '../../repo/prune.js';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { nodeDirLayout } from '../node-dir.js';
import { nodeDirOption } from './options.js';

/**
 * `nightjar prune [--target ALIAS] [--dry-run] [--json]`: removes data no snapshot
 * references from every target the jobs use (src/repo/prune.ts), under an exclusive
 * repository lock; reports bytes freed. Exit 1 when some target was refused or failed
 * (a failed listing, a lock held by a backup); the others are still pruned.
 */
export function registerPrune(program: Command, env: CliEnv): void {
  program
    .command('prune')
    .description('delete data that no snapshot references (run forget first)')
    .addOption(nodeDirOption())
    .option('--target <alias>', 'only this target')
    .option('--dry-run', 'show what would be freed, delete nothing')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { nodeDirectory: string; target?: string; dryRun?: boolean; json?: boolean }) => {
      const [{ loadNodeConfig, targetsFor, withTarget }, { prune }] = await Promise.all([import('../open-target.js'), import('../../repo/prune.js')]);
      const config = await loadNodeConfig(nodeDirLayout(opts.nodeDirectory));
      let targets = targetsFor(config);
      if (opts.target !== undefined) {
        targets = targets.filter((t) => t.alias === opts.target);
        if (targets.length === 0) throw new CliExit(EXIT.usage, `no target named ${opts.target} in ${config.file}`);
      }
      const results: (PruneReport & { target: string })[] = [];
      let failed = 0;
      for (const target of targets) {
        try {
          const r = await withTarget(target, { clock: env.clock, workers: 1 }, ({ repo }) => prune(repo, { dryRun: opts.dryRun === true }));
          results.push({ ...r, target: target.alias });
          if (!opts.json) {
            const verb = r.dryRun ? 'would free' : 'freed';
            env.stdout.write(
              `${target.alias}: ${r.snapshots} snapshot(s), ${r.liveBlobs} live blob(s); ${verb} ${formatBytes(r.bytesFreed)} ` +
                `(${r.deletedPacks.length} unused pack(s), ${r.unreferencedPacks.length} unreferenced pack(s), ${r.repackedPacks.length} pack(s) repacked into ${r.newPacks.length}, ${r.rewrittenIndexes} index object(s) rewritten)` +
                (r.garbageBytesKept > 0 ? `; ${formatBytes(r.garbageBytesKept)} of garbage stays in packs that still hold live data` : '') +
                '\n',
            );
          }
        } catch (err) {
          failed++;
          env.stderr.write(`nightjar: prune ${target.alias}: ${err instanceof Error ? err.message : String(err)}\n`);
        }
      }
      if (opts.json) env.stdout.write(JSON.stringify(results, null, 2) + '\n');
      if (failed > 0) throw new CliExit(EXIT.failure, `${failed} target(s) not pruned`);
    });
}

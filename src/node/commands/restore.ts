import type { Command } from 'commander';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { nodeDirLayout } from '../node-dir.js';
import { nodeDirOption } from './options.js';

/**
 * `nightjar restore SNAPSHOT[:PATH] DEST [--job JOB]` and
 * `nightjar restore [:PATH] DEST --as-of TIME [--job JOB]` (the newest snapshot at or
 * before TIME). The whole snapshot, or a directory PATH, goes directly into DEST; a file
 * PATH becomes DEST/<name>. Progress bar on a TTY. Exit 0 when everything was restored,
 * 3 when some entries could not be (listed), 1 on failure.
 */
export function registerRestore(program: Command, env: CliEnv): void {
  program
    .command('restore')
    .description('restore a snapshot, or one path of it, into DEST')
    .argument('<snapshot-or-dest>', 'SNAPSHOT[:PATH] (id, unique prefix or latest); with --as-of: [:PATH] or DEST')
    .argument('[dest]', 'directory to restore into (created when missing)')
    .addOption(nodeDirOption())
    .option('--as-of <time>', 'the newest snapshot at or before TIME (2024-05-01 or 2024-05-01T22:00)')
    .option('--job <job>', 'only snapshots of JOB (with latest or --as-of)')
    .option('--json', 'print the restore statistics as JSON on stdout')
    .action(
      async (
        first: string,
        second: string | undefined,
        opts: { nodeDirectory: string; asOf?: string; job?: string; json?: boolean },
      ) => {
        const { loadNodeConfig, parseAsOf, parseSnapshotArg, withSnapshot } = await import('../open-target.js');
        let ref: string;
        let path: string;
        let dest: string;
        if (second === undefined) {
          if (!opts.asOf) throw new CliExit(EXIT.usage, 'restore: missing DEST (usage: nightjar restore SNAPSHOT[:PATH] DEST)');
          ({ ref, path } = { ref: 'latest', path: '' });
          dest = first;
        } else {
          ({ ref, path } = parseSnapshotArg(first));
          if (ref === '') ref = 'latest';
          dest = second;
        }
        const asOf = opts.asOf ? parseAsOf(opts.asOf) : undefined;
        const layout = nodeDirLayout(opts.nodeDirectory);
        const config = await loadNodeConfig(layout);
        const startMs = env.clock.nowMs();
        // The restore's own modules load while the repository opens (after its modules, so the key derivation starts first).
        const modsP = import('../../repo/repository.js').then(() =>
          Promise.all([import('../../jobs/progress-bar.js'), import('../../jobs/report.js'), import('../../jobs/restore.js'), import('../../jobs/run-stats.js')]),
        );
        modsP.catch(() => {}); // awaited below
        const stats = await withSnapshot(
          config,
          ref,
          { ...(opts.job ? { job: opts.job } : {}), ...(asOf ? { asOf } : {}), clock: env.clock, workers: config.node.workers },
          async ({ repo }, snap) => {
            const [{ ProgressBar }, , { restoreSnapshot, RestorePathError }, { statsFromJson }] = await modsP;
            const bar = new ProgressBar(env.stderr as NodeJS.WritableStream & { isTTY?: boolean }, env.clock);
            const total = path === '' ? (statsFromJson(snap.stats)?.bytesTotal ?? 0) : 0;
            if (!opts.json) env.stderr.write(`restoring snapshot ${snap.id.slice(0, 12)} (${snap.job}, ${snap.time})${path ? ` path ${path}` : ''} into ${dest}\n`);
            try {
              return await restoreSnapshot(repo, snap, path, dest, { onProgress: (s) => bar.restore(s, total) });
            } catch (err) {
              if (err instanceof RestorePathError) throw new CliExit(EXIT.failure, `${snap.id.slice(0, 12)}:${err.message}`);
              throw err;
            } finally {
              bar.done();
            }
          },
        );
        const [, { formatRestoreReport }] = await modsP;
        if (opts.json) env.stdout.write(JSON.stringify({ dest, durationMs: env.clock.nowMs() - startMs, ...stats }, null, 2) + '\n');
        else env.stdout.write(formatRestoreReport(dest, stats, env.clock.nowMs() - startMs));
        if (stats.warningCount > 0) throw new CliExit(EXIT.partial, '');
      },
    );
}

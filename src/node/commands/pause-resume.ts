import type { Command } from 'commander';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { nodeDirLayout } from '../node-dir.js';
import { nodeDirOption } from './options.js';

/**
 * `nightjar pause JOB|--all` and `nightjar resume JOB|--all`. With a running node the
 * node does it (a running backup parks within a second); without one the flag is written
 * to the backupdb and the node honours it when it starts. Either way it survives restarts.
 */
export function registerPauseResume(program: Command, env: CliEnv): void {
  for (const action of ['pause', 'resume'] as const) {
    program
      .command(action)
      .description(action === 'pause' ? 'pause a job (or all): a running backup stops at the next chunk, none starts' : 'resume a paused job (or all)')
      .argument('[job]', 'job name')
      .option('--all', 'every job')
      .addOption(nodeDirOption())
      .action(async (job: string | undefined, opts: { nodeDirectory: string; all?: boolean }) => {
        if ((job === undefined) === (opts.all !== true)) throw new CliExit(EXIT.usage, `${action}: name one JOB or give --all`);
        const layout = nodeDirLayout(opts.nodeDirectory);
        const [{ loadNodeConfig }, { connectToRunningNode, NodeApiError }] = await Promise.all([import('../open-target.js'), import('../node-api-client.js')]);
        const config = await loadNodeConfig(layout);
        if (job !== undefined && !Object.hasOwn(config.jobs, job)) {
          throw new CliExit(EXIT.usage, `no job named "${job}" in ${layout.configFile} (jobs: ${Object.keys(config.jobs).join(', ') || 'none'})`);
        }
        const client = await connectToRunningNode(layout);
        if (client) {
          try {
            await client.post(job === undefined ? `/api/v1/${action}` : `/api/v1/jobs/${encodeURIComponent(job)}/${action}`);
          } catch (err) {
            if (err instanceof NodeApiError) throw new CliExit(EXIT.failure, err.message);
            throw err;
          }
        } else {
          const { openBackupDb } = await import('../../backupdb/index.js');
          const db = await openBackupDb(layout.backupDbFile, { clock: env.clock });
          try {
            await db.jobs.setPaused(job === undefined ? Object.keys(config.jobs) : job, action === 'pause');
          } finally {
            await db.close();
          }
        }
        const what = job ?? 'all jobs';
        env.stdout.write(`${what}: ${action === 'pause' ? 'paused' : 'resumed'}${client ? '' : ' (takes effect when the node starts)'}\n`);
      });
  }
}

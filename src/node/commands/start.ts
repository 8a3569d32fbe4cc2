import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import type { RunningNode } from '../daemon.js';
import { nodeDirLayout } from '../node-dir.js';
import { createLocalRepositoryReported } from './create-node.js';
import { nodeDirOption } from './options.js';

/** A stop that takes longer than this is cut short (systemd's default is 90 s; we promise 10). */
const STOP_DEADLINE_MS = 10_000;

export function registerStart(program: Command, env: CliEnv): void {
  program
    .command('start')
    .description('run the node in the foreground (scheduler, status page, storage service) until SIGINT/SIGTERM')
    .addOption(nodeDirOption())
    .action(async (opts: { nodeDirectory: string }) => {
      const layout = nodeDirLayout(opts.nodeDirectory);
      const [{ ConfigError, formatProblem }, { createNode }, { startNode }, { NodeDirLockedError }] = await Promise.all([
        import('../config/config.js'),
        import('../create-node.js'),
        import('../daemon.js'),
        import('../pid-lock.js'),
      ]);
      if (!existsSync(layout.configFile)) {
        await createNode(layout, []);
        env.stdout.write(`no node in ${layout.root} yet: created one (edit ${layout.configFile} to add backup jobs)\n`);
        await createLocalRepositoryReported(layout, env);
      }
      // Signal handlers go in first: a SIGTERM that arrives while the node is still
      // starting must stop it cleanly once it is up, not kill it half-started.
      let node: RunningNode | null = null;
      let pendingStop: NodeJS.Signals | null = null;
      const onStop = (signal: NodeJS.Signals) => {
        if (!node) {
          pendingStop ??= signal;
          return;
        }
        const running = node;
        const deadline = setTimeout(() => {
          running.log.error(`stop took longer than ${STOP_DEADLINE_MS / 1000} s; exiting`);
          process.exit(EXIT.failure);
        }, STOP_DEADLINE_MS);
        deadline.unref();
        void running.stop(signal);
      };
      const onReload = () => void node?.reload();
      process.on('SIGINT', onStop);
      process.on('SIGTERM', onStop);
      process.on('SIGHUP', onReload);
      try {
        node = await startNode(layout, { clock: env.clock, out: env.stdout });
        if (pendingStop) onStop(pendingStop);
        await node.stopped;
      } catch (err) {
        if (err instanceof ConfigError) {
          const lines = err.problems.map((p) => `  ${formatProblem(p)}`);
          throw new CliExit(EXIT.usage, `${layout.configFile} has ${err.problems.length} problem(s):\n${lines.join('\n')}`);
        }
        if (err instanceof NodeDirLockedError) throw new CliExit(EXIT.failure, err.message);
        throw err;
      } finally {
        process.off('SIGINT', onStop);
        process.off('SIGTERM', onStop);
        process.off('SIGHUP', onReload);
      }
    });
}

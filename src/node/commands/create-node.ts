import type { Command } from 'commander';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { nodeDirLayout, type NodeDirLayout } from '../node-dir.js';
import { nodeDirOption } from './options.js';

export function registerCreateNode(program: Command, env: CliEnv): void {
  program
    .command('create-node')
    .description('create a node directory: node.cfg, private/ keys and tokens, a local repository target')
    .argument('[dir]', 'node directory (default: -d, or ~/.nightjar)')
    .addOption(nodeDirOption())
    .option('--source <path>', 'back PATH up daily to the local repository (repeatable; jobs b1, b2, …)', collect, [])
    .action(async (dir: string | undefined, opts: { nodeDirectory: string; source: string[] }) => {
      const layout = nodeDirLayout(dir ?? opts.nodeDirectory);
      const { createNode, NodeExistsError } = await import('../create-node.js');
      try {
        const { jobs } = await createNode(layout, opts.source);
        env.stdout.write(`created node in ${layout.root}\n`);
        jobs.forEach((job, i) => env.stdout.write(`  job ${job}: ${opts.source[i]} -> local (daily)\n`));
        await createLocalRepositoryReported(layout, env);
        env.stdout.write(`edit ${layout.configFile}, then run: nightjar start -d ${layout.root}\n`);
      } catch (err) {
        if (err instanceof NodeExistsError) throw new CliExit(EXIT.failure, err.message);
        throw err;
      }
    });
}

/**
 * Creates the node's embedded `local` repository now (createLocalRepository), saying so;
 * when that fails, a warning: the node stays as created and its first run creates the
 * repository (and reports the error again).
 */
export async function createLocalRepositoryReported(layout: NodeDirLayout, env: CliEnv): Promise<void> {
  try {
    const { createLocalRepository } = await import('../create-node.js');
    const location = await createLocalRepository(layout, env.clock);
    if (location) env.stdout.write(`created repository ${location}\n`);
  } catch (err) {
    env.stderr.write(`nightjar: the local repository is not created yet (the first run will): ${err instanceof Error ? err.message : String(err)}\n`);
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

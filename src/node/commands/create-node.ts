import type { Command } from 'commander';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { nodeDirLayout } from '../node-dir.js';
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
        env.stdout.write(`edit ${layout.configFile}, then run: nightjar start -d ${layout.root}\n`);
      } catch (err) {
        if (err instanceof NodeExistsError) throw new CliExit(EXIT.failure, err.message);
        throw err;
      }
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

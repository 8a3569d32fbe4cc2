import { join } from 'node:path';
import type { Command } from 'commander';
import type { ClientStatus } from '../../server/storage-service.js';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { formatBytes } from '../config/units.js';
import { nodeDirLayout } from '../node-dir.js';
import { nodeDirOption } from './options.js';

/**
 * `nightjar clients [--json] [-d DIR]`: the peers this node stores backups for, with
 * usage, quota, append-only, last seen and last completed backup, read from disk (works
 * whether or not the node runs; "last seen" of a running node may lag up to 5 minutes).
 * Stale clients (no completed backup within `[storage] stale_after`) are flagged.
 */
export function registerClients(program: Command, env: CliEnv): void {
  program
    .command('clients')
    .description('list the peers that store their backups on this node')
    .addOption(nodeDirOption())
    .option('--json', 'print a JSON array')
    .action(async (opts: { nodeDirectory: string; json?: boolean }) => {
      const [{ ConfigError, formatProblem, loadConfig }, { ClientActivity }, { loadClientRecords }, { ClientSpace }, { clientStatus, findStaleClients }] = await Promise.all([
        import('../config/config.js'),
        import('../../server/client-activity.js'),
        import('../../server/client-registry.js'),
        import('../../server/client-space.js'),
        import('../../server/storage-service.js'),
      ]);
      const layout = nodeDirLayout(opts.nodeDirectory);
      let config;
      try {
        config = await loadConfig(layout.configFile, layout.root);
      } catch (err) {
        if (err instanceof ConfigError) throw new CliExit(EXIT.usage, err.problems.map(formatProblem).join('\n'));
        throw err;
      }
      const activity = new ClientActivity(join(config.storage.path, '.state'), env.clock.nowMs());
      const statuses: ClientStatus[] = [];
      for (const record of await loadClientRecords(layout, (m) => env.stderr.write(`warning: ${m}\n`))) {
        statuses.push(await clientStatus(record, config.clients, new ClientSpace(join(config.storage.path, record.name)), activity));
      }
      const stale = new Map(findStaleClients(statuses, env.clock.now(), config.storage.staleAfterMs).map((s) => [s.name, s]));
      if (opts.json) {
        env.stdout.write(JSON.stringify(statuses.map((s) => ({ ...s, stale: stale.has(s.name) }))) + '\n');
        return;
      }
      if (statuses.length === 0) {
        env.stdout.write('no clients (add one with: nightjar add-client NAME)\n');
        return;
      }
      for (const s of statuses) {
        const quota = s.quota === null ? 'no quota' : `of ${formatBytes(s.quota)}`;
        env.stdout.write(
          `${s.name}: ${formatBytes(s.usedBytes)} ${quota} in ${s.objects} objects, ${s.appendOnly ? 'append-only' : 'may delete'}; ` +
            `last seen ${s.lastSeenAt ?? 'never'}; last backup ${s.lastBackupAt ?? 'never'}\n`,
        );
        const st = stale.get(s.name);
        if (st) env.stdout.write(`  ALERT: ${st.message}\n`);
      }
    });
}

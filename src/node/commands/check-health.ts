import type { Command } from 'commander';
import type { NodeStatus } from '../../wui/status.js';
import { CliExit, type CliEnv } from '../cli-env.js';
import type { HealthReport } from '../health.js';
import { nodeDirLayout } from '../node-dir.js';
import { nodeDirOption } from './options.js';

/**
 * `nightjar check-health [--json]`: a Nagios/Icinga plugin. Prints one status line with
 * perfdata (or JSON) and exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (status unreadable).
 * Reads the running node's status, else the backupdb.
 */
export function registerCheckHealth(program: Command, env: CliEnv): void {
  program
    .command('check-health')
    .description('report backup freshness with Nagios exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)')
    .addOption(nodeDirOption())
    .option('--json', 'print the assessment as JSON')
    .action(async (opts: { nodeDirectory: string; json?: boolean }) => {
      // The pure assessment lives in ../health.ts (tested there); the rest loads on demand.
      const { assessHealth, HEALTH, NAMES } = await import('../health.js');
      let report: HealthReport;
      try {
        const [{ loadNodeConfig }, { connectToRunningNode }, { openBackupDb }, { buildNodeStatus }] = await Promise.all([
          import('../open-target.js'),
          import('../node-api-client.js'),
          import('../../backupdb/index.js'),
          import('../node-status.js'),
        ]);
        const layout = nodeDirLayout(opts.nodeDirectory);
        const config = await loadNodeConfig(layout);
        const client = await connectToRunningNode(layout);
        let status: NodeStatus;
        if (client) {
          status = await client.get<NodeStatus>('/api/v1/status');
        } else {
          const db = await openBackupDb(layout.backupDbFile, { clock: env.clock });
          try {
            status = await buildNodeStatus(config, db, env.clock, null);
          } finally {
            await db.close();
          }
        }
        report = assessHealth(status, config, env.clock.now());
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        env.stdout.write(opts.json ? JSON.stringify({ code: HEALTH.unknown, status: 'UNKNOWN', error: why }) + '\n' : `NIGHTJAR UNKNOWN - ${why}\n`);
        throw new CliExit(HEALTH.unknown, '');
      }
      env.stdout.write(opts.json ? JSON.stringify({ ...report, status: NAMES[report.code] }, null, 2) + '\n' : report.line + '\n');
      if (report.code !== HEALTH.ok) throw new CliExit(report.code, '');
    });
}

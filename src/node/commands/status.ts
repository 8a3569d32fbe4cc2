import type { Command } from 'commander';
import type { NodeStatus } from '../../wui/status.js';
import type { CliEnv } from '../cli-env.js';
import type { BandwidthReport } from '../bandwidth.js';
import { formatBytes } from '../config/units.js';
import { nodeDirLayout } from '../node-dir.js';
import { nodeDirOption } from './options.js';

/**
 * `nightjar status [--json]`: every job's state, last result, next start and window, and
 * the progress of a running backup — from the running node's API when a node runs, else
 * from the backupdb.
 */
export function registerStatus(program: Command, env: CliEnv): void {
  program
    .command('status')
    .description("show every job's state, last result, next start and progress")
    .addOption(nodeDirOption())
    .option('--json', 'print the status as JSON')
    .action(async (opts: { nodeDirectory: string; json?: boolean }) => {
      const layout = nodeDirLayout(opts.nodeDirectory);
      const { connectToRunningNode } = await import('../node-api-client.js');
      const client = await connectToRunningNode(layout);
      let status: NodeStatus;
      let bandwidth: BandwidthReport | null = null;
      if (client) {
        status = await client.get<NodeStatus>('/api/v1/status');
        // Limits, rate and budgets from the running node when its API serves them.
        bandwidth = await client.get<BandwidthReport>('/api/v1/bandwidth').catch(() => null);
      }
      if (!client || !bandwidth) {
        const [{ loadNodeConfig }, { openBackupDb }, { buildNodeStatus }, { offlineBandwidthReport }] = await Promise.all([
          import('../open-target.js'),
          import('../../backupdb/index.js'),
          import('../node-status.js'),
          import('../bandwidth.js'),
        ]);
        const config = await loadNodeConfig(layout);
        const db = await openBackupDb(layout.backupDbFile, { clock: env.clock });
        try {
          if (!client) status = await buildNodeStatus(config, db, env.clock, null);
          bandwidth = await offlineBandwidthReport(config, db, env.clock);
        } finally {
          await db.close();
        }
      }
      const { formatBandwidth } = await import('../bandwidth.js');
      env.stdout.write(
        opts.json ? JSON.stringify({ ...status!, bandwidth }, null, 2) + '\n' : formatStatus(status!) + formatBandwidth(bandwidth).join('\n') + '\n',
      );
    });
}

/** The status as text for a terminal. */
export function formatStatus(status: NodeStatus): string {
  const lines = [
    `node ${status.nickname}: ${status.running ? `running since ${status.startedAt}` : 'not running'}`,
  ];
  if (status.jobs.length === 0) lines.push('no jobs configured');
  for (const job of status.jobs) {
    lines.push('', `${job.name}: ${job.label}`);
    lines.push(`  ${job.source} -> ${job.target}, ${job.schedule}, allowed ${job.allowedTimes}${job.window ? ` (window ${job.window})` : ''}`);
    lines.push(`  last result: ${job.lastResult ?? 'never run'}; last success: ${job.lastCompletedAt ?? 'never'}`);
    if (job.lastVerify) lines.push(`  last verify: ${job.lastVerify.result}${job.lastVerify.endedAt ? ` at ${job.lastVerify.endedAt}` : ''}${job.lastVerify.error ? ` (${job.lastVerify.error})` : ''}`);
    if (job.overdue) lines.push(`  OVERDUE since ${job.overdueSince ?? '?'}: no successful backup for longer than alert_after`);
    if (job.nextStartAt) lines.push(`  next start: ${job.nextStartAt}${job.nextStartReason ? ` (${job.nextStartReason})` : ''}`);
    const p = job.progress;
    if (p) {
      const of = p.filesEstimated ? ` of about ${p.filesEstimated}` : '';
      lines.push(`  progress: ${p.filesDone}${of} files (${p.filesNew} new, ${p.filesChanged} changed, ${p.filesUnchanged} unchanged); ${formatBytes(p.bytesRead)} read, ${formatBytes(p.bytesWritten)} written`);
    }
    if (job.eta) lines.push(`  ETA: ${job.eta.text}`);
    if (job.lastError) lines.push(`  last error: ${job.lastError}`);
  }
  return lines.join('\n') + '\n';
}

import { loadConfig, ConfigError, formatProblem } from './config/config.js';
import type { NodeConfig } from './config/types.js';
import { formatDuration } from './config/units.js';
import type { Clock } from './clock.js';
import { Logger } from './log.js';
import type { NodeDirLayout } from './node-dir.js';
import { PidLock } from './pid-lock.js';
import { openBackupDb, type BackupDb } from '../backupdb/index.js';
import { readFile } from 'node:fs/promises';
import { createWebApp } from '../wui/app.js';
import { listenWeb } from '../wui/server.js';
import type { NodeStatus } from '../wui/status.js';

/**
 * A node started by `nightjar start`: the composition root. It owns, in start order, the
 * directory lock, the log, the config, the backupdb, and the services later parts add
 * (scheduler, web UI, storage service); stop() undoes them in reverse order.
 */
export interface RunningNode {
  readonly log: Logger;
  readonly db: BackupDb;
  /** The config in force (replaced by a successful reload). */
  config(): NodeConfig;
  /** Re-reads node.cfg; on any problem logs them all and keeps the old config. */
  reload(): Promise<boolean>;
  /** Clean stop: services, then the backupdb, then the lock. Idempotent. */
  stop(reason: string): Promise<void>;
  /** Resolves once stop() has finished. */
  readonly stopped: Promise<void>;
}

export interface StartOptions {
  readonly clock: Clock;
  readonly out: NodeJS.WritableStream;
}

/**
 * Starts a node on `layout`. Throws NodeDirLockedError when another node runs there and
 * ConfigError when node.cfg is invalid (both before anything else is touched).
 */
export async function startNode(layout: NodeDirLayout, opts: StartOptions): Promise<RunningNode> {
  const { lock, recoveredStalePid } = await PidLock.acquire(layout.pidFile);
  const cleanup: Array<() => Promise<void>> = [() => lock.release()];
  const undo = async () => {
    for (const step of cleanup.reverse()) await step().catch(() => {});
  };
  try {
    const log = new Logger(opts.clock, opts.out, layout.logDir);
    if (recoveredStalePid !== null) log.warn(`removed a stale lock file left by pid ${recoveredStalePid}`);
    let config = await loadConfig(layout.configFile, layout.root);
    log.setLevel(config.node.logLevel);
    const db = await openBackupDb(layout.backupDbFile, { clock: opts.clock });
    cleanup.push(() => db.close());

    const startedAt = opts.clock.now();
    const status = async (): Promise<NodeStatus> => nodeStatus(config, db, startedAt, opts.clock);
    const token = (await readFile(layout.apiTokenFile, 'utf8')).trim();
    const web = await listenWeb(
      createWebApp({ clock: opts.clock, token, hostnames: config.node.webHostnames, status }),
      config.node.webListen,
      config.node.webPort,
    );
    cleanup.push(() => web.close());

    const jobs = Object.keys(config.jobs);
    log.info(`node "${config.node.nickname}" started in ${layout.root} (pid ${process.pid}); ${jobs.length} job(s)${jobs.length ? ': ' + jobs.join(', ') : ''}`);

    log.info(`status page on ${web.url}/`);
    // The login link carries the token: to the console only, never into the log file.
    opts.out.write(`open the status page: ${web.url}/login?token=${encodeURIComponent(token)}\n`);

    let resolveStopped!: () => void;
    const stopped = new Promise<void>((r) => (resolveStopped = r));
    let stopping: Promise<void> | null = null;

    return {
      log,
      db,
      config: () => config,
      stopped,
      async reload() {
        try {
          config = await loadConfig(layout.configFile, layout.root);
          log.setLevel(config.node.logLevel);
          log.info(`reloaded ${layout.configFile}`);
          return true;
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          log.error(`${layout.configFile} has ${err.problems.length} problem(s); keeping the previous config:`);
          for (const p of err.problems) log.error(`  ${formatProblem(p)}`);
          return false;
        }
      },
      stop(reason) {
        stopping ??= (async () => {
          log.info(`stopping (${reason})`);
          await undo();
          log.info('stopped');
          resolveStopped();
        })();
        return stopping;
      },
    };
  } catch (err) {
    await undo();
    throw err;
  }
}

async function nodeStatus(config: NodeConfig, db: BackupDb, startedAt: Date, clock: Clock): Promise<NodeStatus> {
  const states = new Map((await db.jobs.listJobStates()).map((s) => [s.job, s]));
  return {
    nickname: config.node.nickname,
    startedAt: startedAt.toISOString(),
    now: clock.now().toISOString(),
    jobs: Object.values(config.jobs).map((job) => {
      const state = states.get(job.name);
      return {
        name: job.name,
        source: job.source,
        target: `${job.target.alias}:${job.target.name}`,
        schedule: job.schedule ?? `every ${formatDuration(job.frequencyMs ?? 0)}`,
        allowedTimes: job.allowedTimes.windows.length ? job.allowedTimes.spec : 'any time',
        state: job.enabled ? 'idle' : 'disabled',
        paused: state?.paused ?? false,
        lastResult: state?.lastResult ?? null,
        lastCompletedAt: state?.lastCompletedAt ? new Date(state.lastCompletedAt).toISOString() : null,
      };
    }),
  };
}

import { loadConfig, ConfigError, formatProblem } from './config/config.js';
import type { NodeConfig } from './config/types.js';
import type { Clock } from './clock.js';
import { Logger } from './log.js';
import type { NodeDirLayout } from './node-dir.js';
import { PidLock } from './pid-lock.js';
import { openBackupDb, type BackupDb } from '../backupdb/index.js';

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

    const jobs = Object.keys(config.jobs);
    log.info(`node "${config.node.nickname}" started in ${layout.root} (pid ${process.pid}); ${jobs.length} job(s)${jobs.length ? ': ' + jobs.join(', ') : ''}`);

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

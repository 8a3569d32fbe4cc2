import { readFile, unlink, writeFile } from 'node:fs/promises';
import { openBackupDb, type BackupDb } from '../backupdb/index.js';
import { runJobHook } from '../jobs/hooks.js';
import { startMaintenanceWatch } from '../jobs/maintenance.js';
import { startOverdueWatch } from '../jobs/overdue.js';
import { Scheduler, type SchedulerEvent } from '../jobs/scheduler.js';
import { startStorageService } from '../server/storage-service.js';
import { createWebApp, type NodeControls } from '../wui/app.js';
import { listenWeb } from '../wui/server.js';
import type { Clock } from './clock.js';
import { ConfigError, formatProblem, loadConfig } from './config/config.js';
import type { NodeConfig } from './config/types.js';
import { BandwidthManager } from './bandwidth.js';
import { BackupJobRunner } from './job-runner.js';
import { Logger } from './log.js';
import type { NodeDirLayout } from './node-dir.js';
import { buildNodeStatus } from './node-status.js';
import { PidLock } from './pid-lock.js';
import { withTarget } from './open-target.js';
import { createNodeData, createSnapshotBrowser, createStorageView, readonlyToken } from './web-ports.js';
import { isLoopbackHost } from '../wui/server.js';
import type { StorageView } from '../wui/controls.js';

/**
 * A node started by `nightjar start`: the composition root. It owns, in start order, the
 * directory lock, the log, the config, the backupdb, the scheduler with the backup
 * runner, the storage service (when enabled) and the status page; stop() undoes them in
 * reverse order.
 */
export interface RunningNode {
  readonly log: Logger;
  readonly db: BackupDb;
  /** The config in force (replaced by a successful reload). */
  config(): NodeConfig;
  /** Re-reads node.cfg; on any problem logs them all and keeps the old config. */
  reload(): Promise<boolean>;
  /** Clean stop: web, scheduler (runs checkpoint), backupdb, lock. Idempotent. */
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
  const { clock } = opts;
  const { lock, recoveredStalePid } = await PidLock.acquire(layout.pidFile);
  const cleanup: Array<() => Promise<void>> = [() => lock.release()];
  const undo = async () => {
    for (const step of cleanup.reverse()) await step().catch(() => {});
  };
  try {
    const log = new Logger(clock, opts.out, layout.logDir);
    if (recoveredStalePid !== null) log.warn(`removed a stale lock file left by pid ${recoveredStalePid}`);
    let config = await loadConfig(layout.configFile, layout.root);
    log.setLevel(config.node.logLevel);
    const db = await openBackupDb(layout.backupDbFile, { clock });
    cleanup.push(() => db.close());

    // Limits, budgets and accounting (issue 5); stopped after the scheduler (cleanup runs in reverse).
    const bandwidth = new BandwidthManager({ config: () => config, db, clock, log });
    await bandwidth.start();
    cleanup.push(() => bandwidth.stop());
    const runner = new BackupJobRunner({ config: () => config, db, clock, log, layout, bandwidth });
    const onEvent = (e: SchedulerEvent) => {
      log.info(e.message);
      void db.events.addEvent({ job: e.job, level: 'info', kind: `scheduler.${e.kind}`, message: e.message, at: e.at }).catch(() => {});
    };
    const makeScheduler = (c: NodeConfig) =>
      new Scheduler({
        clock,
        jobs: Object.values(c.jobs),
        store: {
          lastCompletedAt: async (job) => (await db.jobs.getJobState(job)).lastCompletedAt,
          isPaused: async (job) => (await db.jobs.getJobState(job)).paused,
          setPaused: (job, paused) => db.jobs.setPaused(job, paused),
          // A run left running/suspended by a killed or stopped node continues at the next window.
          hasUnfinishedRun: async (job) => (await db.runs.unfinishedRuns()).some((r) => r.job === job && r.kind === 'backup'),
        },
        runner,
        maxConcurrentJobs: c.node.maxConcurrentJobs,
        log: { info: (m) => log.debug(m), warn: (m) => log.warn(m), error: (m) => log.error(m) },
        onEvent,
      });
    let scheduler = makeScheduler(config);
    scheduler.start();
    // The scheduler stops before the backupdb closes: runs checkpoint into it.
    cleanup.push(() => scheduler.stop());

    let storageView: StorageView | undefined;
    if (config.storage.enabled) {
      const storage = await startStorageService({ config, layout, clock, log });
      storageView = createStorageView(storage, clock);
      cleanup.push(() => storage.close());
      log.info(`storage service on ${storage.url} (certificate fingerprint ${storage.fingerprint ?? 'none: plain HTTP'})`);
    }

    const startedAt = clock.now();
    const status = () =>
      buildNodeStatus(config, db, clock, {
        startedAt,
        scheduler: (job) => scheduler.status().find((s) => s.name === job) ?? null,
        progress: (job) => runner.progressOf(job),
      });
    // Freshness alerts (issue 9): an event and on_overdue once per overdue episode, checked every minute.
    const overdueWatch = startOverdueWatch({
      clock,
      jobs: () => Object.values(config.jobs),
      lastCompletedAt: async (job) => (await db.jobs.getJobState(job)).lastCompletedAt,
      since: startedAt,
      onOverdue: async (job, o) => {
        const message = `${job.name} is overdue: no successful backup ${o.lastCompletedAt ? `since ${o.lastCompletedAt.toISOString()}` : 'since the node started'}`;
        log.warn(message);
        await db.events.addEvent({ job: job.name, level: 'warn', kind: 'job.overdue', message });
        await runJobHook(
          'on_overdue',
          { job, overdueSince: o.overdueSince.toISOString(), ...(o.lastCompletedAt ? { lastSuccessAt: o.lastCompletedAt.toISOString() } : {}) },
          { signal: o.signal, record: async (e) => {
            log[e.level](e.message);
            await db.events.addEvent({ job: job.name, level: e.level, kind: e.kind, message: e.message, detail: e.detail });
          } },
        );
      },
      onError: (err) => log.warn(`overdue check: ${err instanceof Error ? err.message : String(err)}`),
    });
    cleanup.push(() => overdueWatch.stop());
    // Scheduled verify and prune (issue 9): inside the job's windows, recorded as runs of kind verify/prune.
    const maintenance = startMaintenanceWatch({
      clock,
      db,
      jobs: () => Object.values(config.jobs),
      withRepo: (job, fn) => withTarget(config.targets[job.target.alias]!, { clock, workers: 1 }, ({ repo }) => fn(repo)),
      log,
      targetBusy: (job) =>
        scheduler.status().some((s) => s.run !== null && config.jobs[s.name]?.target.alias === job.target.alias),
    });
    cleanup.push(() => maintenance.stop());
    const controls: NodeControls = {
      hasJob: (job) => Object.hasOwn(config.jobs, job),
      pause: (job) => (job === null ? scheduler.pauseAll() : scheduler.pause(job)),
      resume: (job) => (job === null ? scheduler.resumeAll() : scheduler.resume(job)),
      runNow: (job, o) => scheduler.runNow(job, o),
      cancel: (job) => scheduler.cancel(job),
    };
    const token = (await readFile(layout.apiTokenFile, 'utf8')).trim();
    const shareToken = await readonlyToken(layout);
    const web = await listenWeb(
      createWebApp({
        clock,
        token,
        readonlyToken: shareToken,
        hostnames: config.node.webHostnames,
        status,
        controls,
        bandwidth,
        data: createNodeData({ config: () => config, db }),
        snapshots: createSnapshotBrowser({ config: () => config, clock, layout }),
        ...(storageView ? { storage: storageView } : {}),
      }),
      config.node.webListen,
      config.node.webPort,
    );
    cleanup.push(() => web.close());
    await writeFile(layout.nodeUrlFile, `${web.url}/\n`);
    cleanup.push(() => unlink(layout.nodeUrlFile));

    const jobs = Object.keys(config.jobs);
    log.info(`node "${config.node.nickname}" started in ${layout.root} (pid ${process.pid}); ${jobs.length} job(s)${jobs.length ? ': ' + jobs.join(', ') : ''}`);
    log.info(`status page on ${web.url}/`);
    if (!isLoopbackHost(config.node.webListen)) {
      log.warn(`the status page listens on ${config.node.webListen} (web.allow_remote = true): anyone who can reach it gets the login page; keep the token secret and prefer a TLS proxy`);
    }
    // The login link carries the token: to the console only, never into the log file.
    opts.out.write(`open the status page: ${web.url}/login?token=${encodeURIComponent(token)}\n`);
    opts.out.write(`read-only share link (status without controls): ${web.url}/login?token=${encodeURIComponent(shareToken)}\n`);

    let resolveStopped!: () => void;
    const stopped = new Promise<void>((r) => (resolveStopped = r));
    let stopping: Promise<void> | null = null;

    return {
      log,
      db,
      config: () => config,
      stopped,
      async reload() {
        let next: NodeConfig;
        try {
          next = await loadConfig(layout.configFile, layout.root);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          log.error(`${layout.configFile} has ${err.problems.length} problem(s); keeping the previous config:`);
          for (const p of err.problems) log.error(`  ${formatProblem(p)}`);
          return false;
        }
        const jobsChanged =
          JSON.stringify([next.jobs, next.targets, next.node.maxConcurrentJobs]) !==
          JSON.stringify([config.jobs, config.targets, config.node.maxConcurrentJobs]);
        config = next;
        log.setLevel(config.node.logLevel);
        if (jobsChanged) {
          // Running runs checkpoint and stop; the new scheduler continues them, skipping
          // what is stored, under the new settings.
          await scheduler.stop();
          scheduler = makeScheduler(config);
          scheduler.start();
        }
        log.info(`reloaded ${layout.configFile}${jobsChanged ? ' (jobs rescheduled)' : ''}`);
        return true;
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

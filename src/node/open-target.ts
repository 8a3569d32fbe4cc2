import { readFile } from 'node:fs/promises';
import type { Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/types.js';
import { StoreError, type Store, type WriteOptions } from '../store/store.js';
import type { RunBandwidth } from './bandwidth.js';
import { targetCaches } from './key-cache.js';
import type { Clock } from './clock.js';
import { CliExit, EXIT } from './cli-env.js';
import { ConfigError, loadConfig } from './config/config.js';
import type { JobConfig, NodeConfig, TargetConfig } from './config/types.js';
import type { NodeDirLayout } from './node-dir.js';

/**
 * Makes the Store for a target: a `local:` directory, a peer node's storage service
 * (`node:`) or an S3 bucket (`s3://`). Network stores are wrapped in the retry decorator
 * (transient faults: backoff with jitter; permanent ones fail fast naming the alias).
 */
export async function openTargetStore(target: TargetConfig, opts: { clock: Clock }): Promise<Store> {
  // Stores load on demand (this module is on every command's start-up path): the AWS SDK
  // and the peer client cost ~30-40 MiB and a quarter second that a local-only command should not pay.
  switch (target.kind) {
    case 'local': {
      const { LocalStore } = await import('../store/local-store.js');
      return new LocalStore(target.location);
    }
    case 'node': {
      const [{ openNodeStore }, { withRetry }] = await Promise.all([import('../store/node-store.js'), import('../store/retrying-store.js')]);
      return withRetry(await openNodeStore(target, { clock: opts.clock, alias: target.alias }), { clock: opts.clock });
    }
    case 's3': {
      const [{ openS3Store }, { withRetry }] = await Promise.all([import('../store/s3-store.js'), import('../store/retrying-store.js')]);
      return withRetry(await openS3Store(target, { clock: opts.clock }), { clock: opts.clock });
    }
  }
}

/** The passphrase file is missing, unreadable or empty. */
export class PassphraseFileError extends Error {
  override readonly name = 'PassphraseFileError';
  readonly code = 'NJ_PASSPHRASE_FILE';
}

/**
 * Reads a repository passphrase: the file's content without its trailing newline(s).
 * Throws PassphraseFileError when the file is missing, unreadable or empty.
 */
export async function readPassphrase(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PassphraseFileError(
      code === 'ENOENT' ? `passphrase file ${file} does not exist` : `cannot read passphrase file ${file}: ${(err as Error).message}`,
    );
  }
  const pass = text.replace(/[\r\n]+$/, '');
  if (pass.length === 0) throw new PassphraseFileError(`passphrase file ${file} is empty`);
  return pass;
}

export interface OpenedTarget {
  readonly repo: Repository;
  readonly store: Store;
  readonly target: TargetConfig;
  /** True when this call initialised a new repository. */
  readonly created: boolean;
}

/**
 * Opens (initialising on first use) the repository of a target: store from the target's
 * kind and location, passphrase from its passphrase file. The caller closes the repo,
 * then the store (or uses withTarget). Errors: PassphraseFileError, the store's, and
 * the repository's own (WrongPassphraseError, …).
 *
 * `bandwidth` may be a promise (run-job opens the backupdb it needs meanwhile): the key
 * derivation and index load start at once, reading through the bare store; writes wait
 * for the throttled one, and the call resolves once both are there.
 */
export async function openTarget(
  target: TargetConfig,
  opts: { clock: Clock; workers?: number; bandwidth?: RunBandwidth | Promise<RunBandwidth>; startWorkers?: boolean; sharedLock?: boolean },
): Promise<OpenedTarget> {
  const [base, { Repository }] = await Promise.all([
    openTargetStore(target, { clock: opts.clock }),
    import('../repo/repository.js'),
  ]);
  // Throttled (issue 5): a run's uploads go through the node/target/job limits and budgets.
  const bw = opts.bandwidth;
  const store = bw === undefined ? base : bw instanceof Promise ? throttledLater(base, bw) : bw.wrapStore(base);
  let repo: Repository | null = null;
  try {
    const passphrase = await readPassphrase(target.passphraseFile);
    const opened = await Repository.openOrInit(store, passphrase, {
      clock: opts.clock,
      workers: opts.workers ?? 0,
      ...targetCaches(target.passphraseFile, passphrase, store.location),
      ...(opts.startWorkers ? { startWorkers: true } : {}),
      ...(opts.sharedLock ? { sharedLock: true } : {}),
    });
    repo = opened.repo;
    return { repo: bw === undefined ? repo : (await bw).wrapRepo(repo), store, target, created: opened.created };
  } catch (err) {
    await repo?.close().catch(() => {});
    await store.close().catch(() => {});
    throw err;
  }
}

/** `base` for reads (a throttle paces uploads only) and the throttled store, once there, for the rest. */
function throttledLater(base: Store, bandwidth: Promise<RunBandwidth>): Store {
  const wrapped = bandwidth.then((b) => b.wrapStore(base));
  wrapped.catch(() => {}); // reported by openTarget, which awaits `bandwidth` too
  return {
    location: base.location,
    list: (prefix) => base.list(prefix),
    stat: (name) => base.stat(name),
    read: (name, range) => base.read(name, range),
    write: async (name, data, o) => (await wrapped).write(name, data, o),
    ...(base.spool
      ? {
          spool: {
            dir: base.spool.dir,
            adopt: async (name: string, file: string, o?: WriteOptions) => (await wrapped).spool!.adopt(name, file, o),
            cleanup: (olderThan: Date) => base.spool!.cleanup(olderThan),
          },
        }
      : {}),
    delete: async (name) => (await wrapped).delete(name),
    async close() {
      // Closing the throttled store also ends the run's registration; without one, the base.
      const w = await wrapped.catch(() => null);
      await (w ?? base).close();
    },
  };
}

/** The target config a job writes to; a CliExit(usage) when the alias is unknown. */
export function jobTarget(config: NodeConfig, job: JobConfig): TargetConfig {
  const t = config.targets[job.target.alias];
  if (!t) throw new CliExit(EXIT.usage, `job ${job.name}: target ${job.target.alias} is not defined under [targets]`);
  return t;
}

/** A job by name, or a CliExit(usage) listing the jobs there are. */
export function findJob(config: NodeConfig, name: string): JobConfig {
  const job = config.jobs[name];
  if (!job) {
    const names = Object.keys(config.jobs);
    throw new CliExit(
      EXIT.usage,
      `no job named ${name} in ${config.file}${names.length ? ` (jobs: ${names.join(', ')})` : ' (it defines no jobs)'}`,
    );
  }
  return job;
}

/** Reads node.cfg for a command; a bad config ends the command with exit code 2 and every problem listed. */
export async function loadNodeConfig(layout: NodeDirLayout): Promise<NodeConfig> {
  try {
    return await loadConfig(layout.configFile, layout.root);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliExit(EXIT.usage, err.message);
    throw err;
  }
}

/**
 * The targets a command should look at: the job's target with `job`, else every
 * target some job uses, then the remaining ones (config order, each alias once).
 */
export function targetsFor(config: NodeConfig, jobName?: string): TargetConfig[] {
  if (jobName) return [jobTarget(config, findJob(config, jobName))];
  const seen = new Set<string>();
  const out: TargetConfig[] = [];
  for (const job of Object.values(config.jobs)) {
    const t = config.targets[job.target.alias];
    if (t && !seen.has(t.alias)) {
      seen.add(t.alias);
      out.push(t);
    }
  }
  for (const t of Object.values(config.targets)) {
    if (!seen.has(t.alias)) {
      seen.add(t.alias);
      out.push(t);
    }
  }
  return out;
}

/** Opens a target, runs `fn` with it, and closes it whatever happens. */
export async function withTarget<T>(
  target: TargetConfig,
  opts: { clock: Clock; workers?: number },
  fn: (opened: OpenedTarget) => Promise<T>,
): Promise<T> {
  const opened = await openTarget(target, opts);
  try {
    return await fn(opened);
  } finally {
    await closeOpened(opened);
  }
}

async function closeOpened(opened: OpenedTarget): Promise<void> {
  await opened.repo.close().catch(() => {});
  await opened.store.close().catch(() => {});
}

/**
 * Opens targets in order, the next one while the caller works on the current one, so
 * the key derivations (~0.1 s each) and index loads overlap with the work; at most one
 * is opened ahead.
 */
class OpenAhead {
  private readonly openings: Promise<OpenedTarget>[] = [];
  private taken = 0;

  constructor(
    private readonly targets: readonly TargetConfig[],
    private readonly opts: { clock: Clock; workers?: number },
  ) {}

  /** targets[i] opened (i counts up from 0); opening targets[i + 1] starts meanwhile. */
  take(i: number): Promise<OpenedTarget> {
    this.taken = i + 1;
    const p = this.start(i)!;
    this.start(i + 1);
    return p;
  }

  /** Closes what was opened ahead and not taken. */
  async dropRest(): Promise<void> {
    for (const p of this.openings.slice(this.taken)) {
      const opened = await p.catch(() => null);
      if (opened) await closeOpened(opened);
    }
  }

  private start(i: number): Promise<OpenedTarget> | undefined {
    const target = this.targets[i];
    if (!target) return undefined;
    if (!this.openings[i]) {
      const p = openTarget(target, this.opts);
      p.catch(() => {}); // taken (and its error handled) later, or dropped
      this.openings[i] = p;
    }
    return this.openings[i];
  }
}

/**
 * Runs `fn` on each target's repository in turn (see withTarget). A target whose store
 * fails (unreachable peer, bad credentials) is reported through `skip` and passed over,
 * so one bad target never hides the others; returns how many were passed over.
 */
export async function withEachTarget(
  targets: readonly TargetConfig[],
  opts: { clock: Clock; workers?: number },
  skip: (target: TargetConfig, err: StoreError) => void,
  fn: (target: TargetConfig, opened: OpenedTarget) => Promise<void>,
): Promise<number> {
  let skipped = 0;
  const ahead = new OpenAhead(targets, opts);
  try {
    for (const [i, target] of targets.entries()) {
      try {
        const opened = await ahead.take(i);
        try {
          await fn(target, opened);
        } finally {
          await closeOpened(opened);
        }
      } catch (err) {
        if (!(err instanceof StoreError)) throw err;
        skip(target, err);
        skipped++;
      }
    }
  } finally {
    await ahead.dropRest();
  }
  return skipped;
}

/** `SNAPSHOT[:PATH]` → its parts (a snapshot reference never contains a colon). */
export function parseSnapshotArg(arg: string): { ref: string; path: string } {
  const i = arg.indexOf(':');
  return i < 0 ? { ref: arg, path: '' } : { ref: arg.slice(0, i), path: arg.slice(i + 1) };
}

/**
 * Parses `--as-of TIME`: an ISO date-time (`2024-05-01T22:00`, with or without zone) or a
 * date alone (`2024-05-01`, meaning the end of that day, local time).
 */
export function parseAsOf(text: string): Date {
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text.trim());
  if (day) return new Date(Number(day[1]), Number(day[2]) - 1, Number(day[3]), 23, 59, 59, 999);
  const ms = Date.parse(text.trim().replace(' ', 'T'));
  if (Number.isNaN(ms)) {
    throw new CliExit(EXIT.usage, `--as-of: found "${text}", expected a date (2024-05-01) or a date and time (2024-05-01T22:00)`);
  }
  return new Date(ms);
}

/**
 * Finds a snapshot across the targets (`job`'s target with `job`, else all) and runs
 * `fn` with its open repository. `ref` is an id, a unique id prefix or `latest` (newest,
 * of `job` when given); with `asOf`, the newest snapshot at or before that time (of `job`
 * when given) regardless of `ref`. Not found or ambiguous: CliExit(failure).
 */
export async function withSnapshot<T>(
  config: NodeConfig,
  ref: string,
  opts: { job?: string; asOf?: Date; clock: Clock; workers?: number },
  fn: (opened: OpenedTarget, snapshot: Snapshot) => Promise<T>,
): Promise<T> {
  type Found = { target: TargetConfig; snapshot: Snapshot; opened: OpenedTarget };
  const matches: Found[] = [];
  const openedAll: OpenedTarget[] = [];
  const unreachable: StoreError[] = [];
  const targets = targetsFor(config, opts.job);
  const ahead = new OpenAhead(targets, { clock: opts.clock, ...(opts.workers !== undefined ? { workers: opts.workers } : {}) });
  const closeAll = async () => {
    await ahead.dropRest();
    for (const o of openedAll) await closeOpened(o);
  };
  try {
    for (const [i, target] of targets.entries()) {
      // Each target is opened once (the key derivation is the slow part) and kept for fn.
      // An unreachable target is passed over unless no other target has a match.
      let opened: OpenedTarget;
      try {
        opened = await ahead.take(i);
      } catch (err) {
        if (!(err instanceof StoreError)) throw err;
        unreachable.push(err);
        continue;
      }
      openedAll.push(opened);
      for (const s of await opened.repo.listSnapshots()) {
        if (opts.job !== undefined && s.job !== opts.job) continue;
        if (opts.asOf) {
          if (Date.parse(s.time) <= opts.asOf.getTime()) matches.push({ target, snapshot: s, opened });
        } else if (ref === 'latest' || s.id === ref || (ref.length > 0 && s.id.startsWith(ref.toLowerCase()))) {
          matches.push({ target, snapshot: s, opened });
        }
      }
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  const scope = opts.job ? ` of job ${opts.job}` : '';
  if (matches.length === 0 && unreachable.length > 0) {
    await closeAll();
    throw unreachable[0];
  }
  let chosen: Found | undefined;
  try {
    if (opts.asOf || ref === 'latest') {
      for (const m of matches) if (!chosen || m.snapshot.time > chosen.snapshot.time) chosen = m;
      if (!chosen) {
        throw new CliExit(
          EXIT.failure,
          opts.asOf ? `no snapshot${scope} at or before ${opts.asOf.toISOString()}` : `no snapshots${scope}`,
        );
      }
    } else {
      const exact = matches.find((m) => m.snapshot.id === ref);
      if (exact) chosen = exact;
      else if (matches.length === 1) chosen = matches[0];
      else if (matches.length === 0) throw new CliExit(EXIT.failure, `no snapshot${scope} matches "${ref}" (see: nightjar snapshots)`);
      else {
        throw new CliExit(
          EXIT.failure,
          `"${ref}" is ambiguous: it matches ${matches.length} snapshots (${matches
            .slice(0, 5)
            .map((m) => m.snapshot.id.slice(0, 12))
            .join(', ')}); give more of the id`,
        );
      }
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  const found = chosen!;
  try {
    return await fn(found.opened, found.snapshot);
  } finally {
    await closeAll();
  }
}

import type { BigIntStats } from 'node:fs';
import { lstat, readlink, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { abortError, type Clock } from '../node/clock.js';
import type { JobConfig } from '../node/config/types.js';
import type { CachedFile } from '../backupdb/file-cache.js';
import type {
  EntryStat,
  FileStatAfter,
  RawDirEntry,
  SaveFileOptions,
  SaveFileResult,
  Snapshot,
  SnapshotInput,
  Tree,
  TreeEntry,
} from '../repo/types.js';
import { sameEntries } from '../repo/tree-codec.js';
import { checkDeletionRatio, checkSourceBeforeRun, type GuardRefusal } from './mass-delete-guard.js';
import { addWarning, cloneStats, emptyStats, statsFromJson, type RunStats } from './run-stats.js';
import { displayPath, fsWarning, joinRel, Walker, type DirListing, type WalkEntry } from './walk.js';

/**
 * What the backup run needs from the repository (a structural subset of `Repository`,
 * so tests can wrap or fake it). Calls may overlap: saveFile is called for a few files
 * at once; everything else is called from the walk, one at a time.
 */
export interface BackupRepository {
  readonly id: string;
  saveFile(path: Buffer, opts?: SaveFileOptions): Promise<SaveFileResult>;
  /** Lists a directory off the main thread (Repository.listDir); without it the walk lstat's through libuv. */
  listDir?(path: Buffer): Promise<RawDirEntry[]>;
  saveTree(tree: Tree): Promise<string>;
  loadTree(id: string): Promise<Tree>;
  hasBlob(id: string): boolean | Promise<boolean>;
  flush(): Promise<void>;
  saveSnapshot(input: SnapshotInput): Promise<Snapshot>;
  listSnapshots(): Promise<Snapshot[]>;
}

/** One directory's row of the file cache (the backupdb's CachedDirRow). */
export interface CacheDirRow {
  /** Directory path relative to the source root (empty = the root). */
  dir: Buffer;
  /** Every file of the directory whose content is stored, keyed by nameKey (latin1 of the name bytes). */
  entries: ReadonlyMap<string, CachedFile>;
}

/**
 * The backupdb file cache as the run uses it (`BackupDb.fileCache` fits): one row per
 * directory, tied to a repository id and a job; keys are the names in latin1 (a 1:1
 * byte mapping). `loadDir` gives null for an uncached directory; `saveDirs` replaces
 * the given directories' rows atomically.
 */
export interface FileCachePort {
  loadDir(repoId: string, job: string, dir: Buffer): Promise<ReadonlyMap<string, CachedFile> | null>;
  saveDirs(repoId: string, job: string, rows: readonly CacheDirRow[]): Promise<void>;
}

/** The parts of a JobConfig the run reads. */
export type BackupJobSpec = Pick<
  JobConfig,
  'name' | 'source' | 'exclude' | 'maxFileSize' | 'minFileAgeMs' | 'oneFileSystem' | 'maxDeleteRatio'
> & { target?: JobConfig['target'] };

/** Progress handed to `onProgress` (a copy; the receiver may keep it). */
export interface RunProgress {
  readonly stats: RunStats;
  /** Path being worked on (relative to the source), for the progress bar. */
  readonly currentPath: string;
  /** Files on the source at the previous snapshot, as an estimate of the total (0 = unknown). */
  readonly estimatedFiles: number;
  readonly estimatedBytes: number;
}

export interface BackupRunOptions {
  readonly repo: BackupRepository;
  /** null: no cache (every file is read, unless the previous snapshot's tree matches). */
  readonly fileCache: FileCachePort | null;
  readonly job: BackupJobSpec;
  readonly clock: Clock;
  readonly host?: string;
  /** Walk and compare only; nothing is written to the repository or the cache. */
  readonly dryRun?: boolean;
  /** Overrides the mass-deletion guard. */
  readonly allowMassDelete?: boolean;
  /** Aborting cancels the run: no snapshot; stored work is flushed and cached for the next run. */
  readonly signal?: AbortSignal;
  /**
   * Awaited before each file (`'file'`, also before each directory) and before each chunk
   * (`'chunk'`): the scheduler's pause/suspend point. A caller that must not park mid-file
   * (on_window_close = finish_file) lets `'chunk'` through.
   */
  readonly gate?: (at: 'file' | 'chunk') => Promise<void>;
  /**
   * Whether `gate(at)` would park now. When it says so, the run writes a checkpoint once
   * per closing (repository flushed, finished directories' cache rows saved, then
   * `onCheckpoint(stats, { parked: true })`) before parking, and calls `onUnpark` when the
   * gate lets it go again, so a process killed while parked loses nothing stored.
   * Without it, parking writes no checkpoint.
   */
  readonly gateClosed?: (at: 'file' | 'chunk') => boolean;
  /** Called once when the run goes on after a parked checkpoint (see `gateClosed`). */
  readonly onUnpark?: () => Promise<void> | void;
  /** Called at most every `progressIntervalMs` (default 250 ms) and once at the end. */
  readonly onProgress?: (p: RunProgress) => void;
  readonly progressIntervalMs?: number;
  /**
   * Called after each checkpoint: the repository was flushed and the cache rows of every
   * finished directory saved, so a restarted run skips that work.
   */
  readonly onCheckpoint?: (stats: RunStats, info?: { parked: boolean }) => Promise<void> | void;
  /** Files saved at once (default 256: small files travel to the workers in batches, so many must be in flight). */
  readonly fileConcurrency?: number;
  /** Directories never descended into (the repository's own directory, …). */
  readonly skipDirs?: readonly string[];
  /** Checkpoint after this many files were stored since the last one (default 5000)… */
  readonly checkpointEveryFiles?: number;
  /** …or this much time (default 5 minutes). */
  readonly checkpointEveryMs?: number;
}

/**
 * How a run ended. `complete`: snapshot written, no warnings. `partial`: snapshot
 * written, with warnings (bad files). `refused`: the mass-deletion guard stopped it, no
 * snapshot. `failed`: an error (repository, …), no snapshot. `cancelled`: the signal
 * aborted, no snapshot. A dry run ends complete/partial/refused with no snapshot.
 */
export type RunStatus = 'complete' | 'partial' | 'refused' | 'failed' | 'cancelled';

export interface RunResult {
  readonly status: RunStatus;
  readonly stats: RunStats;
  readonly snapshot?: Snapshot;
  readonly refusal?: GuardRefusal;
  /** For failed/cancelled. */
  readonly error?: string;
}

const EMPTY_CACHE: ReadonlyMap<string, CachedFile> = new Map();

/** Sibling directories whose reads are started ahead of the walk (bounded: memory and open I/O). */
const PREFETCH_DIRS = 4;

/** The reads of one directory, started ahead (see BackupRun.prefetch). */
interface DirPrefetch {
  listing: Promise<DirListing>;
  prevTree: Promise<{ tree: Tree } | { error: string } | null>;
  cache: Promise<ReadonlyMap<string, CachedFile>>;
}

interface Slot {
  release(): void;
}

/** A counting semaphore with a bounded waiting line (backpressure for the walk). */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  /** Waits until nothing runs (takes every slot, then gives them back). */
  async drain(): Promise<void> {
    const slots: Slot[] = [];
    for (let i = 0; i < this.max; i++) slots.push(await this.acquire());
    for (const s of slots) s.release();
  }
  async acquire(): Promise<Slot> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const next = this.waiting.shift();
        if (next) next();
        else this.active--;
      },
    };
  }
}

/** Errors that concern one source file (a warning), not the repository (a failure). */
const SOURCE_ERROR_CODES = new Set(['ENOENT', 'EACCES', 'EPERM', 'EISDIR', 'ENOTDIR', 'ELOOP', 'EIO', 'ENXIO', 'ESTALE']);

function isSourceError(err: unknown, path: Buffer): boolean {
  const e = err as NodeJS.ErrnoException & { sourcePath?: unknown };
  if (!e || typeof e !== 'object' || !e.code || !SOURCE_ERROR_CODES.has(e.code)) return false;
  // Node puts the path in the error; a repository error names a file under the repository.
  const p = e.path as unknown;
  if (p === undefined) return true;
  if (Buffer.isBuffer(p)) return p.equals(path);
  return typeof p === 'string' && Buffer.from(p).equals(path);
}

/**
 * One backup run of one job: walks the source depth-first (sorted name bytes), reuses the
 * stored content of every file the cache knows unchanged (without reading it), saves the
 * rest, builds trees bottom-up per directory (memory bounded by depth × directory width,
 * not by the number of files) and writes one snapshot, unless the mass-deletion guard
 * refuses. Never throws: every outcome is a RunResult. Not reentrant for one repository
 * (the caller holds the repository lock).
 */
export async function runBackup(opts: BackupRunOptions): Promise<RunResult> {
  const run = new BackupRun(opts);
  return run.execute();
}

class BackupRun {
  private readonly stats: RunStats;
  private readonly startMs: number;
  private readonly walker: Walker;
  private readonly limiter: Limiter;
  private readonly hardLinks = new Map<string, Promise<string[] | null>>();
  private pendingRows: CacheDirRow[] = [];
  private pendingRowFiles = 0;
  private lastCheckpointMs: number;
  private lastProgressMs = -Infinity;
  private currentPath = '';
  private estimatedFiles = 0;
  private estimatedBytes = 0;
  private emptyTreeId: string | null = null;
  private fatal: unknown = null;
  /** Background file reads not yet settled (awaited before any flush). */
  private readonly inflight = new Set<Promise<void>>();
  /** Directories walked whose trees are not saved yet (processDir's `tree`). */
  private readonly finishing = new Set<Promise<string | null>>();
  /** The checkpoint of the current park (one per closing of the gate); null while open. */
  private parked: Promise<void> | null = null;
  /** A periodic checkpoint is running (maybeCheckpoint). */
  private checkpointing = false;

  constructor(private readonly o: BackupRunOptions) {
    this.startMs = o.clock.nowMs();
    this.lastCheckpointMs = this.startMs;
    this.stats = emptyStats(o.clock.now());
    if (o.dryRun) this.stats.dryRun = true;
    this.walker = new Walker(o.job.source, {
      exclude: o.job.exclude,
      maxFileSize: o.job.maxFileSize,
      minFileAgeMs: o.job.minFileAgeMs,
      oneFileSystem: o.job.oneFileSystem,
      clock: o.clock,
      skipDirs: [],
      ...(o.repo.listDir ? { lister: (p: Buffer) => o.repo.listDir!(p) } : {}),
    });
    this.limiter = new Limiter(Math.max(1, o.fileConcurrency ?? 256));
  }

  async execute(): Promise<RunResult> {
    const o = this.o;
    try {
      const previous = await this.findPrevious();
      const prevStats = statsFromJson(previous?.stats);
      this.estimatedFiles = prevStats?.filesTotal ?? 0;
      this.estimatedBytes = prevStats?.bytesTotal ?? 0;
      const prevDev = prevStats?.sourceDev != null ? BigInt(prevStats.sourceDev) : null;
      const facts = previous ? { files: prevStats?.filesTotal ?? 1, sourceDev: prevDev } : null;
      const pre = await checkSourceBeforeRun(o.job.source, facts, { oneFileSystem: o.job.oneFileSystem });
      if (!pre.ok) {
        if (!o.allowMassDelete || pre.refusal.code === 'source-missing' || pre.refusal.code === 'source-not-directory') {
          return this.finish('refused', { refusal: pre.refusal });
        }
      }
      const rootStat = pre.ok ? pre.stat : await stat(o.job.source, { bigint: true });
      this.walker.setRootDevice(rootStat.dev);
      this.stats.sourceDev = rootStat.dev.toString();
      await this.resolveSkipDirs();

      const rootTree = await (await this.processDir(Buffer.alloc(0), previous?.tree)).tree;
      if (this.fatal) throw this.fatal;

      if (!o.allowMassDelete) {
        const refusal = checkDeletionRatio(
          o.job.source,
          this.stats.filesPrevious,
          this.stats.filesRemoved,
          o.job.maxDeleteRatio,
        );
        if (refusal) return this.finish('refused', { refusal });
      }
      const status = this.stats.warningCount > 0 ? 'partial' : 'complete';
      if (o.dryRun) return this.finish(status, {});

      await o.repo.flush();
      this.stats.durationMs = o.clock.nowMs() - this.startMs;
      const snapshot = await o.repo.saveSnapshot({
        tree: rootTree!,
        host: o.host ?? hostname(),
        job: o.job.name,
        target: o.job.target ? `${o.job.target.alias}:${o.job.target.name}` : '',
        source: o.job.source,
        ...(previous ? { parent: previous.id } : {}),
        stats: cloneStats(this.stats),
        time: o.clock.now(),
      });
      await this.saveCacheRows();
      return this.finish(status, { snapshot });
    } catch (err) {
      // Never return while a read or a tree still runs: the caller closes the repository next.
      await Promise.allSettled([...this.inflight]);
      await Promise.allSettled([...this.finishing]);
      const cancelled = o.signal?.aborted === true;
      if (cancelled && !o.dryRun) {
        // Keep what was stored: the next run skips it through the index and the cache.
        try {
          await o.repo.flush();
          await this.saveCacheRows();
        } catch {
          // the run is over either way
        }
      }
      const message = err instanceof Error ? err.message : String(err);
      return this.finish(cancelled ? 'cancelled' : 'failed', { error: message });
    }
  }

  private finish(status: RunStatus, extra: Partial<RunResult>): RunResult {
    this.stats.durationMs = this.o.clock.nowMs() - this.startMs;
    this.reportProgress(true);
    return { status, stats: cloneStats(this.stats), ...extra };
  }

  private async findPrevious(): Promise<Snapshot | undefined> {
    const all = await this.o.repo.listSnapshots();
    let best: Snapshot | undefined;
    for (const s of all) {
      if (s.job !== this.o.job.name) continue;
      if (!best || s.time > best.time || (s.time === best.time && s.id > best.id)) best = s;
    }
    return best;
  }

  private async resolveSkipDirs(): Promise<void> {
    const ids: { dev: bigint; ino: bigint }[] = [];
    for (const p of this.o.skipDirs ?? []) {
      try {
        const st = await stat(p, { bigint: true });
        ids.push({ dev: st.dev, ino: st.ino });
      } catch {
        // not there: nothing to skip
      }
    }
    this.walker.setSkipDirs(ids);
  }

  private async checkpointGate(): Promise<void> {
    if (this.o.signal?.aborted) throw abortError(this.o.signal);
    if (this.fatal) throw this.fatal;
    await this.awaitGate('file');
    if (this.o.signal?.aborted) throw abortError(this.o.signal);
  }

  /**
   * Awaits the gate. A closed gate first gets one checkpoint (BackupRunOptions.gateClosed);
   * it needs no quiet pipeline: flush() is safe beside a saveFile and saves only blobs
   * stored before it, and the rows saved are of directories whose files all landed.
   * The first caller let through after a park reports the unpark.
   */
  private async awaitGate(at: 'file' | 'chunk'): Promise<void> {
    const o = this.o;
    if (!o.gate) return;
    if (!o.dryRun && o.gateClosed?.(at)) {
      // finish_file: started files run to their end (their chunks pass); let them land
      // first, so the checkpoint holds them.
      if (at === 'file' && !o.gateClosed('chunk')) await Promise.allSettled([...this.inflight]);
      this.parked ??= this.checkpointNow(true);
      await this.parked;
    }
    await o.gate(at);
    if (this.parked) {
      this.parked = null;
      await o.onUnpark?.();
    }
  }

  /** Flush, then save the rows of finished directories (taken before the flush, so every blob they name is durable). */
  private async checkpointNow(parked: boolean): Promise<void> {
    const rows = this.pendingRows;
    this.pendingRows = [];
    this.pendingRowFiles = 0;
    this.lastCheckpointMs = this.o.clock.nowMs();
    await this.o.repo.flush();
    if (this.o.fileCache && rows.length > 0) {
      await this.o.fileCache.saveDirs(this.o.repo.id, this.o.job.name, rows);
      for (const row of rows) this.stats.filesCheckpointed += row.entries.size;
    }
    await this.o.onCheckpoint?.(cloneStats(this.stats), { parked });
  }

  private reportProgress(force = false): void {
    if (!this.o.onProgress) return;
    const now = this.o.clock.nowMs();
    if (!force && now - this.lastProgressMs < (this.o.progressIntervalMs ?? 250)) return;
    this.lastProgressMs = now;
    this.stats.durationMs = now - this.startMs;
    this.o.onProgress({
      stats: cloneStats(this.stats),
      currentPath: this.currentPath,
      estimatedFiles: this.estimatedFiles,
      estimatedBytes: this.estimatedBytes,
    });
  }

  private warn(path: Buffer, message: string): void {
    addWarning(this.stats, { path: displayPath(path), message });
  }

  private noteListing(listing: DirListing): void {
    for (const w of listing.warnings) this.warn(w.path, w.message);
    for (const s of listing.skipped) {
      const k = s.reason;
      if (k === 'excluded') this.stats.skipped.excluded++;
      else if (k === 'too-large') this.stats.skipped.tooLarge++;
      else if (k === 'too-young') this.stats.skipped.tooYoung++;
      else if (k === 'other-filesystem') this.stats.skipped.otherFilesystem++;
      else this.stats.skipped.repository++;
    }
  }

  private async emptyTree(): Promise<string | null> {
    if (this.o.dryRun) return null;
    this.emptyTreeId ??= await this.o.repo.saveTree({ entries: [] });
    return this.emptyTreeId;
  }

  /**
   * Backs up directory `rel` and returns its tree id (null in a dry run). Files are handed
   * to the limiter and run while the walk goes on into subdirectories; the directory's
   * tree is saved once all of its entries are done.
   */
  /**
   * Starts the reads one directory needs (listing, previous tree, cache row) at once, so
   * their latencies (libuv pool, SQLite) overlap with each other and with the work on
   * the directories before it. Never rejects.
   */
  private prefetch(rel: Buffer, prevTreeId: string | undefined): DirPrefetch {
    const o = this.o;
    return {
      listing: this.walker.listDir(rel),
      prevTree: prevTreeId
        ? o.repo.loadTree(prevTreeId).then(
            (tree) => ({ tree }),
            (err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }),
          )
        : Promise.resolve(null),
      cache: o.fileCache
        ? o.fileCache.loadDir(o.repo.id, o.job.name, rel).then(
            (c) => c ?? EMPTY_CACHE,
            // A damaged row only costs a re-read of this directory's files.
            () => EMPTY_CACHE,
          )
        : Promise.resolve(EMPTY_CACHE),
    };
  }

  /**
   * Walks directory `rel`: lists it, decides every entry, starts its files' reads and
   * walks its subdirectories. Returns once the walk has gone through it, with `tree`: the
   * tree id (null in a dry run), which settles later, once its files have landed and its
   * subdirectories' trees are saved. So the walk never waits for a directory's files: it
   * goes on with the next ones while the workers read (backpressure is the limiter).
   */
  private async processDir(rel: Buffer, prevTreeId: string | undefined, pre?: DirPrefetch): Promise<{ tree: Promise<string | null> }> {
    await this.checkpointGate();
    const o = this.o;
    pre ??= this.prefetch(rel, prevTreeId);
    const listing = await pre.listing;
    this.noteListing(listing);
    const prev = new Map<string, TreeEntry>();
    const prevTree = await pre.prevTree;
    if (prevTree && 'tree' in prevTree) for (const e of prevTree.tree.entries) prev.set(e.name.toString('latin1'), e);
    else if (prevTree) this.warn(rel, `previous snapshot's listing unreadable, treating files as new: ${prevTree.error}`);
    const cache = await pre.cache;

    // Subdirectories to descend into, with their reads started PREFETCH_DIRS ahead.
    const subdirs: number[] = [];
    for (let i = 0; i < listing.entries.length; i++) {
      const e = listing.entries[i]!;
      if (e.type === 'dir' && e.descend) subdirs.push(i);
    }
    const prefetched = new Map<number, DirPrefetch>();
    let nextPrefetch = 0;
    const prefetchUpTo = (k: number) => {
      while (nextPrefetch < subdirs.length && nextPrefetch <= k) {
        const i = subdirs[nextPrefetch++]!;
        const e = listing.entries[i]!;
        const p = prev.get(e.name.toString('latin1'));
        prefetched.set(i, this.prefetch(joinRel(rel, e.name), p?.type === 'dir' ? p.subtree : undefined));
      }
    };
    prefetchUpTo(PREFETCH_DIRS - 1);
    let subdirsDone = 0;

    const out: (TreeEntry | null)[] = new Array(listing.entries.length).fill(null);
    const cacheFiles = new Map<string, CachedFile>();
    const dirState = { cacheHits: 0 };
    const pending: Promise<void>[] = [];
    const subtrees: { i: number; base: TreeEntry; tree: Promise<string | null> }[] = [];
    for (let i = 0; i < listing.entries.length; i++) {
      const e = listing.entries[i]!;
      const key = e.name.toString('latin1');
      const prevEntry = prev.get(key);
      prev.delete(key);
      const childRel = joinRel(rel, e.name);
      const base = entryFromStat(e);
      switch (e.type) {
        case 'file': {
          if (prevEntry?.type === 'file') this.stats.filesPrevious++;
          else if (prevEntry) await this.countRemovedEntry(prevEntry, childRel);
          const background = await this.processFile(childRel, e, base, cache.get(key), prevEntry, cacheFiles, out, i, dirState);
          if (background) pending.push(background.task);
          break;
        }
        case 'dir': {
          this.stats.dirs++;
          const prevSub = prevEntry?.type === 'dir' ? prevEntry.subtree : undefined;
          if (e.descend) {
            prefetchUpTo(subdirsDone + PREFETCH_DIRS);
            const childPre = prefetched.get(i);
            prefetched.delete(i);
            subdirsDone++;
            subtrees.push({ i, base, tree: (await this.processDir(childRel, prevSub, childPre)).tree });
          }
          else {
            const subtree = await this.emptyTree();
            if (prevSub) await this.countRemoved(prevSub, childRel);
            out[i] = subtree === null ? { ...base } : { ...base, subtree };
          }
          if (prevEntry && prevEntry.type !== 'dir') await this.countRemovedEntry(prevEntry, childRel);
          break;
        }
        case 'symlink': {
          try {
            const target = await readlink(this.walker.absPath(childRel), { encoding: 'buffer' });
            out[i] = { ...base, linkTarget: target };
            this.stats.symlinks++;
          } catch (err) {
            this.warn(childRel, fsWarning(childRel, err, 'cannot read symlink').message);
          }
          if (prevEntry) await this.countRemovedEntry(prevEntry, childRel);
          break;
        }
        default: {
          this.stats.specials++;
          out[i] = base;
          if (prevEntry) await this.countRemovedEntry(prevEntry, childRel);
        }
      }
    }
    for (const [, p] of prev) await this.countRemovedEntry(p, joinRel(rel, p.name));

    const finish = async (): Promise<string | null> => {
      await Promise.all(pending);
      for (const d of subtrees) {
        const subtree = await d.tree;
        out[d.i] = subtree === null ? { ...d.base } : { ...d.base, subtree };
      }
      if (this.fatal) throw this.fatal;
      let treeId: string | null = null;
      if (!o.dryRun) {
        const entries = out.filter((x): x is TreeEntry => x !== null);
        // Unchanged directory: the previous tree is this very tree (no encoding, no hashing).
        const same =
          prevTreeId !== undefined &&
          prevTree !== null &&
          'tree' in prevTree &&
          sameEntries(entries, prevTree.tree.entries) &&
          (await o.repo.hasBlob(prevTreeId));
        treeId = same ? prevTreeId : await o.repo.saveTree({ entries });
        // A row equal to the cached one (every file a hit on it) need not be written again.
        const sameRow = dirState.cacheHits === cacheFiles.size && cacheFiles.size === cache.size;
        if (o.fileCache && !sameRow) {
          this.pendingRows.push({ dir: rel, entries: cacheFiles });
          this.pendingRowFiles += cacheFiles.size + 1;
          await this.maybeCheckpoint();
        }
      }
      this.reportProgress();
      return treeId;
    };
    const tree = finish();
    // Awaited by the parent (or execute); until then a failure must not count as unhandled.
    tree.catch(() => {});
    this.finishing.add(tree);
    void tree.finally(() => this.finishing.delete(tree)).catch(() => {});
    return { tree };
  }

  /** Counts a previous entry that is gone (or changed type) as removed files. */
  private async countRemovedEntry(p: TreeEntry, path: Buffer): Promise<void> {
    if (p.type === 'file') {
      this.stats.filesPrevious++;
      this.stats.filesRemoved++;
    } else if (p.type === 'dir' && p.subtree) await this.countRemoved(p.subtree, path);
  }

  private async countRemoved(treeId: string, path: Buffer): Promise<void> {
    let tree: Tree;
    try {
      tree = await this.o.repo.loadTree(treeId);
    } catch {
      return;
    }
    for (const e of tree.entries) await this.countRemovedEntry(e, joinRel(path, e.name));
  }

  /**
   * Decides what to do with one file. Unchanged files and hard links to a file already
   * read are finished here. A file to read gets a limiter slot here (so the walk waits
   * while every slot is busy: backpressure) and is read in the background; the returned
   * `task` settles when it is stored (it never rejects: errors go to `this.fatal`).
   */
  private async processFile(
    rel: Buffer,
    e: WalkEntry,
    base: TreeEntry,
    cached: CachedFile | undefined,
    prevEntry: TreeEntry | undefined,
    cacheFiles: Map<string, CachedFile>,
    out: (TreeEntry | null)[],
    index: number,
    dirState: { cacheHits: number },
  ): Promise<{ task: Promise<void> } | null> {
    const st = e.stat;
    const size = Number(st.size);
    this.stats.filesTotal++;
    this.stats.bytesTotal += size;
    const o = this.o;

    // 1. Unchanged: the cache (or, without a cache row, the previous snapshot) knows this
    //    exact file and every blob of its content is still in the repository.
    const fromPrev: CachedFile | undefined =
      prevEntry?.type === 'file' && prevEntry.content
        ? {
            size: prevEntry.size,
            mtimeNs: prevEntry.mtimeNs,
            ctimeNs: prevEntry.ctimeNs,
            inode: prevEntry.inode,
            dev: prevEntry.dev,
            content: prevEntry.content,
          }
        : undefined;
    const known = cached ?? fromPrev;
    if (known && sameFile(known, st) && (await this.allBlobsPresent(known.content))) {
      this.stats.filesUnchanged++;
      this.stats.bytesUnchanged += size;
      out[index] = { ...base, content: known.content };
      cacheFiles.set(e.name.toString('latin1'), known);
      if (known === cached) dirState.cacheHits++;
      return null;
    }
    if (prevEntry?.type === 'file') {
      this.stats.filesChanged++;
      this.stats.bytesChangedFiles += size;
      const ref = known!;
      if (ref.size !== size) this.stats.changedReasons.size++;
      if (ref.mtimeNs !== st.mtimeNs) this.stats.changedReasons.mtime++;
      if (ref.ctimeNs !== st.ctimeNs) this.stats.changedReasons.ctime++;
      if (ref.inode !== st.ino || ref.dev !== st.dev) this.stats.changedReasons.inode++;
    } else {
      this.stats.filesNew++;
      this.stats.bytesNewFiles += size;
    }

    if (o.dryRun) {
      this.stats.bytesRead += size;
      out[index] = base;
      return null;
    }

    // 2. A hard link to a file already read in this run: reuse its content.
    const linkKey = st.nlink > 1n ? `${st.dev}:${st.ino}` : null;
    const first = linkKey ? this.hardLinks.get(linkKey) : undefined;
    if (first) {
      const content = await first;
      if (content) {
        out[index] = { ...base, content };
        cacheFiles.set(e.name.toString('latin1'), cacheEntry(st, content));
        return null;
      }
    }

    // 3. Read and store in the background, at most `fileConcurrency` at once.
    let settle: ((c: string[] | null) => void) | null = null;
    if (linkKey && !first) this.hardLinks.set(linkKey, new Promise((r) => (settle = r)));
    await this.checkpointGate();
    const slot = await this.limiter.acquire();
    const task = (async () => {
      let content: string[] | null = null;
      try {
        const stored = await this.storeFile(rel, st);
        if (stored) {
          content = stored.content;
          out[index] = { ...base, ...stored.meta, content: stored.content };
          if (stored.consistent) cacheFiles.set(e.name.toString('latin1'), cacheEntry(stored.stat, stored.content));
        }
      } catch (err) {
        this.fatal ??= err;
      } finally {
        (settle as ((c: string[] | null) => void) | null)?.(content);
        slot.release();
        this.reportProgress();
      }
    })();
    this.inflight.add(task);
    void task.finally(() => this.inflight.delete(task));
    // Wrapped: an async function returning a promise would wait for it (one file at a time).
    return { task };
  }

  /**
   * Reads one file into the repository. Re-stats it afterwards; a file that changed
   * while being read is read once more, then kept with a warning. Returns null (with a
   * warning) when the file cannot be read; throws on repository errors.
   */
  private async storeFile(
    rel: Buffer,
    before: EntryStat,
  ): Promise<{ content: string[]; stat: FileIdentity; meta: Partial<TreeEntry>; consistent: boolean } | null> {
    const abs = this.walker.absPath(rel);
    const o = this.o;
    this.currentPath = displayPath(rel);
    let st: FileIdentity = before;
    for (let attempt = 0; ; attempt++) {
      let res: SaveFileResult;
      let live = 0;
      try {
        res = await o.repo.saveFile(abs, {
          ...(o.signal ? { signal: o.signal } : {}),
          ...(o.gate ? { gate: () => this.awaitGate('chunk') } : {}),
          size: Number(st.size),
          onChunk: (n) => {
            live += n;
            this.stats.bytesRead += n;
            this.reportProgress();
          },
        });
      } catch (err) {
        this.stats.bytesRead -= live;
        if (o.signal?.aborted) throw err;
        if (isSourceError(err, abs)) {
          this.warn(rel, fsWarning(rel, err, 'cannot read file').message);
          return null;
        }
        throw err;
      }
      this.stats.bytesRead += res.bytesRead - live;
      this.stats.bytesNew += res.bytesNew;
      this.stats.bytesWritten += res.bytesWritten;
      // The repository's workers lstat the path right after reading it; others leave it to us.
      let after: FileStatAfter;
      try {
        if (res.statAfter === null) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
        after = res.statAfter ?? statAfter(await lstat(abs, { bigint: true }));
      } catch (err) {
        // Gone right after being read: the content read is consistent with `st`; keep it.
        this.warn(rel, fsWarning(rel, err, 'stored, then it').message);
        return { content: res.content, stat: st, meta: {}, consistent: false };
      }
      const changed =
        res.changedWhileRead === true ||
        !after.isFile ||
        after.size !== st.size ||
        after.mtimeNs !== st.mtimeNs ||
        BigInt(res.size) !== after.size;
      if (!changed) return { content: res.content, stat: st, meta: {}, consistent: true };
      if (!after.isFile) {
        this.warn(rel, 'was replaced by another kind of entry while being read; stored the content read');
        return { content: res.content, stat: st, meta: { size: res.size }, consistent: false };
      }
      if (attempt >= 1) {
        this.warn(rel, 'changed while being read (twice); stored the version read last, it may be inconsistent');
        return { content: res.content, stat: after, meta: { size: res.size, mtimeNs: after.mtimeNs, ctimeNs: after.ctimeNs }, consistent: false };
      }
      st = after;
    }
  }

  private async allBlobsPresent(ids: readonly string[]): Promise<boolean> {
    for (const id of ids) {
      const r = this.o.repo.hasBlob(id);
      if (!(typeof r === 'boolean' ? r : await r)) return false;
    }
    return true;
  }

  /**
   * A checkpoint after enough files or time. One at a time (directories finish
   * concurrently); the walk and the reads go on meanwhile: checkpointNow takes the rows
   * before the flush, and a row is only pushed once its directory's files have landed.
   */
  private async maybeCheckpoint(): Promise<void> {
    const now = this.o.clock.nowMs();
    if (
      this.checkpointing ||
      (this.pendingRowFiles < (this.o.checkpointEveryFiles ?? 5000) &&
        now - this.lastCheckpointMs < (this.o.checkpointEveryMs ?? 5 * 60_000))
    ) {
      return;
    }
    this.checkpointing = true;
    try {
      await this.checkpointNow(false);
    } finally {
      this.checkpointing = false;
    }
  }

  /**
   * Saves the cache rows of finished directories. Only after a repo.flush() that began
   * after every one of them was pushed: rows must name stored blobs (callers make sure
   * nothing runs any more).
   */
  private async saveCacheRows(): Promise<void> {
    if (!this.o.fileCache || this.pendingRows.length === 0) return;
    const rows = this.pendingRows;
    this.pendingRows = [];
    this.pendingRowFiles = 0;
    await this.o.fileCache.saveDirs(this.o.repo.id, this.o.job.name, rows);
    for (const row of rows) this.stats.filesCheckpointed += row.entries.size;
  }
}

/** A TreeEntry (without content/subtree/link target) from an lstat result. */
export function entryFromStat(e: WalkEntry): TreeEntry {
  const st = e.stat;
  const entry: TreeEntry = {
    name: e.name,
    type: e.type,
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    size: e.type === 'file' ? Number(st.size) : 0,
    inode: st.ino,
    dev: st.dev,
    nlink: Number(st.nlink),
  };
  if (e.type === 'chardev' || e.type === 'blockdev') entry.rdev = Number(st.rdev);
  return entry;
}

function sameFile(c: CachedFile, st: EntryStat): boolean {
  return (
    BigInt(c.size) === st.size && c.mtimeNs === st.mtimeNs && c.ctimeNs === st.ctimeNs && c.inode === st.ino && c.dev === st.dev
  );
}

/** What identifies a file's version: the fields the cache compares. */
type FileIdentity = Pick<EntryStat, 'size' | 'mtimeNs' | 'ctimeNs' | 'ino' | 'dev'>;

function statAfter(st: BigIntStats): FileStatAfter {
  return { isFile: st.isFile(), size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino, dev: st.dev };
}

function cacheEntry(st: FileIdentity, content: string[]): CachedFile {
  return { size: Number(st.size), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, inode: st.ino, dev: st.dev, content };
}

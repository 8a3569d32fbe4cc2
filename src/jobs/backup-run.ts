import type { BigIntStats } from 'node:fs';
import { lstat, readlink, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { abortError, type Clock } from '../node/clock.js';
import type { JobConfig } from '../node/config/types.js';
import { keyName, type CachedDirInfo, type CachedDirRecord, type CachedFile } from '../backupdb/file-cache-codec.js';
import type {
  EntryStat,
  EntryType,
  FileIdentity,
  FileStatAfter,
  RawListing,
  SaveFileOptions,
  SaveFileResult,
  Snapshot,
  SnapshotInput,
  Tree,
  TreeEntry,
} from '../repo/types.js';
import { EntriesDigest, sameEntries } from '../repo/tree-codec.js';
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
  listDir?(path: Buffer): Promise<RawListing>;
  saveTree(tree: Tree): Promise<string>;
  loadTree(id: string): Promise<Tree>;
  hasBlob(id: string): boolean | Promise<boolean>;
  /** hasBlob() of the id in bytes buf[at, at + length), without making its hex string; optional. */
  hasBlobAt?(buf: Buffer, at: number, length: number): boolean;
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
  /** The directory's tree, when the row holds every file of it (see PrevDir). */
  info?: CachedDirInfo | null;
}

/**
 * The backupdb file cache as the run uses it (`BackupDb.fileCache` fits): one row per
 * directory, tied to a repository id and a job; keys are the names in latin1 (a 1:1
 * byte mapping). `loadDirRecords` gives the rows of the cached directories among `dirs`
 * (keyed by nameKey of the path); `saveDirs` replaces the given directories' rows atomically.
 */
export interface FileCachePort {
  loadDirRecords(repoId: string, job: string, dirs: readonly Buffer[]): Promise<ReadonlyMap<string, CachedDirRecord>>;
  saveDirs(repoId: string, job: string, rows: readonly CacheDirRow[]): Promise<void>;
  /** Whether any row is cached for the repository and job (false: a first run needs no lookups). */
  hasRows?(repoId: string, job: string): Promise<boolean>;
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
  /**
   * Files saved at once (default 256: small files travel to the workers in batches, so many
   * must be in flight, enough to keep both threads' queues full while the main thread is
   * busy elsewhere; each holds its walk entry, job and handlers on the main thread).
   */
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

/**
 * Sibling directories whose reads are started ahead of the walk (bounded: memory and open
 * I/O). The read-ahead constants below were set on the bench's unchanged re-run, where the
 * walk waits for listings and rows more than it works: 4× the earlier values cut its walk
 * from ~0.50 to ~0.43 s (15 runs each, medians).
 */
const PREFETCH_DIRS = 32;

/**
 * The previous snapshot's view of one directory. A cache row whose info names the very
 * tree the previous snapshot has there stands for it (the row holds every file of that
 * tree with its identity and content, and every subdirectory's tree id: all the walk
 * needs), so that tree is not loaded. Otherwise the tree is loaded; `error` when that
 * failed; nothing when there was no previous directory.
 */
interface PrevDir {
  /** `record.files` are the previous tree's files (decoded when first used). */
  row?: { record: CachedDirRecord; subdirs: ReadonlyMap<string, string> };
  tree?: Tree;
  error?: string;
}

const NO_PREV: PrevDir = {};
const NO_ROWS: ReadonlyMap<string, CachedDirRecord> = new Map();
/** Directories whose cache rows are looked up in one query, at most. */
const ROW_QUERY_MAX = 128;
/** Subdirectories whose cache rows are asked for ahead of their other reads. */
const ROWS_AHEAD = 8;
/** Rows RowLoader may hold that the walk has not asked for yet, at most; and their encoded bytes. */
const SPECULATIVE_ROWS = 512;
const SPECULATIVE_ROW_BYTES = 4 << 20;
/**
 * Directories whose reads may wait, started, for the walk to get to them (beyond those it
 * asks for itself), at most; and the entries of their listings (a few hundred bytes each):
 * bounds the memory of the eager reads below directories not walked yet.
 */
const AHEAD_MAX = 512;
const AHEAD_ENTRIES_MAX = 32_768;
/** Subdirectories whose reads start as soon as their parent's reads are in. */
const EAGER_SUBDIRS = 16;

/** One directory's reads, all in: its listing, cache row and previous entries. */
interface DirView {
  listing: DirListing;
  row: CachedDirRecord | null;
  /** The previous entries when the cache row stands for the previous tree… */
  prevRow: PrevDir['row'] | null;
  /** …or the previous tree's entries by nameKey (null: none, or prevRow). */
  prevMap: Map<string, TreeEntry> | null;
  prevEntries: TreeEntry[] | undefined;
  prevError: string | undefined;
  /** Indexes in listing.entries of the subdirectories to descend into. */
  subdirs: number[];
}

function dirView(listing: DirListing, row: CachedDirRecord | null, prev: PrevDir): DirView {
  let prevMap: Map<string, TreeEntry> | null = null;
  if (prev.tree) {
    prevMap = new Map();
    for (const e of prev.tree.entries) prevMap.set(e.name.toString('latin1'), e);
  }
  const subdirs: number[] = [];
  for (let i = 0; i < listing.entries.length; i++) {
    const e = listing.entries[i]!;
    if (e.type === 'dir' && e.descend) subdirs.push(i);
  }
  return { listing, row, prevRow: prev.row ?? null, prevMap, prevEntries: prev.tree?.entries, prevError: prev.error, subdirs };
}

/** The previous tree id of subdirectory `key` (nameKey) in a directory's previous entries. */
function prevSubOf(v: DirView, key: string): string | undefined {
  if (v.prevRow) return v.prevRow.subdirs.get(key);
  const p = v.prevMap?.get(key);
  return p?.type === 'dir' ? p.subtree : undefined;
}

/** The reads of one directory, started ahead (see BackupRun.prefetch). */
interface DirReads {
  readonly rel: Buffer;
  readonly view: Promise<DirView>;
  /** processDir has it: no more eager reads below it (the walk drives them). */
  taken: boolean;
  subdirReads: SubdirReads | null;
}

/**
 * The reads of one directory's subdirectories, started in walk order as far as asked;
 * their cache rows are asked for ROWS_AHEAD further, so that RowLoader's queries hold
 * more directories (memory: ROWS_AHEAD rows at most per instance).
 */
class SubdirReads {
  private next = 0;
  private readonly started = new Map<number, DirReads>();
  private rowsAsked = 0;
  private readonly rows = new Map<number, Promise<CachedDirRecord | null>>();

  constructor(
    private readonly rel: Buffer,
    private readonly v: DirView,
    private readonly loader: RowLoader,
    private readonly start: (rel: Buffer, prevTreeId: string | undefined, row: Promise<CachedDirRecord | null>) => DirReads,
  ) {}

  /** Starts the reads of subdirectories 0..k (in walk order) not started yet. */
  upTo(k: number): void {
    const { subdirs, listing } = this.v;
    while (this.next < subdirs.length && this.next <= k) {
      const n = this.next++;
      const want = Math.min(subdirs.length, n + ROWS_AHEAD);
      for (; this.rowsAsked < want; this.rowsAsked++) {
        this.rows.set(this.rowsAsked, this.loader.get(joinRel(this.rel, listing.entries[subdirs[this.rowsAsked]!]!.name)));
      }
      const row = this.rows.get(n)!;
      this.rows.delete(n);
      const i = subdirs[n]!;
      const name = listing.entries[i]!.name;
      this.started.set(i, this.start(joinRel(this.rel, name), prevSubOf(this.v, name.toString('latin1')), row));
    }
  }

  /** The reads of subdirectory `i` (index in the listing), handed over once. */
  take(i: number): DirReads | undefined {
    const r = this.started.get(i);
    this.started.delete(i);
    return r;
  }
}

interface Slot {
  release(): void;
}

/** A file processDir hands to processFile, and where its outcome goes (its tree entry, its cache row entry). */
interface FileToStore {
  rel: Buffer;
  e: WalkEntry;
  /** Its name as the cache's key. */
  key: string;
  cacheFiles: Map<string, CachedFile>;
  out: (TreeEntry | null)[];
  index: number;
}

/** processFile's outcome: a read going on in the background (`task` settles once stored), or null when done already. */
type FileStart = { task: Promise<void> } | null;

/**
 * Cache rows on request, many directories per query: one query at a time, each taking
 * every request made meanwhile (a SQLite round trip costs ~0.1-0.2 ms of main thread,
 * a row in a batch of 16 a tenth of it). A row that arrives names its subdirectories
 * (CachedDirInfo.subdirs): their rows are asked for at once, ahead of the walk, at most
 * SPECULATIVE_ROWS held, so the queries stay large and memory bounded. Never rejects: a
 * failed or damaged load only costs a re-read of those directories' files.
 */
class RowLoader {
  private pending: { dir: Buffer; key: string; resolve: (r: CachedDirRecord | null) => void }[] = [];
  private busy = false;
  /** Rows asked for ahead of the walk, by nameKey of the path; handed over once. `bytes` once in. */
  private readonly ahead = new Map<string, { row: Promise<CachedDirRecord | null>; bytes: number }>();
  /** Encoded bytes of the rows in `ahead` that are in. */
  private aheadBytes = 0;

  constructor(private load: ((dirs: readonly Buffer[]) => Promise<ReadonlyMap<string, CachedDirRecord>>) | null) {}

  /** No rows to find (none were cached when the run began; rows saved during the run are of directories it has walked). */
  disable(): void {
    this.load = null;
  }

  get(dir: Buffer): Promise<CachedDirRecord | null> {
    if (!this.load) return Promise.resolve(null);
    const key = dir.toString('latin1');
    const early = this.ahead.get(key);
    if (early) {
      this.ahead.delete(key);
      this.aheadBytes -= early.bytes;
      return early.row;
    }
    return this.ask(dir, key);
  }

  private speculate(key: string): void {
    const entry = { row: this.ask(Buffer.from(key, 'latin1'), key), bytes: 0 };
    this.ahead.set(key, entry);
    void entry.row.then((r) => {
      if (this.ahead.get(key) !== entry) return; // handed over meanwhile
      entry.bytes = r?.bytes ?? 0;
      this.aheadBytes += entry.bytes;
    });
  }

  private ask(dir: Buffer, key: string): Promise<CachedDirRecord | null> {
    return new Promise((resolve) => {
      this.pending.push({ dir, key, resolve });
      if (!this.busy) {
        this.busy = true;
        // After the current run of code: the requests it makes go into the same query.
        queueMicrotask(() => this.pump());
      }
    });
  }

  private pump(): void {
    if (this.pending.length === 0) {
      this.busy = false;
      return;
    }
    const batch = this.pending.splice(0, ROW_QUERY_MAX);
    void (this.load ? this.load(batch.map((b) => b.dir)) : Promise.resolve(NO_ROWS))
      .catch(() => NO_ROWS)
      .then((m) => {
        for (const b of batch) {
          const r = m.get(b.key) ?? null;
          if (r?.info) {
            for (const name of r.info.subdirs.keys()) {
              if (this.ahead.size >= SPECULATIVE_ROWS || this.aheadBytes >= SPECULATIVE_ROW_BYTES) break;
              const childKey = b.key.length === 0 ? name : `${b.key}/${name}`;
              if (!this.ahead.has(childKey)) this.speculate(childKey);
            }
          }
          b.resolve(r);
        }
        this.pump();
      });
  }
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
    return this.slot();
  }
  /** A slot when one is free now, else null (nothing waits: acquire() then). */
  tryAcquire(): Slot | null {
    if (this.active >= this.max || this.waiting.length > 0) return null;
    this.active++;
    return this.slot();
  }
  private slot(): Slot {
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
  /** saveFile's gate (made once: one closure per file was garbage kept as long as the file). */
  private readonly saveGate: (() => Promise<void> | undefined) | undefined;
  /** The file stored last (decoded for a progress report only: a string per file was garbage). */
  private currentRel: Buffer | null = null;
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
  /** Directories whose reads were started and that processDir has not taken yet. */
  private ahead = 0;
  /** Entries of the listings of those directories that are in. */
  private aheadEntries = 0;
  private readonly rows: RowLoader;
  /**
   * blobsPresentNow of one id in bytes buf[at, at + length). Looked up once: the repository
   * may be a Proxy (bandwidth.ts), and this runs for every file of an unchanged directory.
   */
  private readonly blobPresentAt: (buf: Buffer, at: number, length: number) => boolean;

  constructor(private readonly o: BackupRunOptions) {
    const repo = o.repo;
    const has = repo.hasBlob.bind(repo);
    this.blobPresentAt = repo.hasBlobAt?.bind(repo) ?? ((buf, at, length) => has(buf.toString('hex', at, at + length)) === true);
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
    this.saveGate = o.gate ? () => this.chunkGate() : undefined;
    const cache = o.fileCache;
    this.rows = new RowLoader(
      cache ? (dirs) => cache.loadDirRecords(o.repo.id, o.job.name, dirs) : null,
    );
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
      if (o.fileCache?.hasRows && !(await o.fileCache.hasRows(o.repo.id, o.job.name))) this.rows.disable();

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

  /**
   * checkpointGate() when something may have to wait; undefined when nothing must (the
   * gate says it is open, or there is none), without a promise. Throws as checkpointGate does.
   */
  private fileGate(): Promise<void> | undefined {
    if (this.o.gate && (this.o.gateClosed?.('file') !== false || this.parked)) return this.checkpointGate();
    this.throwIfStopped();
    return undefined;
  }

  private async checkpointGate(): Promise<void> {
    this.throwIfStopped();
    await this.awaitGate('file');
    if (this.o.signal?.aborted) throw abortError(this.o.signal);
  }

  /** Throws the abort reason or the run's fatal error, if there is one. */
  private throwIfStopped(): void {
    if (this.o.signal?.aborted) throw abortError(this.o.signal);
    if (this.fatal) throw this.fatal;
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

  /** awaitGate('chunk'), or nothing to await when the gate says it is open (most chunks: no promise). */
  private chunkGate(): Promise<void> | undefined {
    if (this.o.gateClosed?.('chunk') === false && !this.parked) return undefined;
    return this.awaitGate('chunk');
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
      currentPath: this.currentRel ? displayPath(this.currentRel) : '',
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
   * Starts the reads one directory needs (listing, cache row, previous tree) at once, so
   * their latencies (worker pool, SQLite) overlap with each other and with the work on
   * the directories before it. The previous tree is only loaded when the cache row does
   * not stand for it (see PrevDir). Once they are in, and while fewer than AHEAD_MAX
   * directories wait to be walked, the reads of its first subdirectories start too: the
   * reads run ahead of the walk down the tree, not only across siblings. Never rejects.
   */
  private prefetch(rel: Buffer, prevTreeId: string | undefined, rowAsked?: Promise<CachedDirRecord | null>): DirReads {
    const o = this.o;
    const listing = this.walker.listDir(rel);
    const row = rowAsked ?? this.rows.get(rel);
    const prev: Promise<PrevDir> =
      prevTreeId === undefined
        ? Promise.resolve(NO_PREV)
        : row.then((r): PrevDir | Promise<PrevDir> =>
            r?.info && r.info.tree === prevTreeId
              ? { row: { record: r, subdirs: r.info.subdirs } }
              : o.repo.loadTree(prevTreeId).then(
                  (tree) => ({ tree }),
                  (err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }),
                ),
          );
    const view = Promise.all([listing, row, prev]).then(([l, r, p]) => dirView(l, r, p));
    const reads: DirReads = { rel, view, taken: false, subdirReads: null };
    this.ahead++;
    void view.then((v) => {
      this.aheadEntries += v.listing.entries.length; // less again once processDir has it
      if (reads.taken || this.ahead >= AHEAD_MAX || this.aheadEntries >= AHEAD_ENTRIES_MAX || v.subdirs.length === 0) return;
      if (this.fatal || this.o.signal?.aborted) return;
      this.subdirReadsOf(reads, v).upTo(EAGER_SUBDIRS - 1);
    });
    return reads;
  }

  private subdirReadsOf(reads: DirReads, v: DirView): SubdirReads {
    reads.subdirReads ??= new SubdirReads(reads.rel, v, this.rows, (r, t, row) => this.prefetch(r, t, row));
    return reads.subdirReads;
  }

  /**
   * Walks directory `rel`: lists it, decides every entry, starts its files' reads and
   * walks its subdirectories. Returns once the walk has gone through it, with `tree`: the
   * tree id (null in a dry run), which settles later, once its files have landed and its
   * subdirectories' trees are saved. So the walk never waits for a directory's files: it
   * goes on with the next ones while the workers read (backpressure is the limiter).
   */
  private async processDir(rel: Buffer, prevTreeId: string | undefined, pre?: DirReads): Promise<{ tree: Promise<string | null> }> {
    await this.checkpointGate();
    const o = this.o;
    pre ??= this.prefetch(rel, prevTreeId);
    pre.taken = true;
    this.ahead--;
    const v = await pre.view;
    this.aheadEntries -= v.listing.entries.length;
    const { listing, row, prevRow, prevMap } = v;
    this.noteListing(listing);
    if (v.prevError !== undefined) this.warn(rel, `previous snapshot's listing unreadable, treating files as new: ${v.prevError}`);

    // Subdirectories to descend into, with their reads started PREFETCH_DIRS ahead.
    const kids = this.subdirReadsOf(pre, v);
    kids.upTo(PREFETCH_DIRS - 1);
    let subdirsDone = 0;

    // Unchanged directory: the cache row was saved from a listing with this very key, it
    // stands for the previous tree, and that tree and every file's blobs are in the
    // repository. Its files need no decision one by one: all are unchanged.
    const cachedInfo = row?.info;
    const sameListing =
      prevRow !== null &&
      listing.key !== null &&
      cachedInfo?.listing?.equals(listing.key) === true &&
      o.repo.hasBlob(cachedInfo.tree) === true &&
      row!.everyContentId(this.blobPresentAt);
    // The files of the row: decoded only for the decisions (not needed when sameListing).
    const cache = sameListing ? EMPTY_CACHE : (row?.files ?? EMPTY_CACHE);

    const out: (TreeEntry | null)[] = new Array(listing.entries.length).fill(null);
    /** Content of the unchanged files decided inline, by listing index (their entries are built only if needed). */
    let hits: (string[] | undefined)[] | undefined;
    const cacheFiles = new Map<string, CachedFile>();
    const dirState = { cacheHits: 0 };
    const pending: Promise<void>[] = [];
    const subtrees: { i: number; e: WalkEntry; tree: Promise<string | null> }[] = [];
    let prevSeen = 0;
    for (let i = 0; i < listing.entries.length; i++) {
      const e = listing.entries[i]!;
      if (sameListing && e.type !== 'dir') {
        this.countUnchanged(e);
        continue;
      }
      const key = e.name.toString('latin1');
      // What the previous snapshot had under this name: its type, and a file's identity
      // and content or a directory's tree id.
      let pType: EntryType | undefined;
      let pFile: CachedFile | undefined;
      let pSub: string | undefined;
      if (prevRow) {
        // (With sameListing only directories get here, and were directories then: the
        // row's files need not be decoded.)
        if (!sameListing) pFile = prevRow.record.files.get(key);
        if (pFile) pType = 'file';
        else if ((pSub = prevRow.subdirs.get(key)) !== undefined) pType = 'dir';
      } else if (prevMap) {
        const p = prevMap.get(key);
        if (p) {
          pType = p.type;
          pSub = p.subtree;
          if (p.type === 'file' && p.content) pFile = fromTreeEntry(p);
        }
      }
      if (pType) prevSeen++;
      switch (e.type) {
        case 'file': {
          if (pType === 'file') this.stats.filesPrevious++;
          else if (pType) await this.countRemovedPrev(pType, pSub, joinRel(rel, e.name));
          const cached = cache.get(key);
          const known = cached ?? pFile;
          // The usual case, unchanged, decided here without a promise per file.
          if (known && sameFile(known, e.stat) && this.blobsPresentNow(known.content)) {
            this.countFile(e.stat);
            this.stats.filesUnchanged++;
            this.stats.bytesUnchanged += Number(e.stat.size);
            (hits ??= new Array<string[] | undefined>(listing.entries.length))[i] = known.content;
            cacheFiles.set(key, known);
            if (known === cached) dirState.cacheHits++;
            break;
          }
          const started = this.processFile(joinRel(rel, e.name), e, key, known, cached, pType === 'file', cacheFiles, out, i, dirState);
          const background = started instanceof Promise ? await started : started;
          if (background) pending.push(background.task);
          break;
        }
        case 'dir': {
          this.stats.dirs++;
          const childRel = joinRel(rel, e.name);
          const prevSub = pType === 'dir' ? pSub : undefined;
          if (e.descend) {
            kids.upTo(subdirsDone + PREFETCH_DIRS);
            const childPre = kids.take(i);
            subdirsDone++;
            subtrees.push({ i, e, tree: (await this.processDir(childRel, prevSub, childPre)).tree });
          } else {
            const subtree = await this.emptyTree();
            if (prevSub) await this.countRemoved(prevSub, childRel);
            out[i] = entryFromStat(e, undefined, subtree ?? undefined);
          }
          if (pType && pType !== 'dir') await this.countRemovedPrev(pType, pSub, childRel);
          break;
        }
        case 'symlink': {
          out[i] = await this.otherEntry(rel, e);
          if (out[i]) this.stats.symlinks++;
          if (pType) await this.countRemovedPrev(pType, pSub, joinRel(rel, e.name));
          break;
        }
        default: {
          this.stats.specials++;
          out[i] = await this.otherEntry(rel, e);
          if (pType) await this.countRemovedPrev(pType, pSub, joinRel(rel, e.name));
        }
      }
    }
    // Previous entries whose names are gone: removed (found by a set only when some are;
    // none when sameListing: the files were not looked at).
    const prevCount = sameListing ? 0 : prevRow ? prevRow.record.files.size + prevRow.subdirs.size : (prevMap?.size ?? 0);
    if (prevSeen < prevCount) {
      const present = new Set(listing.entries.map((e) => e.name.toString('latin1')));
      if (prevMap) {
        for (const [k, p] of prevMap) if (!present.has(k)) await this.countRemovedPrev(p.type, p.subtree, joinRel(rel, p.name));
      } else if (prevRow) {
        for (const k of prevRow.record.files.keys()) if (!present.has(k)) await this.countRemovedPrev('file', undefined, joinRel(rel, keyName(k)));
        for (const [k, sub] of prevRow.subdirs) if (!present.has(k)) await this.countRemoved(sub, joinRel(rel, keyName(k)));
      }
    }
    const prevEntries = v.prevEntries;

    const finish = async (): Promise<string | null> => {
      await Promise.all(pending);
      for (const d of subtrees) {
        const subtree = await d.tree;
        out[d.i] = entryFromStat(d.e, undefined, subtree ?? undefined);
      }
      if (this.fatal) throw this.fatal;
      if (sameListing) {
        // The tree is the previous one unless a subdirectory's changed; then its entries are
        // the cached files and the subdirectories' new trees, and it is saved as usual.
        if (o.dryRun || subtrees.every((d) => out[d.i]!.subtree === cachedInfo!.subdirs.get(d.e.name.toString('latin1')))) {
          this.reportProgress();
          return o.dryRun ? null : cachedInfo!.tree;
        }
        hits = new Array<string[] | undefined>(listing.entries.length);
        const rowFiles = row!.files;
        for (let i = 0; i < listing.entries.length; i++) {
          const e = listing.entries[i]!;
          if (e.type === 'file') {
            const key = e.name.toString('latin1');
            const cached = rowFiles.get(key)!;
            hits[i] = cached.content;
            cacheFiles.set(key, cached);
            dirState.cacheHits++;
          } else if (e.type !== 'dir') out[i] = await this.otherEntry(rel, e);
        }
      }
      let treeId: string | null = null;
      if (!o.dryRun) {
        // The digest of the entries; an unchanged file's entry (hits[i]) is only built
        // when the tree must be: most directories are unchanged.
        let digest: Buffer | null = null;
        let files = 0;
        if (o.fileCache) {
          const d = new EntriesDigest();
          for (let i = 0; i < out.length; i++) {
            const x = out[i];
            const c = hits?.[i];
            if (x) d.add(x);
            else if (c) d.addFile(listing.entries[i]!.name, listing.entries[i]!.stat, c);
            if (x?.type === 'file' || c) files++;
          }
          digest = d.digest();
        }
        const entriesNow = (): TreeEntry[] => {
          const list: TreeEntry[] = [];
          for (let i = 0; i < out.length; i++) {
            const c = hits?.[i];
            const x = out[i] ?? (c ? entryFromStat(listing.entries[i]!, c) : null);
            if (x) list.push(x);
          }
          return list;
        };
        // Unchanged directory: the tree named by the cache row (same digest) or the
        // previous snapshot's (same entries) is this very tree: no encoding, no hashing.
        if (digest && row?.info && row.info.digest.equals(digest) && (await o.repo.hasBlob(row.info.tree))) {
          treeId = row.info.tree;
        } else {
          const entries = entriesNow();
          if (
            prevTreeId !== undefined &&
            prevEntries !== undefined &&
            sameEntries(entries, prevEntries) &&
            (await o.repo.hasBlob(prevTreeId))
          ) {
            treeId = prevTreeId;
          } else treeId = await o.repo.saveTree({ entries });
        }
        if (o.fileCache && digest) {
          // The row stands for the tree only when it holds every file of it (content known).
          const subdirIds = new Map<string, string>();
          for (const x of out) if (x?.type === 'dir' && x.subtree !== undefined) subdirIds.set(x.name.toString('latin1'), x.subtree);
          const info: CachedDirInfo | null =
            files === cacheFiles.size ? { tree: treeId, digest, subdirs: subdirIds, listing: this.listingKeyOf(listing, cacheFiles) } : null;
          // A row equal to the cached one (every file a hit on it, same tree) need not be written again.
          const sameRow =
            dirState.cacheHits === cacheFiles.size &&
            cacheFiles.size === cache.size &&
            (info
              ? row?.info?.tree === treeId && row.info.digest.equals(digest) && sameKey(row.info.listing, info.listing)
              : !row?.info);
          if (!sameRow) {
            this.pendingRows.push({ dir: rel, entries: cacheFiles, info });
            this.pendingRowFiles += cacheFiles.size + 1;
            await this.maybeCheckpoint();
          }
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

  /** The entry of a symlink (null when its target cannot be read: a warning) or a special file. */
  private async otherEntry(rel: Buffer, e: WalkEntry): Promise<TreeEntry | null> {
    const entry = entryFromStat(e);
    if (e.type !== 'symlink') return entry;
    const childRel = joinRel(rel, e.name);
    try {
      entry.linkTarget = await readlink(this.walker.absPath(childRel), { encoding: 'buffer' });
      return entry;
    } catch (err) {
      this.warn(childRel, fsWarning(childRel, err, 'cannot read symlink').message);
      return null;
    }
  }

  /**
   * The listing key a cache row may keep (see the `sameListing` walk in processDir): the
   * listing's, when every file of it is cached as the listing shows it (not when one
   * changed while it was read, say); else null.
   */
  private listingKeyOf(listing: DirListing, cacheFiles: ReadonlyMap<string, CachedFile>): Buffer | null {
    if (listing.key === null) return null;
    for (const e of listing.entries) {
      if (e.type !== 'file') continue;
      const c = cacheFiles.get(e.name.toString('latin1'));
      if (!c || !sameFile(c, e.stat)) return null;
    }
    return listing.key;
  }

  /** Counts an entry other than a directory of a directory whose listing is the cached one (all unchanged). */
  private countUnchanged(e: WalkEntry): void {
    if (e.type === 'file') {
      this.countFile(e.stat);
      this.stats.filesPrevious++;
      this.stats.filesUnchanged++;
      this.stats.bytesUnchanged += Number(e.stat.size);
    } else if (e.type === 'symlink') this.stats.symlinks++;
    else this.stats.specials++;
  }

  /** Counts a previous entry that is gone (or changed type) as removed files. */
  private async countRemovedPrev(type: EntryType, subtree: string | undefined, path: Buffer): Promise<void> {
    if (type === 'file') {
      this.stats.filesPrevious++;
      this.stats.filesRemoved++;
    } else if (type === 'dir' && subtree) await this.countRemoved(subtree, path);
  }

  private async countRemoved(treeId: string, path: Buffer): Promise<void> {
    let tree: Tree;
    try {
      tree = await this.o.repo.loadTree(treeId);
    } catch {
      return;
    }
    for (const e of tree.entries) await this.countRemovedPrev(e.type, e.subtree, joinRel(path, e.name));
  }

  private countFile(st: EntryStat): void {
    this.stats.filesTotal++;
    this.stats.bytesTotal += Number(st.size);
  }

  /** True when every blob is known to be in the repository; false when one is not or the answer would need a wait. */
  private blobsPresentNow(ids: readonly string[]): boolean {
    for (const id of ids) if (this.o.repo.hasBlob(id) !== true) return false;
    return true;
  }

  /**
   * Decides what to do with one file the fast path in processDir did not settle.
   * Unchanged files and hard links to a file already read are finished here. A file to
   * read gets a limiter slot here (so the walk waits while every slot is busy:
   * backpressure) and is read in the background; the returned `task` settles when it is
   * stored (it never rejects: errors go to `this.fatal`). Answers at once, without a
   * promise, unless something must be waited for (most new files: a promise and an async
   * frame less per file on the main thread).
   */
  private processFile(
    rel: Buffer,
    e: WalkEntry,
    key: string,
    known: CachedFile | undefined,
    cached: CachedFile | undefined,
    prevWasFile: boolean,
    cacheFiles: Map<string, CachedFile>,
    out: (TreeEntry | null)[],
    index: number,
    dirState: { cacheHits: number },
  ): FileStart | Promise<FileStart> {
    const st = e.stat;
    this.countFile(st);
    const file: FileToStore = { rel, e, key, cacheFiles, out, index };

    // 1. Unchanged: the cache (or, without a cache row, the previous snapshot) knows this
    //    exact file and every blob of its content is still in the repository.
    if (known && sameFile(known, st)) {
      return this.allBlobsPresent(known.content).then((present) => {
        if (!present) return this.changedFile(file, known, prevWasFile);
        this.stats.filesUnchanged++;
        this.stats.bytesUnchanged += Number(st.size);
        out[index] = entryFromStat(e, known.content);
        cacheFiles.set(key, known);
        if (known === cached) dirState.cacheHits++;
        return null;
      });
    }
    return this.changedFile(file, known, prevWasFile);
  }

  /** processFile for a file whose stored content cannot be reused: counts it, then reads it (or reuses a hard link's). */
  private changedFile(file: FileToStore, known: CachedFile | undefined, prevWasFile: boolean): FileStart | Promise<FileStart> {
    const st = file.e.stat;
    const size = Number(st.size);
    if (prevWasFile && known) {
      this.stats.filesChanged++;
      this.stats.bytesChangedFiles += size;
      const ref = known;
      if (ref.size !== size) this.stats.changedReasons.size++;
      if (ref.mtimeNs !== st.mtimeNs) this.stats.changedReasons.mtime++;
      if (ref.ctimeNs !== st.ctimeNs) this.stats.changedReasons.ctime++;
      if (ref.inode !== st.ino || ref.dev !== st.dev) this.stats.changedReasons.inode++;
    } else if (prevWasFile) {
      // A previous file without content (never in a tree this engine wrote): changed, no reason known.
      this.stats.filesChanged++;
      this.stats.bytesChangedFiles += size;
    } else {
      this.stats.filesNew++;
      this.stats.bytesNewFiles += size;
    }

    if (this.o.dryRun) {
      this.stats.bytesRead += size;
      file.out[file.index] = entryFromStat(file.e);
      return null;
    }

    // 2. A hard link to a file already read in this run: reuse its content.
    const linkKey = st.nlink > 1n ? `${st.dev}:${st.ino}` : null;
    const first = linkKey ? this.hardLinks.get(linkKey) : undefined;
    if (first) {
      return first.then((content) => {
        if (!content) return this.startRead(file, null);
        file.out[file.index] = entryFromStat(file.e, content);
        file.cacheFiles.set(file.key, cacheEntry(st, content));
        return null;
      });
    }
    return this.startRead(file, linkKey);
  }

  /**
   * 3. Reads and stores the file in the background, at most `fileConcurrency` at once;
   * `linkKey`: the first of its hard links seen (the others wait for its content).
   */
  private startRead(file: FileToStore, linkKey: string | null): FileStart | Promise<FileStart> {
    let settle: ((c: string[] | null) => void) | null = null;
    if (linkKey) this.hardLinks.set(linkKey, new Promise((r) => (settle = r)));
    const gate = this.fileGate();
    const slot = gate ? null : this.limiter.tryAcquire();
    if (slot) return { task: this.readInBackground(file, slot, settle) };
    return (async () => {
      await gate;
      return { task: this.readInBackground(file, await this.limiter.acquire(), settle) };
    })();
  }

  /** The read of startRead, with its slot (released once stored); `settle` gives waiting hard links the content. */
  private readInBackground(file: FileToStore, slot: Slot, settle: ((c: string[] | null) => void) | null): Promise<void> {
    const task = (async () => {
      let content: string[] | null = null;
      try {
        const stored = await this.storeFile(file.rel, file.e.stat);
        if (stored) {
          content = stored.content;
          // Assigned, not spread into a new literal: that gave each entry a hidden class of
          // its own (~0.5 KiB per file of V8 maps, seen as 130k maps in a 400k-file directory).
          file.out[file.index] = Object.assign(entryFromStat(file.e, stored.content), stored.meta);
          if (stored.consistent) file.cacheFiles.set(file.key, cacheEntry(stored.stat, stored.content));
        }
      } catch (err) {
        this.fatal ??= err;
      } finally {
        settle?.(content);
        slot.release();
        this.reportProgress();
      }
    })();
    this.inflight.add(task);
    void task.finally(() => this.inflight.delete(task));
    return task;
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
    this.currentRel = rel;
    let st: FileIdentity = before;
    for (let attempt = 0; ; attempt++) {
      let res: SaveFileResult;
      let live = 0;
      try {
        res = await o.repo.saveFile(abs, {
          signal: o.signal,
          gate: this.saveGate,
          expect: st,
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

/** A TreeEntry from an lstat result (without link target), with its content or subtree when given. */
export function entryFromStat(e: WalkEntry, content?: string[], subtree?: string): TreeEntry {
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
  if (content !== undefined) entry.content = content;
  if (subtree !== undefined) entry.subtree = subtree;
  return entry;
}

/** What a previous tree's file entry says about the file, in the cache's terms. */
function fromTreeEntry(p: TreeEntry): CachedFile {
  return { size: p.size, mtimeNs: p.mtimeNs, ctimeNs: p.ctimeNs, inode: p.inode, dev: p.dev, content: p.content! };
}

function sameKey(a: Buffer | null | undefined, b: Buffer | null | undefined): boolean {
  return a && b ? a.equals(b) : !a && !b;
}

function sameFile(c: CachedFile, st: EntryStat): boolean {
  return (
    BigInt(c.size) === st.size && c.mtimeNs === st.mtimeNs && c.ctimeNs === st.ctimeNs && c.inode === st.ino && c.dev === st.dev
  );
}

function statAfter(st: BigIntStats): FileStatAfter {
  return { isFile: st.isFile(), size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino, dev: st.dev };
}

function cacheEntry(st: FileIdentity, content: string[]): CachedFile {
  return { size: Number(st.size), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, inode: st.ino, dev: st.dev, content };
}

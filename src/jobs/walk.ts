import type { Dirent } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Ignore } from 'ignore';
import type { Clock } from '../node/clock.js';
import type { EntryStat, EntryType, RawDirEntry, RawListing } from '../repo/types.js';

/** What the walker needs from a job (a subset of JobConfig, so tests can pass literals). */
export interface WalkOptions {
  /** gitignore-style patterns, relative to the source root. */
  readonly exclude?: readonly string[];
  /** Files larger than this many bytes are skipped (not a warning). */
  readonly maxFileSize?: number | null;
  /** Files modified less than this many ms before `clock.now()` are skipped until a later run. */
  readonly minFileAgeMs?: number | null;
  /** Never descend into a directory on another device than the source root. */
  readonly oneFileSystem?: boolean;
  /**
   * Directories never descended into, identified by device and inode (so a path spelled
   * differently, through a symlinked parent, is still recognised): the repository's own
   * directory when it lies inside the source, the node directory.
   */
  readonly skipDirs?: readonly { dev: bigint; ino: bigint }[];
  readonly clock: Clock;
  /**
   * Reads a directory and lstat's its entries elsewhere (Repository.listDir: a worker
   * thread, one message per directory); rejects with the fs error for an unreadable
   * directory. Without it, readdir and one async lstat per entry here.
   */
  readonly lister?: (absPath: Buffer) => Promise<RawListing>;
}

/** One entry of a directory as the walker saw it: lstat'ed, never followed. */
export interface WalkEntry {
  /** Exact bytes of the name. */
  readonly name: Buffer;
  readonly type: EntryType;
  readonly stat: EntryStat;
  /**
   * For directories: false when the walker will not list it (another file system with
   * one_file_system, or the repository's own directory). Such a directory is still
   * recorded (so a restore recreates the mount point) but as empty.
   */
  readonly descend: boolean;
}

/** Why an entry was left out without a warning. */
export type SkipReason = 'excluded' | 'too-large' | 'too-young' | 'other-filesystem' | 'repository';

/** A problem with one path: goes into the run's warnings, never stops the walk. */
export interface WalkWarning {
  /** Path relative to the source root (exact bytes). */
  readonly path: Buffer;
  readonly message: string;
  readonly code?: string;
}

/** The result of listing one directory. */
export interface DirListing {
  /** Entries sorted by name bytes. */
  readonly entries: WalkEntry[];
  readonly skipped: { readonly path: Buffer; readonly reason: SkipReason; readonly size?: number }[];
  readonly warnings: WalkWarning[];
  /** False when the directory itself could not be read (then `entries` is empty and a warning says why). */
  readonly readable: boolean;
  /**
   * Equal for two listings of a directory exactly when they hold the same entries with the
   * same metadata (the lister's digest). Null when the lister gave none, or when an entry
   * was skipped or gave a warning (the listing must be gone through again to report those).
   */
  readonly key: Buffer | null;
}

const SLASH = Buffer.from('/');

/**
 * The `ignore` package, loaded by the first job with excludes. It is CommonJS: through
 * `import`, node would first scan its 50 KB of source for export names (~10 ms, and V8
 * then spends ~50 ms more optimizing that scanner) in every run, excludes or not.
 */
function loadIgnore(): typeof import('ignore') {
  return createRequire(import.meta.url)('ignore') as typeof import('ignore');
}
/** lstat calls issued at once per directory; libuv's pool has 4 threads, more only queues. */
const STAT_PARALLELISM = 16;

/**
 * Lists directories below one source root, applying the job's filters. Stateless apart
 * from the root device and the compiled exclude patterns: `listDir` may be called for any
 * directory, in any order, concurrently. Never follows symlinks, never opens files.
 */
export class Walker {
  readonly root: Buffer;
  private readonly ig: Ignore | null;
  private rootDev: bigint | null = null;
  private skipDirs: readonly { dev: bigint; ino: bigint }[];

  constructor(
    root: string | Buffer,
    private readonly opts: WalkOptions,
  ) {
    this.root = typeof root === 'string' ? Buffer.from(root) : root;
    const patterns = (opts.exclude ?? []).filter((p) => p.trim() !== '');
    this.ig = patterns.length > 0 ? loadIgnore()({ allowRelativePaths: true }).add([...patterns]) : null;
    this.skipDirs = opts.skipDirs ?? [];
  }

  /** Replaces the directories never descended into (see WalkOptions.skipDirs). */
  setSkipDirs(ids: readonly { dev: bigint; ino: bigint }[]): void {
    this.skipDirs = ids;
  }

  /** Sets the device of the source root for one_file_system (call once, before listing). */
  setRootDevice(dev: bigint): void {
    this.rootDev = dev;
  }

  /** Absolute path of a path relative to the root (`rel` empty = the root). */
  absPath(rel: Buffer): Buffer {
    return rel.length === 0 ? this.root : Buffer.concat([this.root, SLASH, rel]);
  }

  /**
   * Lists directory `rel` (relative to the root, empty for the root): reads the names,
   * drops excluded ones, lstat's the rest and sorts them by name bytes. Problems with
   * single entries become warnings; an unreadable directory gives `readable: false`.
   */
  async listDir(rel: Buffer): Promise<DirListing> {
    const warnings: WalkWarning[] = [];
    const skipped: DirListing['skipped'] = [];
    if (this.opts.lister) return this.listElsewhere(rel, this.opts.lister, warnings, skipped);
    let dirents: Dirent<Buffer>[];
    try {
      dirents = await readdir(this.absPath(rel), { encoding: 'buffer', withFileTypes: true });
    } catch (err) {
      warnings.push(fsWarning(rel, err, 'cannot read directory'));
      return { entries: [], skipped, warnings, readable: false, key: null };
    }
    const candidates: Buffer[] = [];
    for (const d of dirents) {
      const childRel = joinRel(rel, d.name);
      if (this.ig && this.isExcluded(childRel, d.isDirectory())) {
        skipped.push({ path: childRel, reason: 'excluded' });
        continue;
      }
      candidates.push(d.name);
    }
    candidates.sort(Buffer.compare);
    const entries: (WalkEntry | null)[] = new Array(candidates.length).fill(null);
    let next = 0;
    const worker = async () => {
      while (next < candidates.length) {
        const i = next++;
        entries[i] = await this.statEntry(rel, candidates[i]!, warnings, skipped);
      }
    };
    await Promise.all(Array.from({ length: Math.min(STAT_PARALLELISM, candidates.length) }, worker));
    return { entries: entries.filter((e): e is WalkEntry => e !== null), skipped, warnings, readable: true, key: null };
  }

  /** listDir through `opts.lister`: the same filters and warnings, on entries stat'ed elsewhere. */
  private async listElsewhere(
    rel: Buffer,
    lister: (absPath: Buffer) => Promise<RawListing>,
    warnings: WalkWarning[],
    skipped: DirListing['skipped'],
  ): Promise<DirListing> {
    let listed: RawListing;
    try {
      listed = await lister(this.absPath(rel));
    } catch (err) {
      warnings.push(fsWarning(rel, err, 'cannot read directory'));
      return { entries: [], skipped, warnings, readable: false, key: null };
    }
    const raw = listed.entries;
    const kept: RawDirEntry[] = [];
    for (const r of raw) {
      if (this.ig && this.isExcluded(joinRel(rel, r.name), r.direntIsDir)) {
        skipped.push({ path: joinRel(rel, r.name), reason: 'excluded' });
        continue;
      }
      kept.push(r);
    }
    kept.sort((a, b) => Buffer.compare(a.name, b.name));
    const entries: WalkEntry[] = [];
    for (const r of kept) {
      if (!r.stat) {
        warnings.push(fsWarning(joinRel(rel, r.name), r.error, 'cannot stat'));
        continue;
      }
      // The child's path is only built for a skip (one Buffer per entry less).
      const e = this.classify(rel, r.name, r.stat, skipped);
      if (e) entries.push(e);
    }
    // Filters only ever drop entries, so with nothing dropped or warned about, the same
    // entries give the same listing whatever the job's filters were then and are now.
    const key = skipped.length === 0 && warnings.length === 0 ? listed.digest : null;
    return { entries, skipped, warnings, readable: true, key };
  }

  private async statEntry(
    rel: Buffer,
    name: Buffer,
    warnings: WalkWarning[],
    skipped: DirListing['skipped'],
  ): Promise<WalkEntry | null> {
    const childRel = joinRel(rel, name);
    let st: EntryStat;
    try {
      st = await lstat(this.absPath(childRel), { bigint: true });
    } catch (err) {
      warnings.push(fsWarning(childRel, err, 'cannot stat'));
      return null;
    }
    return this.classify(rel, name, st, skipped);
  }

  /** Applies the size, age, repository and file-system filters to one lstat'ed entry of directory `rel`. */
  private classify(rel: Buffer, name: Buffer, st: EntryStat, skipped: DirListing['skipped']): WalkEntry | null {
    const type = entryType(st);
    if (type === 'file') {
      const max = this.opts.maxFileSize;
      if (max != null && st.size > BigInt(max)) {
        skipped.push({ path: joinRel(rel, name), reason: 'too-large', size: Number(st.size) });
        return null;
      }
      const minAge = this.opts.minFileAgeMs;
      if (minAge != null && minAge > 0) {
        const nowNs = BigInt(this.opts.clock.nowMs()) * 1_000_000n;
        if (nowNs - st.mtimeNs < BigInt(minAge) * 1_000_000n) {
          skipped.push({ path: joinRel(rel, name), reason: 'too-young', size: Number(st.size) });
          return null;
        }
      }
    }
    let descend = type === 'dir';
    if (type === 'dir') {
      if (this.skipDirs.some((s) => s.dev === st.dev && s.ino === st.ino)) {
        skipped.push({ path: joinRel(rel, name), reason: 'repository' });
        return null;
      }
      if (this.opts.oneFileSystem && this.rootDev !== null && st.dev !== this.rootDev) {
        skipped.push({ path: joinRel(rel, name), reason: 'other-filesystem' });
        descend = false;
      }
    }
    return { name, type, stat: st, descend };
  }

  private isExcluded(rel: Buffer, isDir: boolean): boolean {
    // `ignore` works on strings; undecodable bytes become U+FFFD, which still matches
    // wildcards, and a pattern can only be written in UTF-8 anyway.
    const p = rel.toString('utf8') + (isDir ? '/' : '');
    try {
      return this.ig!.ignores(p);
    } catch {
      return false;
    }
  }
}

/** The entry type of an lstat result. */
export function entryType(st: EntryStat): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'chardev';
  return 'blockdev';
}

/** `a/b` + `c` → `a/b/c`; empty parent → `c`. */
export function joinRel(parent: Buffer, name: Buffer): Buffer {
  return parent.length === 0 ? name : Buffer.concat([parent, SLASH, name]);
}

/** A path for messages: UTF-8 where valid, undecodable bytes as `\xNN`. */
export function displayPath(p: Buffer): string {
  try {
    return strictUtf8.decode(p);
  } catch {
    let out = '';
    let i = 0;
    while (i < p.length) {
      const b = p[i]!;
      const len = b < 0x80 ? 1 : b >> 5 === 0b110 ? 2 : b >> 4 === 0b1110 ? 3 : b >> 3 === 0b11110 ? 4 : 0;
      if (len > 0 && i + len <= p.length) {
        try {
          out += strictUtf8.decode(p.subarray(i, i + len));
          i += len;
          continue;
        } catch {
          // fall through: escape this byte
        }
      }
      out += `\\x${b.toString(16).padStart(2, '0')}`;
      i++;
    }
    return out;
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A warning from a file-system error, worded for the owner. */
export function fsWarning(path: Buffer, err: unknown, what: string): WalkWarning {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code === 'ENOENT'
      ? 'vanished during the backup'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'ENOTDIR'
          ? 'was replaced by a file'
          : code === 'EISDIR'
            ? 'was replaced by a directory'
            : err instanceof Error
              ? err.message
              : String(err);
  return { path, message: `${what}: ${reason}`, ...(code ? { code } : {}) };
}

/** One entry of `walk()`: the path relative to the root, and the entry. */
export interface WalkItem {
  readonly path: Buffer;
  readonly entry: WalkEntry;
}

/**
 * Depth-first pre-order walk of a whole tree (deterministic: sorted name bytes). Yields
 * entries and collects warnings/skips into `sink` when given. For tools and tests; the
 * backup run lists directory by directory itself, to build trees bottom-up.
 */
export async function* walk(
  walker: Walker,
  sink?: { warnings: WalkWarning[]; skipped: DirListing['skipped'] },
  rel: Buffer = Buffer.alloc(0),
): AsyncGenerator<WalkItem> {
  if (rel.length === 0) {
    const st = await lstat(walker.root, { bigint: true });
    walker.setRootDevice(st.dev);
  }
  const listing = await walker.listDir(rel);
  sink?.warnings.push(...listing.warnings);
  sink?.skipped.push(...listing.skipped);
  for (const entry of listing.entries) {
    const path = joinRel(rel, entry.name);
    yield { path, entry };
    if (entry.type === 'dir' && entry.descend) yield* walk(walker, sink, path);
  }
}

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rename, rm, stat, symlink, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Snapshot, Tree, TreeEntry } from '../repo/types.js';
import { MAX_WARNINGS_KEPT, type RunWarning } from './run-stats.js';
import { displayPath, joinRel } from './walk.js';

const execFileP = promisify(execFile);

/** What restore needs from the repository (a structural subset of `Repository`). */
export interface RestoreRepository {
  loadTree(id: string): Promise<Tree>;
  /**
   * Streams a file's content: calls `write` with each chunk's plain bytes, in order,
   * awaiting it before decrypting the next (so memory stays bounded by one chunk).
   */
  readFileContent(content: string[], write: (chunk: Buffer) => Promise<void>): Promise<void>;
}

export interface RestoreOptions {
  /** Restore ownership (uid/gid); default: only when running as root. */
  readonly restoreOwnership?: boolean;
  /** Files restored at once (default 8). */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
  /** Called after each file with the running totals (throttle on the caller's side). */
  readonly onProgress?: (p: RestoreStats) => void;
}

/** Totals of one restore. Warnings are entries that could not be recreated (the rest is restored). */
export interface RestoreStats {
  files: number;
  dirs: number;
  symlinks: number;
  hardLinks: number;
  specials: number;
  bytes: number;
  /** Entries deliberately not recreated (sockets, devices when not root). */
  skipped: number;
  warningCount: number;
  warnings: RunWarning[];
}

/** Thrown for a path that names nothing in the snapshot, or a tree that is not safe to restore. */
export class RestorePathError extends Error {
  override readonly name = 'RestorePathError';
}

/** A resolved path in a snapshot: the root (a tree) or one entry. */
export type ResolvedPath = { kind: 'root'; tree: string } | { kind: 'entry'; entry: TreeEntry; path: Buffer };

/**
 * Finds `path` (slash-separated, leading slash optional; '' or '/' = root) in a snapshot.
 * Throws RestorePathError when a component is missing or not a directory.
 */
export async function resolveSnapshotPath(
  repo: Pick<RestoreRepository, 'loadTree'>,
  rootTree: string,
  path: string | Buffer,
): Promise<ResolvedPath> {
  const buf = typeof path === 'string' ? Buffer.from(path) : path;
  const parts = splitPath(buf);
  if (parts.length === 0) return { kind: 'root', tree: rootTree };
  let tree = rootTree;
  let entry: TreeEntry | undefined;
  for (let i = 0; i < parts.length; i++) {
    const t = await repo.loadTree(tree);
    entry = t.entries.find((e) => e.name.equals(parts[i]!));
    const sofar = Buffer.concat(parts.slice(0, i + 1).flatMap((p, j) => (j === 0 ? [p] : [Buffer.from('/'), p])));
    if (!entry) throw new RestorePathError(`${displayPath(sofar)}: no such file or directory in the snapshot`);
    if (i < parts.length - 1) {
      if (entry.type !== 'dir' || !entry.subtree) throw new RestorePathError(`${displayPath(sofar)}: not a directory`);
      tree = entry.subtree;
    }
  }
  return { kind: 'entry', entry: entry!, path: Buffer.concat(parts.flatMap((p, j) => (j === 0 ? [p] : [Buffer.from('/'), p]))) };
}

function splitPath(p: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= p.length; i++) {
    if (i === p.length || p[i] === 0x2f) {
      if (i > start) {
        const part = p.subarray(start, i);
        if (!(part.length === 1 && part[0] === 0x2e)) out.push(part);
      }
      start = i + 1;
    }
  }
  return out;
}

/**
 * True for a name that is safe to create inside a directory: not empty, not `.` or
 * `..`, no slash, no NUL. Names come from trees, which a damaged or hostile repository
 * could fill with anything.
 */
export function isSafeName(name: Buffer): boolean {
  if (name.length === 0) return false;
  if (name.includes(0x2f) || name.includes(0)) return false;
  if (name.length === 1 && name[0] === 0x2e) return false;
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return false;
  return true;
}

/**
 * Restores a snapshot, or one path of it, into `dest` (created when missing). The whole
 * snapshot (or a directory path) puts that directory's contents directly into `dest`;
 * a file, symlink or special file path is created as `dest/<its name>`. Recreates
 * content (streamed; all-zero chunks become holes, so sparse files stay sparse), modes,
 * mtimes (directories after their contents), symlinks (never followed), hard links
 * within the restored set, empty directories and FIFOs; ownership only as root.
 * Existing entries in `dest` with the same names are replaced; nothing outside `dest` is
 * ever written (unsafe names are skipped with a warning, and an existing symlink in the
 * way is replaced, never followed). Entries that cannot be recreated are warnings.
 */
export async function restoreSnapshot(
  repo: RestoreRepository,
  snapshot: Pick<Snapshot, 'tree'>,
  subPath: string | Buffer | null,
  dest: string,
  opts: RestoreOptions = {},
): Promise<RestoreStats> {
  const r = new Restorer(repo, dest, opts);
  // Fresh: made now and not setgid (inherited from a setgid parent, new files would get
  // that directory's group rather than ours).
  const created = (await mkdir(dest, { recursive: true })) !== undefined && ((await stat(dest)).mode & 0o2000) === 0;
  const target = await resolveSnapshotPath(repo, snapshot.tree, subPath ?? '');
  if (target.kind === 'root') {
    await r.restoreDirContents(target.tree, Buffer.from(dest), Buffer.alloc(0), created);
  } else if (target.entry.type === 'dir') {
    if (!target.entry.subtree) throw new RestorePathError(`${displayPath(target.path)}: directory without a listing`);
    await r.restoreDirContents(target.entry.subtree, Buffer.from(dest), target.path, created);
    await r.applyMeta(Buffer.from(dest), target.entry, target.path, true);
  } else {
    const pending: Promise<void>[] = [];
    await r.restoreEntry(target.entry, Buffer.concat([Buffer.from(dest), SLASH, target.entry.name]), target.path, pending, created);
    await Promise.all(pending);
  }
  await r.finish();
  return r.stats;
}

const SLASH = Buffer.from('/');

class Restorer {
  readonly stats: RestoreStats = {
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardLinks: 0,
    specials: 0,
    bytes: 0,
    skipped: 0,
    warningCount: 0,
    warnings: [],
  };
  private readonly ownership: boolean;
  private readonly isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  private readonly euid = process.geteuid?.() ?? -1;
  private readonly egid = process.getegid?.() ?? -1;
  /** Read once: files are created with their final mode when it leaves that mode alone. */
  private readonly umask = process.umask();
  private readonly hardLinks = new Map<string, Promise<Buffer | null>>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly max: number;
  private zeros = Buffer.alloc(0);
  private fatal: unknown = null;

  constructor(
    private readonly repo: RestoreRepository,
    private readonly destRoot: string,
    private readonly opts: RestoreOptions,
  ) {
    this.ownership = opts.restoreOwnership ?? this.isRoot;
    this.max = Math.max(1, opts.concurrency ?? 8);
  }

  async finish(): Promise<void> {
    if (this.fatal) throw this.fatal;
  }

  private warn(path: Buffer, message: string): void {
    this.stats.warningCount++;
    if (this.stats.warnings.length < MAX_WARNINGS_KEPT) this.stats.warnings.push({ path: displayPath(path), message });
  }

  private checkAbort(): void {
    if (this.opts.signal?.aborted) throw this.opts.signal.reason instanceof Error ? this.opts.signal.reason : new Error('restore cancelled');
    if (this.fatal) throw this.fatal;
  }

  private async acquire(): Promise<void> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  /** Restores every entry of tree `treeId` into the existing directory `dir` (`fresh`: made by this restore). */
  async restoreDirContents(treeId: string, dir: Buffer, rel: Buffer, fresh: boolean): Promise<void> {
    this.checkAbort();
    const tree = await this.repo.loadTree(treeId);
    const seen = new Set<string>();
    const pending: Promise<void>[] = [];
    for (const e of tree.entries) {
      const childRel = joinRel(rel, e.name);
      const key = e.name.toString('latin1');
      if (!isSafeName(e.name) || seen.has(key)) {
        this.warn(childRel, 'unsafe or duplicate name in the snapshot; not restored');
        continue;
      }
      seen.add(key);
      await this.restoreEntry(e, Buffer.concat([dir, SLASH, e.name]), childRel, pending, fresh);
    }
    await Promise.all(pending);
    if (this.fatal) throw this.fatal;
  }

  /**
   * Restores one entry at `path`. Directories are restored depth-first (their metadata
   * after their contents); files go to the background (pushed on `pending`).
   */
  async restoreEntry(e: TreeEntry, path: Buffer, rel: Buffer, pending: Promise<void>[], inFreshDir: boolean): Promise<void> {
    this.checkAbort();
    try {
      switch (e.type) {
        case 'dir': {
          const made = await this.makeDir(path);
          if (e.subtree) await this.restoreDirContents(e.subtree, path, rel, made);
          await this.applyMeta(path, e, rel, true);
          this.stats.dirs++;
          return;
        }
        case 'file': {
          const key = e.nlink > 1 ? `${e.dev}:${e.inode}` : null;
          const first = key ? this.hardLinks.get(key) : undefined;
          if (first) {
            const firstPath = await first;
            if (firstPath) {
              await this.clear(path);
              await link(firstPath, path);
              this.stats.hardLinks++;
              return;
            }
          }
          let done: ((p: Buffer | null) => void) | null = null;
          if (key && !first) this.hardLinks.set(key, new Promise((r) => (done = r)));
          await this.acquire();
          const task = (async () => {
            let ok = false;
            try {
              await this.restoreFile(e, path, inFreshDir);
              ok = true;
            } catch (err) {
              if (isFsError(err)) this.warn(rel, `cannot restore file: ${(err as Error).message}`);
              else this.fatal ??= err;
            } finally {
              (done as ((p: Buffer | null) => void) | null)?.(ok ? path : null);
              this.release();
            }
          })();
          pending.push(task);
          return;
        }
        case 'symlink': {
          await this.clear(path);
          await symlink(e.linkTarget ?? Buffer.alloc(0), path);
          if (this.ownership) await lchown(path, e.uid, e.gid).catch(() => {});
          await lutimes(path, nsToSec(e.atimeNs ?? e.mtimeNs), nsToSec(e.mtimeNs));
          this.stats.symlinks++;
          return;
        }
        case 'fifo':
        case 'chardev':
        case 'blockdev': {
          if (e.type !== 'fifo' && !this.isRoot) {
            this.stats.skipped++;
            this.warn(rel, `${e.type === 'chardev' ? 'character' : 'block'} device not restored: only root can create devices`);
            return;
          }
          await this.clear(path);
          try {
            await this.makeSpecial(e, path);
          } catch (err) {
            this.warn(rel, `cannot create ${e.type}: ${(err as Error).message.split('\n')[0]}`);
            return;
          }
          await this.applyMeta(path, e, rel, false);
          this.stats.specials++;
          return;
        }
        case 'socket':
          // A socket is recreated by the program that listens on it.
          this.stats.skipped++;
          return;
      }
    } catch (err) {
      if (!isFsError(err)) throw err;
      this.warn(rel, `cannot restore: ${(err as Error).message}`);
    }
  }

  /** `inFreshDir`: the parent was made by this restore (so a new file gets our uid and gid, never a setgid directory's group). */
  private async restoreFile(e: TreeEntry, path: Buffer, inFreshDir: boolean): Promise<void> {
    // A plain mode the umask leaves alone is given at create (no chmod); one with setuid,
    // setgid or sticky bits only once the content is in place.
    const mode = e.mode & 0o7777;
    const modeAtCreate = (mode & 0o7000) === 0 && (mode & this.umask) === 0;
    const createMode = modeAtCreate ? mode : 0o600;
    // 'wx': O_CREAT|O_EXCL never follows a symlink planted in the way; what is in the way
    // is removed and the create tried once more (a fresh destination costs no lstat).
    let fh;
    try {
      fh = await open(path, 'wx', createMode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      await this.clear(path);
      fh = await open(path, 'wx', createMode);
    }
    try {
      let pos = 0;
      let end = 0;
      const write = async (chunk: Buffer, times: number) => {
        this.checkAbort();
        if (this.isZero(chunk)) pos += chunk.length * times;
        else {
          for (let t = 0; t < times; t++) {
            let off = 0;
            while (off < chunk.length) {
              const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, pos + off);
              off += bytesWritten;
            }
            pos += chunk.length;
          }
          end = pos;
        }
        this.stats.bytes += chunk.length * times;
      };
      // Runs of one blob (zeros of a sparse file or a disk image, repeated records) are
      // read and decrypted once per run.
      const content = e.content ?? [];
      let i = 0;
      while (i < content.length) {
        let j = i;
        while (j < content.length && content[j] === content[i]) j++;
        if (j - i > 1) {
          const times = j - i;
          await this.repo.readFileContent([content[i]!], (chunk) => write(chunk, times));
        } else {
          // Let the repository read ahead across a stretch of distinct blobs.
          while (j < content.length && (j + 1 >= content.length || content[j + 1] !== content[j])) j++;
          await this.repo.readFileContent(content.slice(i, j), (chunk) => write(chunk, 1));
        }
        i = j;
      }
      // Trailing zeros were skipped (holes): extend to the full size.
      if (pos > end) await fh.truncate(pos);
      const ownedAlready = inFreshDir && e.uid === this.euid && e.gid === this.egid;
      if (this.ownership && !ownedAlready) await fh.chown(e.uid, e.gid).catch(() => {});
      if (!modeAtCreate) await fh.chmod(mode);
      await fh.utimes(nsToSec(e.atimeNs ?? e.mtimeNs), nsToSec(e.mtimeNs));
    } finally {
      await fh.close();
    }
    this.stats.files++;
    this.opts.onProgress?.(this.stats);
  }

  private isZero(chunk: Buffer): boolean {
    if (chunk.length === 0 || chunk[0] !== 0 || chunk[chunk.length - 1] !== 0) return false;
    if (this.zeros.length < chunk.length) this.zeros = Buffer.alloc(chunk.length);
    return chunk.equals(this.zeros.subarray(0, chunk.length));
  }

  /** Creates directory `path`, replacing a non-directory (a symlink is removed, never followed); false when a directory was there already. */
  private async makeDir(path: Buffer): Promise<boolean> {
    try {
      await mkdir(path, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = await lstat(path);
      if (st.isDirectory()) return false;
      await unlink(path);
      await mkdir(path, { mode: 0o700 });
    }
    return true;
  }

  /** Removes whatever is at `path` so a new entry can be made there (directories too). */
  private async clear(path: Buffer): Promise<void> {
    try {
      const st = await lstat(path);
      if (st.isDirectory()) await rm(path, { recursive: true, force: true });
      else await unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /**
   * mkfifo/mknod through the coreutils commands (Node has no binding). Their arguments
   * must be strings, so the node is made under a temporary ASCII name in the
   * destination's root and renamed into place (exact bytes).
   */
  private async makeSpecial(e: TreeEntry, path: Buffer): Promise<void> {
    const tmp = join(this.destRoot, `.nightjar-restore-${randomBytes(6).toString('hex')}`);
    const mode = (e.mode & 0o7777).toString(8);
    if (e.type === 'fifo') await execFileP('mkfifo', ['-m', mode, tmp]);
    else {
      const rdev = BigInt(e.rdev ?? 0);
      const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
      const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
      await execFileP('mknod', ['-m', mode, tmp, e.type === 'chardev' ? 'c' : 'b', String(major), String(minor)]);
    }
    try {
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  /** Ownership, mode and times of a directory or special file (after its contents). */
  async applyMeta(path: Buffer, e: TreeEntry, rel: Buffer, isDir: boolean): Promise<void> {
    try {
      if (this.ownership) await lchown(path, e.uid, e.gid).catch(() => {});
      await chmod(path, e.mode & 0o7777);
      await utimes(path, nsToSec(e.atimeNs ?? e.mtimeNs), nsToSec(e.mtimeNs));
    } catch (err) {
      if (!isFsError(err)) throw err;
      this.warn(rel, `cannot set ${isDir ? 'directory' : 'entry'} metadata: ${(err as Error).message}`);
    }
  }
}

/** Nanoseconds → seconds as a double, keeping the sub-second part as exact as a double allows. */
export function nsToSec(ns: bigint): number {
  const sec = ns / 1_000_000_000n;
  const rest = ns % 1_000_000_000n;
  return Number(sec) + Number(rest) / 1e9;
}

function isFsError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

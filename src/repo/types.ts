/**
 * Public data types of the repository format (see docs/FORMAT.md). The engine
 * (`src/jobs`) builds Trees from these and hands them to Repository.saveTree.
 */

/** Kind of a directory entry. Special files are recorded, never read. */
export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';

/**
 * One entry of a directory listing. `name` and `linkTarget` are exact bytes (names
 * need not be UTF-8); times are nanoseconds since the epoch as bigints; `inode`/`dev`
 * are bigints (from `fs.lstat(p, { bigint: true })`). Serialization keeps every field
 * exact (see FORMAT.md, "Trees").
 */
export interface TreeEntry {
  /** Exact bytes of the name (no slash, not "." or ".."). */
  name: Buffer;
  type: EntryType;
  /** Full st_mode bits (type bits included or not; restore uses `mode & 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  atimeNs?: bigint;
  ctimeNs: bigint;
  /** Bytes of content for files; 0 for others (or st_size, informative). */
  size: number;
  inode: bigint;
  dev: bigint;
  nlink: number;
  /** Device number for chardev/blockdev. */
  rdev?: number;
  /** Blob ids of the content, in order (files only). */
  content?: string[];
  /** Tree id of the directory's listing (dirs only). */
  subtree?: string;
  /** Exact bytes of the link target (symlinks only). */
  linkTarget?: Buffer;
}

/** A directory listing; entries are sorted by name bytes when saved (saveTree sorts). */
export interface Tree {
  entries: TreeEntry[];
}

/** Blob kinds stored in packs. */
export type BlobType = 'data' | 'tree';

/** What the engine gives to Repository.saveSnapshot. */
export interface SnapshotInput {
  /** Tree id of the snapshot root (the source directory's own listing). */
  tree: string;
  host: string;
  job: string;
  /** Target name (the `alias:name` of the job's target), informative. */
  target: string;
  /** Absolute source path that was backed up. */
  source: string;
  tags?: string[];
  /** Snapshot id of the previous snapshot of this job, if any. */
  parent?: string;
  /** Statistics of the run; opaque to the repository, stored as given (JSON). */
  stats?: unknown;
  /** Snapshot time; defaults to the repository clock's now(). */
  time?: Date;
}

/** A stored snapshot (`snapshots/<id>`). */
export interface Snapshot {
  /** Object id (hex, 64 chars). */
  id: string;
  /** ISO 8601 time. */
  time: string;
  host: string;
  job: string;
  target: string;
  source: string;
  tags: string[];
  parent?: string;
  tree: string;
  stats?: unknown;
  nightjarVersion: string;
}

/** Result of Repository.saveFile. */
export interface SaveFileResult {
  /** Blob ids of the file's chunks, in order. */
  content: string[];
  /** Bytes of content stored (= bytes read). */
  size: number;
  bytesRead: number;
  /** Raw bytes of blobs not already in the repository (nor saved earlier in this session). */
  bytesNew: number;
  /** Bytes added to packs for this file (after compression and encryption). */
  bytesWritten: number;
  /**
   * True when the file read differs in size, mtime or ctime from `expect` (from the fstat
   * at open when no `expect` was given), or its length from that size.
   */
  changedWhileRead?: boolean;
  /**
   * lstat of the path taken right after the file was closed (null: the path vanished
   * then); absent when the implementation does not provide it (callers lstat themselves).
   */
  statAfter?: FileStatAfter | null;
}

/** What identifies a file's content version to a backup (the file cache keys on it). */
export type FileIdentity = Pick<EntryStat, 'size' | 'mtimeNs' | 'ctimeNs' | 'ino' | 'dev'>;

/**
 * The lstat fields a backup uses (fs.BigIntStats has them all; a worker's listing gives
 * a lighter object, see Repository.listDir).
 */
export interface EntryStat {
  dev: bigint;
  ino: bigint;
  mode: bigint;
  nlink: bigint;
  uid: bigint;
  gid: bigint;
  rdev: bigint;
  size: bigint;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}

/** One entry of a directory as Repository.listDir reads it: its lstat, or the error of the lstat. */
export interface RawDirEntry {
  name: Buffer;
  /** The directory entry's own type said "directory" (known even when the lstat failed). */
  direntIsDir: boolean;
  stat: EntryStat | null;
  error: NodeJS.ErrnoException | null;
}

/** A directory as Repository.listDir reads it. */
export interface RawListing {
  /** In the order the directory gave them. */
  entries: RawDirEntry[];
  /**
   * SHA-256 of the names and lstat results (all but atime) in that order, when every
   * lstat succeeded (else null): equal digests, same entries with the same metadata.
   */
  digest: Buffer | null;
}

/** The fields of an lstat result that tell whether a file is still the one that was read. */
export interface FileStatAfter {
  isFile: boolean;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
  dev: bigint;
}

/** Options of Repository.saveFile. */
export interface SaveFileOptions {
  signal?: AbortSignal;
  /** Awaited before each chunk is handed over; the scheduler pauses there. Nothing to await: open. */
  gate?: () => Promise<void> | undefined;
  /** Called with the raw bytes of each chunk as it is stored. */
  onChunk?: (rawBytes: number) => void;
  /**
   * The walk's lstat of the file: the worker reads against it instead of an fstat at open,
   * and the pool batches small files and balances threads by its size.
   */
  expect?: FileIdentity;
}

/** One problem found by check. */
export interface CheckProblem {
  /** Object name in the store (`data/..`, `index/..`, `snapshots/..`) or a blob id. */
  object: string;
  /** Kind of damage. */
  kind:
    | 'unreadable'
    | 'decrypt-failed'
    | 'hash-mismatch'
    | 'missing-blob'
    | 'missing-pack'
    | 'bad-tree'
    | 'bad-snapshot'
    | 'bad-index'
    | 'size-mismatch';
  message: string;
  /** Snapshot paths that depend on the damaged object: `<snapshotId>:/path/in/snapshot`. */
  affected: string[];
}

/** Result of Repository.check. */
export interface CheckReport {
  ok: boolean;
  problems: CheckProblem[];
  /** Packs present in the store but in no index (harmless: leftovers of an interrupted run). */
  unreferencedPacks: string[];
  snapshots: number;
  trees: number;
  blobs: number;
  packs: number;
  /** Bytes of pack data read and verified (readData only). */
  bytesVerified: number;
}

/** A held lock; call release() when done. */
export interface RepoLock {
  readonly id: string;
  readonly exclusive: boolean;
  /** Removes the lock object and stops refreshing. Idempotent. */
  release(): Promise<void>;
}

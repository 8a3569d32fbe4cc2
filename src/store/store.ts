/**
 * The storage interface every target implements (local directory, memory, peer node,
 * S3). A store is a dumb write-once object store: it knows nothing of the repository
 * format. Decorators (retry, throttle, limit) wrap a Store and present a Store.
 *
 * Errors: every failure is a StoreError with a stable `code` and a `permanent` flag, so
 * a retry decorator never guesses: permanent errors (not found, exists, invalid name,
 * bad range) are never retried; transient ones (I/O, network) may be.
 */

/** Name and size in bytes of a stored object. */
export interface ObjectInfo {
  name: string;
  size: number;
}

/** A byte range of an object. */
export interface ByteRange {
  offset: number;
  length: number;
}

/**
 * A write-once object store. Object names are slash-separated relative paths like
 * `data/ab/abcdef…`, `index/…`, `snapshots/…`, `keys/…`, `locks/…`, `config` (see
 * `validateObjectName`). All methods may be called concurrently.
 */
export interface Store {
  /** Where the store is, for messages (never contains secrets). */
  readonly location: string;
  /**
   * Every object whose name starts with `prefix` (`''` = all), in no particular order.
   * Objects written or deleted during the listing may or may not appear.
   */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Size of an object, or null when it does not exist. */
  stat(name: string): Promise<ObjectInfo | null>;
  /**
   * The object's bytes, or `range` of them. Throws NotFoundError when it does not exist
   * and InvalidRangeError when the range is not inside the object.
   */
  read(name: string, range?: ByteRange): Promise<Buffer>;
  /**
   * Stores a new object. Write-once: throws ObjectExistsError when the name exists
   * (when several writers race for one name, exactly one succeeds). Atomic: readers
   * see the whole object or nothing, and once write resolves the object is durable.
   */
  write(name: string, data: Buffer, opts?: WriteOptions): Promise<void>;
  /**
   * Optional fast path for large objects prepared on disk (data packs), on stores whose
   * objects are files (local directories): the writer prepares a file in `spool.dir` (on
   * the store's own filesystem) and `spool.adopt` publishes it as object `name` without
   * copying its bytes, with write's guarantees (write-once, atomic, durable once it
   * resolves). Without it, the writer reads the file back and calls write.
   */
  readonly spool?: FileSpool;
  /** Removes an object. Idempotent: deleting a missing object is not an error. */
  delete(name: string): Promise<void>;
  /** Releases resources; the store must not be used afterwards. */
  close(): Promise<void>;
}

/** See Store.spool. */
export interface FileSpool {
  /** Directory for prepared files; their names must start with SPOOL_PREFIX (listings skip them, cleanups remove them). */
  readonly dir: string;
  /**
   * Publishes the complete file at `file` (inside `dir`) as object `name`; on success the
   * file is gone. Throws ObjectExistsError when `name` exists (the file stays; the caller
   * removes it). `opts.pace` paces the accounting as for write.
   */
  adopt(name: string, file: string, opts?: WriteOptions): Promise<void>;
  /** Removes prepared files last modified before `olderThan` (left by a killed writer); returns how many. */
  cleanup(olderThan: Date): Promise<number>;
}

/** Name prefix of files prepared in a FileSpool's directory (a leading '.' keeps them out of listings). */
export const SPOOL_PREFIX = '.nj-tmp-';

/**
 * Paces the bytes of a write as they go out (the throttle, see throttled-store.ts). A
 * store that supports pacing cuts the body into slices of at most `sliceBytes()` and
 * awaits `take(n)` before each slice of n bytes leaves (again for every retried
 * attempt); a store that ignores it is paced after the fact by the throttle decorator.
 */
export interface WritePacer {
  /** The largest slice to send at once, now (small enough to keep the rate smooth). */
  sliceBytes(): number;
  /** Resolves when `bytes` more may be sent; counts them as sent. Rejects when the write should stop. */
  take(bytes: number): Promise<void>;
}

/** Takes `bytes` from `pace` slice by slice (bytes that went out without being paced, or a file adopted whole). */
export async function payFor(pace: WritePacer, bytes: number): Promise<void> {
  for (let left = bytes; left > 0; ) {
    const n = Math.max(1, Math.min(pace.sliceBytes(), left));
    await pace.take(n);
    left -= n;
  }
}

/** Options of Store.write. */
export interface WriteOptions {
  /** Upload pacing; see WritePacer. */
  readonly pace?: WritePacer;
}

/** Base class of every store failure. */
export class StoreError extends Error {
  /** Stable machine-readable code (`NJ_STORE_…`). */
  readonly code: string;
  /** True when retrying the same call cannot succeed. */
  readonly permanent: boolean;
  constructor(message: string, opts: { code?: string; permanent?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'StoreError';
    this.code = opts.code ?? 'NJ_STORE_IO';
    this.permanent = opts.permanent ?? false;
  }
}

/** The object does not exist. Permanent. */
export class NotFoundError extends StoreError {
  readonly objectName: string;
  constructor(location: string, name: string) {
    super(`object ${name} not found in ${location}`, { code: 'NJ_STORE_NOT_FOUND', permanent: true });
    this.name = 'NotFoundError';
    this.objectName = name;
  }
}

/** A write to a name that already exists (objects are write-once). Permanent. */
export class ObjectExistsError extends StoreError {
  readonly objectName: string;
  constructor(location: string, name: string) {
    super(`object ${name} already exists in ${location} (objects are write-once)`, {
      code: 'NJ_STORE_EXISTS',
      permanent: true,
    });
    this.name = 'ObjectExistsError';
    this.objectName = name;
  }
}

/** The object name is not allowed. Permanent. */
export class InvalidNameError extends StoreError {
  constructor(name: string, why: string) {
    super(`invalid object name ${JSON.stringify(name)}: ${why}`, { code: 'NJ_STORE_INVALID_NAME', permanent: true });
    this.name = 'InvalidNameError';
  }
}

/** A read range outside the object. Permanent. */
export class InvalidRangeError extends StoreError {
  constructor(location: string, name: string, range: ByteRange, size: number) {
    super(
      `range ${range.offset}+${range.length} is outside object ${name} (${size} bytes) in ${location}`,
      { code: 'NJ_STORE_RANGE', permanent: true },
    );
    this.name = 'InvalidRangeError';
  }
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/**
 * Throws InvalidNameError unless `name` is a relative path of non-empty segments made
 * of `[A-Za-z0-9._-]`, each not starting with a dot (so `..`, `.`, hidden temp files,
 * a leading `/`, NUL and backslashes are all refused), at most 1024 bytes long.
 */
export function validateObjectName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidNameError(String(name), 'empty');
  if (name.length > 1024) throw new InvalidNameError(name.slice(0, 40) + '…', 'longer than 1024 characters');
  if (name.includes('\0')) throw new InvalidNameError(name, 'contains NUL');
  if (name.startsWith('/')) throw new InvalidNameError(name, 'starts with "/"');
  for (const seg of name.split('/')) {
    if (seg === '') throw new InvalidNameError(name, 'empty path segment');
    if (seg === '.' || seg === '..') throw new InvalidNameError(name, `segment "${seg}" is not allowed`);
    if (!SEGMENT.test(seg)) throw new InvalidNameError(name, 'segments must match [A-Za-z0-9_][A-Za-z0-9._-]*');
  }
}

/** Throws InvalidNameError unless `prefix` is '' or a valid name prefix (may end in '/'). */
export function validatePrefix(prefix: string): void {
  if (prefix === '') return;
  const trimmed = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (trimmed === '') throw new InvalidNameError(prefix, 'prefix "/" is not allowed');
  // A partial last segment like "data/a" is fine; it must still be made of allowed characters.
  validateObjectName(trimmed);
}

/** Checks a read range against an object size; throws InvalidRangeError. */
export function checkRange(location: string, name: string, range: ByteRange, size: number): void {
  if (
    !Number.isSafeInteger(range.offset) ||
    !Number.isSafeInteger(range.length) ||
    range.offset < 0 ||
    range.length < 0 ||
    range.offset + range.length > size
  ) {
    throw new InvalidRangeError(location, name, range, size);
  }
}

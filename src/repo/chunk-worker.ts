/**
 * Worker thread of the WorkerPool: reads files itself (synchronous calls: this thread
 * does nothing else, and each libuv round trip it saves is worth more than the parallel
 * I/O it gives up), chunks, hashes, and — for chunks the main thread says are new —
 * compresses and encrypts them. Messages are batched both ways, so a small file costs a
 * share of one message, not a round trip per file and per chunk:
 *
 *   main → worker: {t:'files', ids, lens, paths, expect}  read these, in order (job ids; paths back to back;
 *                                                         expect: 5 per file, the walk's size, mtimeNs,
 *                                                         ctimeNs, ino, dev, or size -1 when unknown)
 *                  {t:'need', a: Float64Array}           triples job, seq, need (1/0)
 *                  {t:'free', a: Float64Array}           ring offsets of sealed blobs the main thread is done with
 *                  {t:'hash', id, path}                  SHA-256 of a file (a data pack) → {t:'hashed', id, hex} or {t:'hashed', id, error}
 *                  {t:'cancel', job}
 *                  {t:'list', ids, lens, paths}           list these directories (readdir + lstat of each entry)
 *   worker → main: {t:'listed', results}                 per directory {id, names, lens, dirs, stats, errs, digest} or {id, error}
 *                  (see listDir below; first in walk order first, between two slices of reading)
 *                  {t:'out', items: Item[]}
 *     ['c', job, seq, id, raw]                    a chunk was cut and hashed
 *     ['b', job, seq, offset, length, raw, compressed]  a wanted chunk is sealed: ring[offset, +length), until freed
 *     ['d', job, bytesRead, changed, after]       the file was read to its end (blobs may follow); changed:
 *                                                 what was read differs from `expect` (or the fstat at open)
 *     ['e', job, code, message, errno, syscall]   the file failed (nothing more follows for it)
 *
 * `after` is the lstat of the path once the file is read (FileStatAfter), or null when the
 * path is gone.
 *
 * A file whose walk lstat came along costs open, read, lstat and close: the lstat after the
 * read says whether the file changed since the walk when the path still names the inode
 * read (one fstat more when it does not). Without it, an fstat at open gives the size and
 * times. Opened without following a symlink and without blocking on a FIFO, since the path
 * may have been replaced since the walk; a file read past its expected size is fstat'ed
 * (a device there would never end), as is one whose read failed.
 *
 * Each chunk is read straight into a block of the thread's ByteRing (memory shared with
 * the main thread), which grows until the cut is found and then keeps room for the sealed
 * form: the chunk's bytes lie where a sealed blob's body goes (after NONCE_LEN bytes), so
 * a chunk that does not compress is encrypted where it lies, not moved first. A wanted
 * chunk is compressed and sealed in place and the main thread copies it into a pack from
 * there, then frees the block. So the thread's memory is the ring,
 * whatever the file sizes, and nothing is copied but the blob into its pack.
 * Backpressure: reading stops while the ring holds PENDING_BYTES (chunks awaiting an
 * answer, sealed blobs awaiting the main thread, which stops answering while its gate is
 * closed or its packs are uploading).
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, opendirSync, openSync, readdirSync, readSync, statSync, type BigIntStats } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { Chunker, primeChunker, type ChunkerParams } from './chunker.js';
import { maybeCompressSync, type ContentCompression } from './compress.js';
import { ByteRing, type RingBlock } from './byte-ring.js';
import { blobId, NONCE_LEN, SEAL_OVERHEAD, sealInto } from './crypto.js';
import { GarbageMeter } from './young-gc.js';

interface Init {
  encKey: Uint8Array;
  idKey: Uint8Array;
  gear: Int32Array;
  params: ChunkerParams;
  pendingBytes: number;
  /** The ring's memory: PENDING_BYTES plus room for one largest sealed chunk. */
  ring: SharedArrayBuffer;
  compression: ContentCompression;
}

const init = workerData as Init;
const encKey = Buffer.from(init.encKey);
const idKey = Buffer.from(init.idKey);
const chunker = new Chunker(init.gear, init.params);
primeChunker(init.gear);
const PENDING_BYTES = init.pendingBytes;
/**
 * Bytes read at once. A chunk is read into its ring block piece by piece until its cut is
 * found; the bytes read past the cut are read again for the next chunk (from the page
 * cache: ~1/8 more bytes at this size), which costs less than keeping a read buffer of a
 * largest chunk plus a piece (5 MiB per thread) and copying each chunk out of it.
 */
const READ_PIECE = 256 * 1024;
/** Work done between two looks at the message queue (answers free memory, cancels stop work). */
const SLICE_BYTES = 2 * 1024 * 1024;
const SLICE_FILES = 64;
/** How much nicer than the process a chunk thread runs (see lowerThreadPriority). */
const NICE_DELTA = 10;
lowerThreadPriority();
const port = parentPort!;

/** Compression and encryption make a new buffer per chunk, dropped a moment later. */
const garbage = new GarbageMeter(2 * 1024 * 1024);

interface JobState {
  cancelled: boolean;
  /** Queued or being read (false once its 'd' or 'e' is out). */
  reading: boolean;
  /** Chunks awaiting their answer, by seq. */
  pending: Map<number, RingBlock>;
}

interface Current {
  job: number;
  st: JobState;
  path: Buffer;
  fd: number;
  /** The file as expected (the walk's lstat, or the fstat at open). */
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
  dev: bigint;
  /** An fstat said it is a regular file. */
  regular: boolean;
  /** File offset of the chunk being cut. */
  pos: number;
  /** Its ring block, holding its bytes read so far at [NONCE_LEN, NONCE_LEN + filled); null before the first read. */
  block: RingBlock | null;
  filled: number;
  /** Of those, the bytes the chunker looked at without finding the cut. */
  seen: number;
  /** The file's length once a read found its end, else null. */
  end: number | null;
  seq: number;
}

const jobs = new Map<number, JobState>();
/** Files to read; `expect` holds 5 values per file from `at` (see the header). */
const queue: { job: number; path: Buffer; expect: BigInt64Array; at: number }[] = [];
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
let current: Current | null = null;
const ring = new ByteRing(init.ring.byteLength, init.ring);
/** Sealed blobs the main thread has not freed yet, by ring offset. */
const sealed = new Map<number, RingBlock>();
/** The ring had no room for the next chunk: reading waits for answers. */
let ringFull = false;
let scheduled = false;

/**
 * Runs this thread NICE_DELTA steps nicer than the process. The main thread answers the
 * chunk threads (is a chunk new?), hands them files and frees their rings; with two chunk
 * threads busy on two cores it often waited for a core, and they for it: each sat idle
 * ~1 s of a 3 s small first backup, half of that with no files handed over. Nicer, they
 * yield the core whenever the main thread has work (idle ~0.5 s each; −3% wall in
 * interleaved runs), and a backup's heaviest threads yield to the owner's other programs
 * too. Linux only: there a thread has its own nice value (setpriority on thread 0 is the
 * calling thread); elsewhere it would renice the whole process.
 */
function lowerThreadPriority(): void {
  if (process.platform !== 'linux') return;
  try {
    setPriority(Math.min(19, getPriority() + NICE_DELTA));
  } catch {
    // not allowed here (a sandbox): the thread keeps the process's priority
  }
}

// ---------------------------------------------------------------- outbox

type Item = (string | number | boolean | null | bigint[])[];
let items: Item[] = [];
function flush(): void {
  if (items.length === 0) return;
  port.postMessage({ t: 'out', items });
  items = [];
}

function postError(job: number, err: unknown): void {
  const e = err as NodeJS.ErrnoException;
  items.push(['e', job, e?.code ?? null, e?.message ?? String(err), e?.errno ?? null, e?.syscall ?? null]);
}

// ---------------------------------------------------------------- messages

interface InMessage {
  t: string;
  job?: number;
  id?: number;
  path?: Uint8Array | string;
  ids?: Float64Array;
  lens?: Uint32Array;
  paths?: Uint8Array;
  expect?: BigInt64Array;
  a?: Float64Array;
}

port.on('message', (m: InMessage) => {
  if (m.t === 'files') {
    const all = Buffer.from(m.paths!.buffer, m.paths!.byteOffset, m.paths!.byteLength);
    let pos = 0;
    for (let i = 0; i < m.ids!.length; i++) {
      const job = m.ids![i]!;
      jobs.set(job, { cancelled: false, reading: true, pending: new Map() });
      queue.push({ job, path: all.subarray(pos, (pos += m.lens![i]!)), expect: m.expect!, at: i * 5 });
    }
  } else if (m.t === 'hash') {
    hashFile(m.id!, m.path as string);
    return;
  } else if (m.t === 'need') {
    const a = m.a!;
    for (let i = 0; i < a.length; i += 3) answer(a[i]!, a[i + 1]!, a[i + 2] === 1);
    flush();
  } else if (m.t === 'free') {
    const a = m.a!;
    for (let i = 0; i < a.length; i++) {
      const block = sealed.get(a[i]!);
      if (!block) continue;
      sealed.delete(a[i]!);
      release(block);
    }
  } else if (m.t === 'list') {
    const all = Buffer.from(m.paths!.buffer, m.paths!.byteOffset, m.paths!.byteLength);
    for (let i = 0, pos = 0; i < m.ids!.length; i++) queueListing(m.ids![i]!, all.subarray(pos, (pos += m.lens![i]!)));
    if (!listScheduled) {
      listScheduled = true;
      setImmediate(listSome);
    }
    return;
  } else if (m.t === 'cancel') {
    const st = jobs.get(m.job!);
    if (st) {
      st.cancelled = true;
      dropPending(st);
      jobs.delete(m.job!);
    }
  }
  schedule();
});

function answer(job: number, seq: number, need: boolean): void {
  const st = jobs.get(job);
  if (!st) return;
  const block = st.pending.get(seq);
  if (!block) return;
  st.pending.delete(seq);
  let kept = false;
  if (need && !st.cancelled) {
    try {
      const raw = block.bytes.length - SEAL_OVERHEAD;
      const chunk = block.bytes.subarray(NONCE_LEN, NONCE_LEN + raw);
      const z = maybeCompressSync(chunk, init.compression);
      const len = sealInto(encKey, z ?? chunk, block.bytes, 0);
      items.push(['b', job, seq, block.start, len, raw, z !== null]);
      sealed.set(block.start, block);
      kept = true;
      garbage.dropped((z?.length ?? 0) + len);
    } catch (err) {
      fail(job, st, err);
    }
  }
  if (!kept) release(block);
  if (st.pending.size === 0 && !st.reading) jobs.delete(job);
}

/** Gives a chunk's ring space back; reading goes on if it waited for room. */
function release(block: RingBlock): void {
  ring.free(block);
  if (ringFull) {
    ringFull = false;
    schedule();
  }
}

function dropPending(st: JobState): void {
  for (const b of st.pending.values()) release(b);
  st.pending.clear();
}

function fail(job: number, st: JobState, err: unknown): void {
  if (st.cancelled) return;
  st.cancelled = true;
  dropPending(st);
  postError(job, err);
}

// ---------------------------------------------------------------- reading

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(pump);
}

/** Reads and hashes for one slice, posts what it produced, and comes back after the message queue had its turn. */
function pump(): void {
  scheduled = false;
  let bytes = 0;
  let files = 0;
  while (!ringFull && pendingBytes() < PENDING_BYTES && bytes < SLICE_BYTES && files < SLICE_FILES) {
    if (!current) {
      const next = queue.shift();
      if (!next) break;
      const st = jobs.get(next.job);
      if (!st || st.cancelled) continue;
      files++;
      current = openFile(next.job, st, next.path, next.expect, next.at);
      if (!current) continue;
    }
    bytes += step(current);
  }
  flush();
  if (!ringFull && pendingBytes() < PENDING_BYTES && (current || queue.length > 0)) schedule();
}

/** Ring bytes of chunks cut and not freed (the chunk being read is not one of them). */
function pendingBytes(): number {
  return ring.used - (current?.block?.bytes.length ?? 0);
}

function openFile(job: number, st: JobState, path: Buffer, expect: BigInt64Array, at: number): Current | null {
  let fd = -1;
  try {
    fd = openSync(path, OPEN_FLAGS);
    const c: Current = {
      job, st, path, fd,
      size: expect[at]!,
      mtimeNs: expect[at + 1]!,
      ctimeNs: expect[at + 2]!,
      ino: BigInt.asUintN(64, expect[at + 3]!),
      dev: BigInt.asUintN(64, expect[at + 4]!),
      regular: false,
      pos: 0, block: null, filled: 0, seen: 0, end: null, seq: 0,
    };
    if (c.size < 0n) {
      const before = regularStat(c);
      c.size = before.size;
      c.mtimeNs = before.mtimeNs;
      c.ctimeNs = before.ctimeNs;
      c.ino = before.ino;
      c.dev = before.dev;
    }
    return c;
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    fail(job, st, err);
    st.reading = false;
    jobs.delete(job);
    return null;
  }
}

/** fstat of the file being read; throws (EISDIR) unless it is a regular file. */
function regularStat(c: Current): BigIntStats {
  const st = fstatSync(c.fd, { bigint: true });
  if (!st.isFile()) {
    const err: NodeJS.ErrnoException = new Error(`not a regular file: ${c.path.toString()}`);
    err.code = 'EISDIR';
    throw err;
  }
  c.regular = true;
  return st;
}

/** Cuts one chunk of the current file (or finishes it); returns the bytes read. */
function step(c: Current): number {
  let read = 0;
  try {
    if (c.st.cancelled) {
      finishFile(c, false);
      return 0;
    }
    for (;;) {
      const final = c.end !== null && c.pos + c.filled === c.end;
      if (c.block) {
        const n = chunker.scan(c.block.bytes, NONCE_LEN, NONCE_LEN + c.filled, final, c.seen);
        if (n > 0) {
          cutChunk(c, c.block, n);
          return read;
        }
        c.seen = c.filled;
      }
      if (final) {
        finishFile(c, true);
        return read;
      }
      const want = pieceLength(c);
      const block = c.block ? ring.resize(c.block, c.filled + want + SEAL_OVERHEAD, NONCE_LEN + c.filled) : ring.alloc(want + SEAL_OVERHEAD);
      if (!block) {
        ringFull = true; // until answers free ring space; the bytes read so far stay in the block
        return read;
      }
      c.block = block;
      const at = c.pos + c.filled;
      const n = readSync(c.fd, block.bytes, NONCE_LEN + c.filled, want, at);
      c.filled += n;
      read += n;
      // A short read of a regular file is its end; when the size matches too, the extra
      // read that would return 0 is skipped (growth shows in the lstat after).
      if (c.end === null ? n === 0 || (n < want && BigInt(at + n) === c.size) : n < want) c.end = at + n;
      if (!c.regular && BigInt(at + n) > c.size) regularStat(c);
    }
  } catch (err) {
    if (!c.regular) {
      try {
        regularStat(c);
      } catch (notRegular) {
        err = notRegular;
      }
    }
    fail(c.job, c.st, err);
    finishFile(c, false);
    return read;
  }
}

/**
 * Bytes to read next into the current chunk: a piece, no further than a largest chunk
 * needs, no further than the end when it is known, and one byte past the size fstat gave
 * (a short read then tells the end without one more read).
 */
function pieceLength(c: Current): number {
  let want = Math.min(READ_PIECE, chunker.params.maxSize - c.filled);
  const at = c.pos + c.filled;
  if (c.end !== null) return Math.min(want, c.end - at);
  const left = Number(c.size) - at;
  if (left >= 0) want = Math.min(want, left + 1);
  return want;
}

/** The current chunk is the first `n` bytes of `block`: it keeps room for its sealed form only and awaits its answer. */
function cutChunk(c: Current, block: RingBlock, n: number): void {
  ring.resize(block, n + SEAL_OVERHEAD, NONCE_LEN + n); // shrinks in place
  c.block = null;
  c.pos += n;
  c.filled = 0;
  c.seen = 0;
  c.st.pending.set(c.seq, block);
  items.push(['c', c.job, c.seq, blobId(idKey, block.bytes.subarray(NONCE_LEN, NONCE_LEN + n)), n]);
  c.seq++;
  if (c.pos === c.end) finishFile(c, true);
}

function finishFile(c: Current, ok: boolean): void {
  current = null;
  c.st.reading = false;
  if (c.block) release(c.block);
  c.block = null;
  const bytesRead = c.end ?? c.pos + c.filled;
  let after: BigIntStats | null = null;
  let changed = false;
  try {
    if (ok) {
      try {
        after = lstatSync(c.path, { bigint: true, throwIfNoEntry: false }) ?? null;
      } catch {
        after = null;
      }
      // The path's lstat is the file read's while it names the same inode.
      const st = after && after.ino === c.ino && after.dev === c.dev && after.isFile() ? after : regularStat(c);
      changed = st.size !== c.size || st.mtimeNs !== c.mtimeNs || st.ctimeNs !== c.ctimeNs || BigInt(bytesRead) !== c.size;
    }
  } catch (err) {
    fail(c.job, c.st, err);
    ok = false;
  }
  try {
    closeSync(c.fd);
  } catch {
    // read-only descriptor: nothing was lost
  }
  if (!ok || c.st.cancelled) {
    if (c.st.pending.size === 0) jobs.delete(c.job);
    return;
  }
  items.push([
    'd',
    c.job,
    bytesRead,
    changed,
    after
      ? [after.isFile() ? 1n : 0n, after.size, after.mtimeNs, after.ctimeNs, after.ino, after.dev]
      : null,
  ]);
  if (c.st.pending.size === 0) jobs.delete(c.job);
}

// ---------------------------------------------------------------- pack names

let hashBuf: Buffer | null = null;

/** Answers a 'hash' request: the SHA-256 of the file's bytes (read in pieces). */
function hashFile(id: number, path: string): void {
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    const h = createHash('sha256');
    hashBuf ??= Buffer.allocUnsafe(READ_PIECE);
    for (let pos = 0; ; ) {
      const n = readSync(fd, hashBuf, 0, READ_PIECE, pos);
      if (n === 0) break;
      h.update(hashBuf.subarray(0, n));
      pos += n;
    }
    port.postMessage({ t: 'hashed', id, hex: h.digest('hex') });
  } catch (err) {
    port.postMessage({ t: 'hashed', id, error: err instanceof Error ? err.message : String(err) });
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

// ---------------------------------------------------------------- directory listings

/** One directory's listing, or the error that stopped it (worker-pool.ts reads it). */
type Listing =
  | { id: number; error: { code: string | null; message: string; errno: number | null; syscall: string | null } }
  | {
      id: number;
      names: Uint8Array;
      lens: Uint32Array;
      dirs: Uint8Array;
      stats: BigInt64Array;
      errs: [number, string | null, string][];
      digest: Buffer | null;
    };

/**
 * Directories asked for and not listed yet, last in walk order first. The walk asks for
 * many ahead of itself (its next siblings, and their subdirectories: hundreds), and waits
 * for one of them: the first in walk order, so that one goes first, whatever order the
 * asks came in (listing them as they came kept the walk waiting for ~0.4 s of a ~0.5 s
 * unchanged re-run). Kept sorted: one binary search per ask, the next one is the last.
 */
const listQueue: { id: number; path: Buffer }[] = [];
/** listSome is due (an immediate is pending). */
let listScheduled = false;
/** Listing time between two looks at the message queue (new asks, and reading's turn). */
const LIST_SLICE_MS = 1;

function queueListing(id: number, path: Buffer): void {
  let lo = 0;
  let hi = listQueue.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (walkOrder(listQueue[mid]!.path, path) > 0) lo = mid + 1;
    else hi = mid;
  }
  listQueue.splice(lo, 0, { id, path });
}

function listSome(): void {
  const results: Listing[] = [];
  const transfer: ArrayBuffer[] = [];
  const until = performance.now() + LIST_SLICE_MS;
  do {
    const { id, path } = listQueue.pop()!;
    results.push(listDir(id, path, transfer));
  } while (listQueue.length > 0 && performance.now() < until);
  port.postMessage({ t: 'listed', results }, transfer);
  if (listQueue.length > 0) setImmediate(listSome);
  else listScheduled = false;
}

/**
 * Compares two paths in the order a depth-first walk of sorted names reaches them: byte
 * by byte, with `/` before every other byte (`a/b` comes before `a-c`).
 */
function walkOrder(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return (x === SLASH ? -1 : x) - (y === SLASH ? -1 : y);
  }
  return a.length - b.length;
}

/** Stat fields per entry in a listing's BigInt64Array (order known to worker-pool.ts). */
const STAT_FIELDS = 11;
const SLASH = 0x2f;

/**
 * A directory file larger than this is read entry by entry (opendir) instead of whole
 * (readdir): readdir makes an object and a Buffer per entry at once, and a directory of
 * ~300k entries took this thread past its heap limit (the listing failed, and the thread
 * with it). Entry by entry costs ~1.5× readdir's time, so smaller directories keep
 * readdir. A directory's size grows with its entries on the common file systems (ext4,
 * XFS: its blocks, ~1k entries at 32 KiB; btrfs: twice its names' bytes; tmpfs: 20 bytes
 * per entry; ZFS: 1 per entry, 32k entries at 32 KiB, well within the heap); some network
 * and FUSE file systems say 0 whatever it holds, so a size of 0 is read one at a time too.
 */
const WHOLE_DIR_MAX_BYTES = 32 * 1024;

/** A directory's names back to back, their lengths, and 1 where the entry says directory. */
class DirNames {
  names: Uint8Array<ArrayBuffer>;
  lens: Uint32Array<ArrayBuffer>;
  dirs: Uint8Array<ArrayBuffer>;
  count = 0;
  bytes = 0;

  constructor(count = 64, bytes = 4096) {
    this.names = new Uint8Array(bytes);
    this.lens = new Uint32Array(count);
    this.dirs = new Uint8Array(count);
  }

  add(name: Buffer, isDir: boolean): void {
    if (this.count === this.lens.length) {
      const more = Math.max(64, this.count * 2);
      this.lens = grown(this.lens, new Uint32Array(more));
      this.dirs = grown(this.dirs, new Uint8Array(more));
    }
    if (this.bytes + name.length > this.names.length) this.names = grown(this.names, new Uint8Array(Math.max(this.names.length * 2, this.bytes + name.length)));
    this.names.set(name, this.bytes);
    this.bytes += name.length;
    this.lens[this.count] = name.length;
    this.dirs[this.count++] = isDir ? 1 : 0;
  }

  /** The arrays cut to what was added (copies when they grew past it: they travel to the main thread). */
  trim(): void {
    if (this.names.length > this.bytes) this.names = this.names.slice(0, this.bytes);
    if (this.lens.length > this.count) {
      this.lens = this.lens.slice(0, this.count);
      this.dirs = this.dirs.slice(0, this.count);
    }
  }
}

function grown<T extends Uint8Array<ArrayBuffer> | Uint32Array<ArrayBuffer>>(from: T, to: T): T {
  to.set(from);
  return to;
}

/** The names in directory `path`; throws the fs error of readdir or opendir. */
function readNames(path: Buffer): DirNames {
  const size = statSync(path, { throwIfNoEntry: false })?.size ?? 0;
  if (size > 0 && size <= WHOLE_DIR_MAX_BYTES) {
    const ents = readdirSync(path, { withFileTypes: true, encoding: 'buffer' });
    let total = 0;
    for (const d of ents) total += d.name.length;
    const out = new DirNames(ents.length, total);
    for (const d of ents) out.add(d.name, d.isDirectory());
    return out;
  }
  const out = new DirNames();
  // Names as Buffers (bytes as they are), which node gives though its types list only text encodings.
  const dir = opendirSync(path, { encoding: 'buffer' as BufferEncoding });
  try {
    for (let d = dir.readSync(); d !== null; d = dir.readSync()) out.add(d.name as unknown as Buffer, d.isDirectory());
  } finally {
    dir.closeSync();
  }
  out.trim();
  return out;
}

/**
 * Lists a directory with synchronous calls (a walk's lstat of every entry costs a
 * thread-pool round trip each on the main thread): names back to back in `names` with
 * their lengths, `dirs` 1 where the directory entry says directory, stat fields (dev, ino,
 * mode, nlink, uid, gid, rdev, size, atime, mtime, ctime) in `stats`, and the entries
 * whose lstat failed in `errs` (index, code, message; in index order).
 */
function listDir(id: number, path: Buffer, transfer: ArrayBuffer[]): Listing {
  let dn: DirNames;
  try {
    dn = readNames(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { id, error: { code: e.code ?? null, message: e.message, errno: e.errno ?? null, syscall: e.syscall ?? null } };
  }
  const { names, lens, dirs, count: n } = dn;
  const stats = new BigInt64Array(n * STAT_FIELDS);
  const errs: [number, string | null, string][] = [];
  const full = Buffer.allocUnsafe(path.length + 1 + 4096);
  path.copy(full, 0);
  full[path.length] = SLASH;
  for (let i = 0, pos = 0; i < n; i++) {
    const name = names.subarray(pos, (pos += lens[i]!));
    const end = path.length + 1 + name.length;
    const p = end <= full.length ? full.subarray(0, end) : Buffer.concat([path, Buffer.from([SLASH]), name]);
    if (end <= full.length) full.set(name, path.length + 1);
    try {
      const st = lstatSync(p, { bigint: true });
      const o = i * STAT_FIELDS;
      stats[o] = st.dev;
      stats[o + 1] = st.ino;
      stats[o + 2] = st.mode;
      stats[o + 3] = st.nlink;
      stats[o + 4] = st.uid;
      stats[o + 5] = st.gid;
      stats[o + 6] = st.rdev;
      stats[o + 7] = st.size;
      stats[o + 8] = 0n; // atime: in no tree entry, and reading a file changes it
      stats[o + 9] = st.mtimeNs;
      stats[o + 10] = st.ctimeNs;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      errs.push([i, e.code ?? null, e.message]);
    }
  }
  // What the walk compares with the listing it saw last time (RawListing.digest).
  const digest = errs.length > 0 ? null : createHash('sha256').update(names).update(lens).update(dirs).update(stats).digest();
  transfer.push(names.buffer, lens.buffer, stats.buffer);
  return { id, names, lens, dirs, stats, errs, digest };
}

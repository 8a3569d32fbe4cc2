import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ChunkerParams } from './chunker.js';
import type { ContentCompression } from './compress.js';
import { SEAL_OVERHEAD } from './crypto.js';
import { RepoError } from './errors.js';
import type { EntryStat, FileIdentity, FileStatAfter, RawDirEntry, RawListing } from './types.js';

/**
 * Callbacks of one file job; chunk handlers are called one at a time, in message order.
 * Either may answer at once (no promise: most chunks of a backup need no waiting, and a
 * promise per chunk was a good part of the main thread's work per file).
 */
export interface FileJobHandlers {
  /** A chunk was hashed; true (or a promise of it) when its sealed blob is wanted. */
  chunk(seq: number, id: string, rawLength: number): boolean | Promise<boolean>;
  /**
   * The sealed blob of a wanted chunk. `sealed` lies in the thread's ring and is reused
   * once this returns, or once the promise it returns settles: copy it before that.
   */
  blob(seq: number, sealed: Buffer, rawLength: number, compressed: boolean): void | Promise<void>;
}

export interface FileJobResult {
  bytesRead: number;
  changed: boolean;
  /** lstat of the path after the read; null when it vanished right after. */
  after: FileStatAfter | null;
}

interface Job {
  id: number;
  path: Buffer;
  /** The walk's lstat of the file (null: not known), and its size, for balancing the threads. */
  expect: FileIdentity | null;
  size: number;
  /** Of that, the bytes not read yet (counted in its thread's `bytes`). */
  unread: number;
  handlers: FileJobHandlers;
  resolve: (r: FileJobResult) => void;
  reject: (e: unknown) => void;
  /** The handler work still running for this job, in order (null: none; see inOrder). */
  chain: Promise<void> | null;
  worker?: PoolWorker;
  finished: boolean;
  /** Wanted blobs not received yet. */
  awaited: number;
  /** The thread said it read the whole file (or failed): it no longer counts as work ahead of the thread. */
  read: boolean;
  result: FileJobResult | null;
  /** The jobs of this job's abort signal (it leaves the set when it ends). */
  signalJobs?: Set<Job>;
}

interface PoolWorker {
  worker: Worker;
  jobs: Set<Job>;
  /**
   * Jobs handed to this thread that it has not finished reading, and their expected bytes:
   * the work queued ahead of it. A job read stays in `jobs` until its last blob is stored,
   * but no longer counts here: the thread gets more files while the main thread stores the
   * blobs it sent (counting them kept one thread idle ~15% of a first backup). A large
   * file's bytes leave `bytes` chunk by chunk, so small files join it before its end.
   */
  reading: number;
  bytes: number;
  /** The thread's ring (chunk-worker.ts): where its sealed blobs are read. */
  ring: Buffer;
  /** Answers (job, seq, need) not posted yet. */
  answers: number[];
  /** Ring offsets of sealed blobs done with, not posted yet. */
  freed: number[];
  repliesScheduled: boolean;
  /** Directory listings asked of this thread and not answered. */
  lists: number;
  /** Listings asked in this turn, not posted yet (one message for all: see list). */
  listQueue: { id: number; path: Buffer }[];
}

export interface WorkerPoolOptions {
  encKey: Buffer;
  idKey: Buffer;
  gear: Int32Array;
  params: ChunkerParams;
  /** How hard file content is compressed (default small). */
  compression?: ContentCompression;
  /** Number of threads (default: available cores). */
  workers?: number;
  /** Files handed to one thread ahead of its work (default 128)… */
  filesPerWorker?: number;
  /** …and their expected bytes (default 8 MiB; a larger file is handed over alone). */
  bytesPerWorker?: number;
  /**
   * Bytes of chunks a thread keeps while waiting for answers (default 1 MiB: its ring is
   * this plus one largest sealed chunk). Bench, 2 workers: 2 MiB against 8 MiB cost no
   * time and saved ~20 MiB peak RSS on both profiles; 1 MiB against 2 (answers made
   * without a promise), ~3 MiB less on both, no slower beyond noise.
   */
  pendingBytes?: number;
  /**
   * Limit of a thread's old generation, MiB (default 64: its heap holds little, chunks and
   * listings live in ArrayBuffers outside it; a thread past it ends, failing its work).
   */
  heapMb?: number;
}

/**
 * A pool of chunk workers (chunk-worker.ts). `run` queues one file; queued files are
 * handed to the least loaded thread in batches (one message for many small files), up to
 * filesPerWorker / bytesPerWorker ahead of each thread, so a thread busy with a large
 * file does not hold small ones back. Threads start on first use; `close` terminates them
 * and fails queued and running jobs.
 */
export class WorkerPool {
  private readonly opts: Required<WorkerPoolOptions>;
  private readonly workers: PoolWorker[] = [];
  /** Jobs not handed to a thread yet, from queueHead on (a slot before it is emptied as its job leaves). */
  private readonly queue: (Job | undefined)[] = [];
  private queueHead = 0;
  private readonly jobs = new Map<number, Job>();
  private nextJob = 1;
  private closed = false;
  private dispatchScheduled = false;
  private readonly bySignal = new WeakMap<AbortSignal, Set<Job>>();
  private readonly lists = new Map<number, { resolve: (r: RawListing) => void; reject: (e: unknown) => void; path: Buffer; worker: PoolWorker }>();
  private readonly hashes = new Map<number, { resolve: (hex: string) => void; reject: (e: unknown) => void; worker: PoolWorker }>();
  private nextList = 1;

  constructor(opts: WorkerPoolOptions) {
    this.opts = {
      filesPerWorker: 128,
      bytesPerWorker: 8 * 1024 * 1024,
      pendingBytes: 1024 * 1024,
      heapMb: 64,
      compression: 'small',
      ...opts,
      workers: Math.max(1, opts.workers ?? availableParallelism()),
    };
  }

  /**
   * Reads, chunks and seals the file at `path` (`expect`: the walk's lstat of it, which
   * saves the thread an fstat; `changed` then says the file read differs from it).
   * Rejects with the fs error (code ENOENT, EACCES, …) when it cannot be read, with a
   * handler's error, or with `signal`'s reason.
   */
  run(path: Buffer, handlers: FileJobHandlers, signal?: AbortSignal, expect: FileIdentity | null = null): Promise<FileJobResult> {
    const size = expect ? Number(expect.size) : 0;
    if (this.closed) return Promise.reject(new RepoError('worker pool is closed', 'NJ_REPO_CLOSED'));
    return new Promise<FileJobResult>((resolve, reject) => {
      const job: Job = {
        id: this.nextJob++,
        path,
        expect,
        size,
        unread: size,
        handlers,
        resolve,
        reject,
        chain: null,
        finished: false,
        awaited: 0,
        read: false,
        result: null,
      };
      if (signal) {
        if (signal.aborted) return reject(signal.reason);
        // One listener per signal for all its jobs (hundreds run at once).
        let set = this.bySignal.get(signal);
        if (!set) {
          const jobs = (set = new Set<Job>());
          this.bySignal.set(signal, set);
          signal.addEventListener('abort', () => {
            for (const j of [...jobs]) this.fail(j, signal.reason ?? new Error('aborted'));
          }, { once: true });
        }
        set.add(job);
        job.signalJobs = set;
      }
      this.jobs.set(job.id, job);
      this.queue.push(job);
      this.scheduleDispatch();
    });
  }

  /**
   * Starts `threads` threads now (a thread takes ~60 ms to boot: a backup starts one while
   * it loads the index). The others start with the first file to read: a walk that finds
   * nothing to read (an unchanged re-run) lists directories in one thread, and the CPU time
   * and memory another thread's boot would take stay with the walk.
   */
  start(threads = 1): void {
    while (!this.closed && this.workers.length < Math.min(threads, this.opts.workers)) this.spawn();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const req of [...this.lists.values(), ...this.hashes.values()]) req.reject(new RepoError('repository closed', 'NJ_REPO_CLOSED'));
    this.lists.clear();
    this.hashes.clear();
    for (const job of [...this.jobs.values()]) this.fail(job, new RepoError('repository closed', 'NJ_REPO_CLOSED'));
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    this.workers.length = 0;
  }

  private scheduleDispatch(): void {
    if (this.dispatchScheduled || this.closed) return;
    this.dispatchScheduled = true;
    // After the current turn: the files queued by one walk step go out in one message.
    setImmediate(() => {
      this.dispatchScheduled = false;
      if (!this.closed) this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.workers.length < this.opts.workers && this.queueHead < this.queue.length) this.spawn();
    const batches = new Map<PoolWorker, Job[]>();
    // Only threads down to half their share are topped up (to the full share): a batch of
    // many files per message instead of a message per finished file (each costs the main
    // thread tens of µs).
    const { filesPerWorker, bytesPerWorker } = this.opts;
    const open = this.workers.filter((x) => this.wantsWork(x));
    while (this.queueHead < this.queue.length) {
      const job = this.queue[this.queueHead]!;
      if (job.finished) {
        this.queue[this.queueHead++] = undefined;
        continue;
      }
      let w: PoolWorker | undefined;
      for (const x of open) if (!w || x.bytes < w.bytes || (x.bytes === w.bytes && x.reading < w.reading)) w = x;
      if (!w) break;
      // A thread takes more while it has room; an idle one always takes the next file.
      if (w.reading > 0 && (w.reading >= filesPerWorker || w.bytes + job.size > bytesPerWorker)) break;
      // Emptied: the array is cut only every 1024 jobs, and a job kept here would keep its
      // handlers and their closures alive until then (up to ~1000 files' worth).
      this.queue[this.queueHead++] = undefined;
      job.worker = w;
      w.jobs.add(job);
      w.reading++;
      w.bytes += job.size;
      let b = batches.get(w);
      if (!b) batches.set(w, (b = []));
      b.push(job);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    for (const [w, jobs] of batches) {
      w.worker.ref();
      postFiles(w.worker, jobs);
    }
  }

  private spawn(): PoolWorker {
    const ring = new SharedArrayBuffer(this.opts.pendingBytes + this.opts.params.maxSize + SEAL_OVERHEAD);
    const worker = new Worker(new URL('./chunk-worker.js', import.meta.url), {
      workerData: {
        encKey: new Uint8Array(this.opts.encKey),
        idKey: new Uint8Array(this.opts.idKey),
        gear: this.opts.gear,
        params: this.opts.params,
        pendingBytes: this.opts.pendingBytes,
        ring,
        compression: this.opts.compression,
      },
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: this.opts.heapMb },
    });
    const pw: PoolWorker = { worker, ring: Buffer.from(ring), jobs: new Set(), reading: 0, bytes: 0, answers: [], freed: [], repliesScheduled: false, lists: 0, listQueue: [] };
    // Sorted here, so that the item handler's optimized code is not thrown away when a
    // listing (another message shape) comes between two batches of items.
    worker.on('message', (m: OutMessage | ListedMessage | HashedMessage) => {
      if (m.t === 'out') this.onItems(pw, m.items);
      else if (m.t === 'listed') this.onListed(m);
      else this.onHashed(m);
    });
    const die = (err: unknown) => {
      const i = this.workers.indexOf(pw);
      if (i >= 0) this.workers.splice(i, 1);
      for (const job of [...pw.jobs]) this.fail(job, new RepoError(`chunk worker failed: ${String(err)}`, 'NJ_REPO_WORKER', { cause: err }));
      for (const requests of [this.lists, this.hashes]) {
        for (const [id, req] of requests) {
          if (req.worker !== pw) continue;
          requests.delete(id);
          req.reject(new RepoError(`chunk worker failed: ${String(err)}`, 'NJ_REPO_WORKER', { cause: err }));
        }
      }
      if (!this.closed) this.scheduleDispatch();
    };
    worker.on('error', die);
    worker.on('exit', (code) => {
      if (!this.closed) die(new Error(`exited with code ${code}`));
    });
    worker.unref();
    this.workers.push(pw);
    return pw;
  }

  /** Tells the thread whether the job's chunk `seq` is wanted (sealed) or dropped. */
  private answer(pw: PoolWorker, job: Job, seq: number, need: boolean): void {
    if (job.finished) return;
    if (need) job.awaited++;
    pw.answers.push(job.id, seq, need ? 1 : 0);
    this.scheduleReplies(pw);
  }

  /** Gives a sealed blob's ring space back to its thread. */
  private free(pw: PoolWorker, offset: number): void {
    pw.freed.push(offset);
    this.scheduleReplies(pw);
  }

  /** Answers and frees of one turn go out together, one message of each kind. */
  private scheduleReplies(pw: PoolWorker): void {
    if (pw.repliesScheduled) return;
    pw.repliesScheduled = true;
    setImmediate(() => {
      pw.repliesScheduled = false;
      if (!this.workers.includes(pw)) return;
      for (const [t, list] of [['free', pw.freed], ['need', pw.answers]] as const) {
        if (list.length === 0) continue;
        const a = Float64Array.from(list);
        list.length = 0;
        pw.worker.postMessage({ t, a }, [a.buffer]);
      }
    });
  }

  /**
   * Lists a directory in a worker thread (readdir, then lstat of every entry, with
   * synchronous calls there). Rejects with the fs error when the directory cannot be read.
   */
  list(path: Buffer): Promise<RawListing> {
    if (this.closed) return Promise.reject(new RepoError('worker pool is closed', 'NJ_REPO_CLOSED'));
    if (this.workers.length === 0) this.spawn();
    // The thread with the least file work answers soonest (it lists between slices).
    let w = this.workers[0]!;
    for (const x of this.workers) if (x.bytes + x.lists * 65536 < w.bytes + w.lists * 65536) w = x;
    const id = this.nextList++;
    return new Promise<RawListing>((resolve, reject) => {
      this.lists.set(id, { resolve, reject, path, worker: w });
      w.lists++;
      w.worker.ref();
      // A walk asks for several listings in one step: they go out together at the end of
      // it (a microtask: no added latency). Each message wakes the thread, which took
      // 40-80 µs of the main thread's time per message here.
      if (w.listQueue.push({ id, path }) === 1) {
        queueMicrotask(() => {
          const asked = w.listQueue;
          w.listQueue = [];
          if (this.workers.includes(w)) postPaths(w.worker, 'list', asked);
        });
      }
    });
  }

  /**
   * SHA-256 (hex) of a file's bytes, computed in a worker thread (a data pack's name: 16
   * MiB of hashing per pack, kept off the main thread).
   */
  hashFile(path: string): Promise<string> {
    if (this.closed) return Promise.reject(new RepoError('worker pool is closed', 'NJ_REPO_CLOSED'));
    if (this.workers.length === 0) this.spawn();
    let w = this.workers[0]!;
    for (const x of this.workers) if (x.bytes < w.bytes) w = x;
    const id = this.nextList++;
    return new Promise<string>((resolve, reject) => {
      this.hashes.set(id, { resolve, reject, worker: w });
      w.lists++;
      w.worker.ref();
      w.worker.postMessage({ t: 'hash', id, path });
    });
  }

  private onHashed(m: HashedMessage): void {
    const req = this.hashes.get(m.id);
    if (!req) return;
    this.hashes.delete(m.id);
    this.idle(req.worker, -1);
    if (m.error) req.reject(new RepoError(`hashing a pack file failed: ${m.error}`, 'NJ_REPO_IO'));
    else req.resolve(m.hex!);
  }

  /** Counts a finished request of `w` (adjust its list count) and lets the process exit when the thread has nothing to do. */
  private idle(w: PoolWorker, delta: number): void {
    w.lists += delta;
    if (w.jobs.size === 0 && w.lists === 0) w.worker.unref();
  }

  private onListed(m: ListedMessage): void {
    for (const r of m.results) this.onListing(r);
  }

  private onListing(m: Listing): void {
    const req = this.lists.get(m.id);
    if (!req) return;
    this.lists.delete(m.id);
    this.idle(req.worker, -1);
    if (m.error) {
      const err: NodeJS.ErrnoException = new Error(m.error.message);
      if (m.error.code) err.code = m.error.code;
      if (m.error.errno !== null) err.errno = m.error.errno;
      if (m.error.syscall) err.syscall = m.error.syscall;
      (err as { path: unknown }).path = req.path;
      return req.reject(err);
    }
    const { names, lens, dirs, stats, errs, digest } = m;
    const nameBuf = Buffer.from(names!.buffer, names!.byteOffset, names!.byteLength);
    const out: RawDirEntry[] = new Array(lens!.length);
    let pos = 0;
    let nextErr = 0;
    for (let i = 0; i < lens!.length; i++) {
      const name = nameBuf.subarray(pos, pos + lens![i]!);
      pos += lens![i]!;
      let error: NodeJS.ErrnoException | null = null;
      if (errs![nextErr]?.[0] === i) {
        const [, code, message] = errs![nextErr++]!;
        error = new Error(message);
        if (code) error.code = code;
      }
      out[i] = { name, direntIsDir: dirs![i] === 1, stat: error ? null : new ListedStat(stats!, i * 11), error };
    }
    req.resolve({ entries: out, digest: digest ? Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength) : null });
  }

  private onItems(pw: PoolWorker, items: OutItem[]): void {
    for (const it of items) {
      const job = this.jobs.get(it[1]);
      if (!job || job.finished) {
        if (it[0] === 'b') this.free(pw, it[3]);
        continue;
      }
      switch (it[0]) {
        case 'c': {
          const [, , seq, id, raw] = it;
          this.readSome(job, raw);
          this.inOrder(job, () => {
            if (job.finished) return;
            const need = job.handlers.chunk(seq, id, raw);
            if (typeof need === 'boolean') return this.answer(pw, job, seq, need);
            return need.then((n) => this.answer(pw, job, seq, n));
          });
          continue;
        }
        case 'b': {
          const [, , seq, off, len, raw, compressed] = it;
          // Not in order behind the job's chunk handlers: one of those may be waiting for a
          // blob reserved by this very job or by another one waiting for this (identical
          // chunks in one file, or in two files in another order); its chunk handler
          // already ran (the thread seals only what was asked for).
          let stored: void | Promise<void>;
          try {
            stored = job.handlers.blob(seq, pw.ring.subarray(off, off + len), raw, compressed);
          } catch (err) {
            stored = Promise.reject(err);
          }
          if (!stored) {
            this.free(pw, off);
            this.blobStored(job);
            continue;
          }
          stored.then(
            () => this.blobStored(job),
            (err) => this.fail(job, err),
          ).finally(() => this.free(pw, off));
          continue;
        }
        case 'd': {
          this.readDone(job);
          const [, , bytesRead, changed, a] = it;
          const after: FileStatAfter | null = a
            ? { isFile: a[0] === 1n, size: a[1]!, mtimeNs: a[2]!, ctimeNs: a[3]!, ino: a[4]!, dev: a[5]! }
            : null;
          this.inOrder(job, () => {
            job.result = { bytesRead, changed, after };
            if (job.awaited === 0) this.finish(job, job.result);
          });
          continue;
        }
        case 'e': {
          this.readDone(job);
          const [, , code, message, errno, syscall] = it;
          const err: NodeJS.ErrnoException = new Error(message);
          if (code) err.code = code;
          if (errno !== null) err.errno = errno;
          if (syscall) err.syscall = syscall;
          (err as { path: unknown }).path = job.path;
          this.fail(job, err);
          continue;
        }
      }
    }
  }

  /**
   * Runs `step` once the job's earlier steps are done: at once when none is running (no
   * promise made), else chained behind them. A step that throws or rejects fails the job.
   */
  private inOrder(job: Job, step: () => void | Promise<void>): void {
    let running: Promise<void>;
    if (job.chain) running = job.chain.then(step);
    else {
      try {
        const r = step();
        if (!r) return;
        running = r;
      } catch (err) {
        this.fail(job, err);
        return;
      }
    }
    const chain: Promise<void> = running.then(
      () => {
        if (job.chain === chain) job.chain = null;
      },
      (err: unknown) => {
        if (job.chain === chain) job.chain = null;
        this.fail(job, err);
      },
    );
    job.chain = chain;
  }

  /** A wanted blob of `job` is stored: the job ends with its last one once the file is read. */
  private blobStored(job: Job): void {
    if (job.finished) return;
    job.awaited--;
    if (job.result && job.awaited === 0) this.finish(job, job.result);
  }

  private finish(job: Job, r: FileJobResult): void {
    if (job.finished) return;
    this.release(job);
    job.resolve(r);
  }

  private fail(job: Job, err: unknown): void {
    if (job.finished) return;
    if (job.worker && this.workers.includes(job.worker)) job.worker.worker.postMessage({ t: 'cancel', job: job.id });
    this.release(job);
    job.reject(err);
  }

  /** The thread read `n` more bytes of `job`: less work ahead of it. */
  private readSome(job: Job, n: number): void {
    const w = job.worker;
    if (job.read || !w || job.unread === 0) return;
    const done = Math.min(n, job.unread);
    job.unread -= done;
    w.bytes -= done;
    if (this.wantsWork(w)) this.scheduleDispatch();
  }

  /** The thread is down to half its share of work ahead (dispatch tops it up to the full share). */
  private wantsWork(w: PoolWorker): boolean {
    return w.reading <= this.opts.filesPerWorker / 2 && w.bytes <= this.opts.bytesPerWorker / 2;
  }

  /** The thread is done reading `job`: room for more work ahead of it. */
  private readDone(job: Job): void {
    const w = job.worker;
    if (job.read || !w) return;
    job.read = true;
    w.reading--;
    w.bytes -= job.unread;
    job.unread = 0;
    this.scheduleDispatch();
  }

  private release(job: Job): void {
    job.finished = true;
    job.signalJobs?.delete(job);
    this.jobs.delete(job.id);
    const w = job.worker;
    if (w && w.jobs.delete(job)) {
      this.readDone(job);
      this.idle(w, 0); // not while it still owes a listing or a hash
    }
    if (!this.closed) this.scheduleDispatch();
  }
}

type OutItem =
  | ['c', number, number, string, number]
  | ['b', number, number, number, number, number, boolean]
  | ['d', number, number, boolean, bigint[] | null]
  | ['e', number, string | null, string, number | null, string | null];

interface OutMessage {
  t: 'out';
  items: OutItem[];
}

interface HashedMessage {
  t: 'hashed';
  id: number;
  hex?: string;
  error?: string;
}

/** Posts files to read: their paths as postPaths does, and what the walk saw of each (chunk-worker.ts). */
function postFiles(worker: Worker, jobs: readonly Job[]): void {
  const expect = new BigInt64Array(jobs.length * 5);
  jobs.forEach((j, i) => {
    const e = j.expect;
    if (!e) expect[i * 5] = -1n;
    else expect.set([e.size, e.mtimeNs, e.ctimeNs, e.ino, e.dev], i * 5);
  });
  postPaths(worker, 'files', jobs, expect);
}

/** Posts files to read or directories to list: ids, and their paths back to back (one message, no clone per path). */
function postPaths(worker: Worker, t: 'files' | 'list', items: readonly { id: number; path: Buffer }[], expect?: BigInt64Array): void {
  const ids = new Float64Array(items.length);
  const lens = new Uint32Array(items.length);
  let total = 0;
  for (const j of items) total += j.path.length;
  const paths = new Uint8Array(total);
  let pos = 0;
  items.forEach((j, i) => {
    ids[i] = j.id;
    lens[i] = j.path.length;
    paths.set(j.path, pos);
    pos += j.path.length;
  });
  const transfer: ArrayBuffer[] = [ids.buffer, lens.buffer, paths.buffer];
  if (expect) transfer.push(expect.buffer as ArrayBuffer);
  worker.postMessage({ t, ids, lens, paths, expect }, transfer);
}

/** The listings of one 'list' message. */
interface ListedMessage {
  t: 'listed';
  results: Listing[];
}

interface Listing {
  id: number;
  error?: { code: string | null; message: string; errno: number | null; syscall: string | null };
  names?: Uint8Array;
  lens?: Uint32Array;
  dirs?: Uint8Array;
  stats?: BigInt64Array;
  /** Entries whose lstat failed: index, code, message (in index order). */
  errs?: [number, string | null, string][];
  digest?: Uint8Array | null;
}

const S_IFMT = 0o170000n;

/**
 * An lstat result from a worker's listing (fields as in chunk-worker.ts listDir), read from
 * the listing's array when asked for: an unchanged file's walk needs half of them, and
 * a bigint made per field per file is garbage the main thread would collect.
 */
class ListedStat implements EntryStat {
  constructor(
    private readonly a: BigInt64Array,
    private readonly o: number,
  ) {}
  get dev(): bigint {
    return BigInt.asUintN(64, this.a[this.o]!);
  }
  get ino(): bigint {
    return BigInt.asUintN(64, this.a[this.o + 1]!);
  }
  get mode(): bigint {
    return this.a[this.o + 2]!;
  }
  get nlink(): bigint {
    return this.a[this.o + 3]!;
  }
  get uid(): bigint {
    return this.a[this.o + 4]!;
  }
  get gid(): bigint {
    return this.a[this.o + 5]!;
  }
  get rdev(): bigint {
    return this.a[this.o + 6]!;
  }
  get size(): bigint {
    return this.a[this.o + 7]!;
  }
  get atimeNs(): bigint {
    return this.a[this.o + 8]!;
  }
  get mtimeNs(): bigint {
    return this.a[this.o + 9]!;
  }
  get ctimeNs(): bigint {
    return this.a[this.o + 10]!;
  }
  private is(t: bigint): boolean {
    return (this.mode & S_IFMT) === t;
  }
  isFile(): boolean {
    return this.is(0o100000n);
  }
  isDirectory(): boolean {
    return this.is(0o040000n);
  }
  isSymbolicLink(): boolean {
    return this.is(0o120000n);
  }
  isFIFO(): boolean {
    return this.is(0o010000n);
  }
  isSocket(): boolean {
    return this.is(0o140000n);
  }
  isCharacterDevice(): boolean {
    return this.is(0o020000n);
  }
  isBlockDevice(): boolean {
    return this.is(0o060000n);
  }
}

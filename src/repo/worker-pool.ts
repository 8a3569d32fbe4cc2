import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ChunkerParams } from './chunker.js';
import { RepoError } from './errors.js';

/** Callbacks of one file job; called one at a time, in message order. */
export interface FileJobHandlers {
  /** A chunk was hashed; resolve true when its sealed blob is wanted. */
  chunk(seq: number, id: string, rawLength: number): Promise<boolean>;
  /** The sealed blob of a wanted chunk. */
  blob(seq: number, sealed: Buffer, rawLength: number, compressed: boolean): Promise<void>;
}

export interface FileJobResult {
  bytesRead: number;
  changed: boolean;
}

interface Job {
  id: number;
  path: Buffer;
  handlers: FileJobHandlers;
  resolve: (r: FileJobResult) => void;
  reject: (e: unknown) => void;
  chain: Promise<void>;
  worker?: PoolWorker;
  finished: boolean;
}

interface PoolWorker {
  worker: Worker;
  jobs: Set<Job>;
}

export interface WorkerPoolOptions {
  encKey: Buffer;
  idKey: Buffer;
  gear: Int32Array;
  params: ChunkerParams;
  /** Number of threads (default: available cores). */
  workers?: number;
  /** Files one thread works on at once (default 2). */
  jobsPerWorker?: number;
  /** Chunks per file awaiting an answer (default 3). */
  window?: number;
}

/**
 * A pool of chunk workers (chunk-worker.ts). `run` hands one file to the least busy
 * thread; files beyond workers × jobsPerWorker wait in a FIFO queue. Threads start on
 * first use; `close` terminates them and fails queued and running jobs.
 */
export class WorkerPool {
  private readonly opts: Required<WorkerPoolOptions>;
  private readonly workers: PoolWorker[] = [];
  private readonly queue: Job[] = [];
  private readonly jobs = new Map<number, Job>();
  private nextJob = 1;
  private closed = false;

  constructor(opts: WorkerPoolOptions) {
    this.opts = {
      workers: Math.max(1, opts.workers ?? availableParallelism()),
      jobsPerWorker: 2,
      window: 3,
      ...opts,
    } as Required<WorkerPoolOptions>;
    if (opts.workers === undefined) this.opts.workers = Math.max(1, availableParallelism());
  }

  /**
   * Reads, chunks and seals the file at `path`. Rejects with the fs error (code ENOENT,
   * EACCES, …) when it cannot be read, with a handler's error, or with `signal`'s reason.
   */
  run(path: Buffer, handlers: FileJobHandlers, signal?: AbortSignal): Promise<FileJobResult> {
    if (this.closed) return Promise.reject(new RepoError('worker pool is closed', 'NJ_REPO_CLOSED'));
    return new Promise<FileJobResult>((resolve, reject) => {
      const job: Job = { id: this.nextJob++, path, handlers, resolve, reject, chain: Promise.resolve(), finished: false };
      const onAbort = () => this.fail(job, signal!.reason ?? new Error('aborted'));
      if (signal) {
        if (signal.aborted) return reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        const done = () => signal.removeEventListener('abort', onAbort);
        job.resolve = (r) => {
          done();
          resolve(r);
        };
        job.reject = (e) => {
          done();
          reject(e);
        };
      }
      this.jobs.set(job.id, job);
      this.queue.push(job);
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of [...this.jobs.values()]) this.fail(job, new RepoError('repository closed', 'NJ_REPO_CLOSED'));
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    this.workers.length = 0;
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let w = this.workers.reduce<PoolWorker | undefined>((best, x) => (!best || x.jobs.size < best.jobs.size ? x : best), undefined);
      if ((!w || w.jobs.size > 0) && this.workers.length < this.opts.workers) w = this.spawn();
      if (!w || w.jobs.size >= this.opts.jobsPerWorker) return;
      const job = this.queue.shift()!;
      job.worker = w;
      w.jobs.add(job);
      w.worker.ref();
      const path = new Uint8Array(job.path);
      w.worker.postMessage({ t: 'job', job: job.id, path });
    }
  }

  private spawn(): PoolWorker {
    const worker = new Worker(new URL('./chunk-worker.js', import.meta.url), {
      workerData: {
        encKey: new Uint8Array(this.opts.encKey),
        idKey: new Uint8Array(this.opts.idKey),
        gear: this.opts.gear,
        params: this.opts.params,
        window: this.opts.window,
      },
    });
    const pw: PoolWorker = { worker, jobs: new Set() };
    worker.on('message', (m: WorkerMessage) => this.onMessage(pw, m));
    const die = (err: unknown) => {
      const i = this.workers.indexOf(pw);
      if (i >= 0) this.workers.splice(i, 1);
      for (const job of [...pw.jobs]) this.fail(job, new RepoError(`chunk worker failed: ${String(err)}`, 'NJ_REPO_WORKER', { cause: err }));
      if (!this.closed) this.dispatch();
    };
    worker.on('error', die);
    worker.on('exit', (code) => {
      if (!this.closed) die(new Error(`exited with code ${code}`));
    });
    worker.unref();
    this.workers.push(pw);
    return pw;
  }

  private onMessage(pw: PoolWorker, m: WorkerMessage): void {
    const job = this.jobs.get(m.job);
    if (!job || job.finished) return;
    switch (m.t) {
      case 'chunk':
        job.chain = job.chain.then(async () => {
          if (job.finished) return;
          const need = await job.handlers.chunk(m.seq, m.id, m.raw);
          if (!job.finished) pw.worker.postMessage({ t: 'need', job: job.id, seq: m.seq, need });
        });
        break;
      case 'blob':
        job.chain = job.chain.then(async () => {
          if (!job.finished) await job.handlers.blob(m.seq, Buffer.from(m.data), m.raw, m.compressed);
        });
        break;
      case 'done':
        job.chain.then(() => this.finish(job, { bytesRead: m.bytesRead, changed: m.changed }));
        break;
      case 'error': {
        const err: NodeJS.ErrnoException = new Error(m.message);
        if (m.code) err.code = m.code;
        if (m.errno !== undefined) err.errno = m.errno;
        if (m.syscall) err.syscall = m.syscall;
        err.path = job.path.toString();
        this.fail(job, err);
        break;
      }
    }
    job.chain = job.chain.catch((err) => this.fail(job, err));
  }

  private finish(job: Job, r: FileJobResult): void {
    if (job.finished) return;
    this.release(job);
    job.resolve(r);
  }

  private fail(job: Job, err: unknown): void {
    if (job.finished) return;
    if (job.worker) job.worker.worker.postMessage({ t: 'cancel', job: job.id });
    const qi = this.queue.indexOf(job);
    if (qi >= 0) this.queue.splice(qi, 1);
    this.release(job);
    job.reject(err);
  }

  private release(job: Job): void {
    job.finished = true;
    this.jobs.delete(job.id);
    job.worker?.jobs.delete(job);
    if (job.worker && job.worker.jobs.size === 0) job.worker.worker.unref();
    if (!this.closed) this.dispatch();
  }
}

type WorkerMessage =
  | { t: 'chunk'; job: number; seq: number; id: string; raw: number }
  | { t: 'blob'; job: number; seq: number; data: ArrayBuffer; raw: number; compressed: boolean }
  | { t: 'done'; job: number; bytesRead: number; changed: boolean }
  | { t: 'error'; job: number; code?: string; message: string; errno?: number; syscall?: string };

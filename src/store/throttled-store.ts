import { stat } from 'node:fs/promises';
import { payFor, type ByteRange, type FileSpool, type ObjectInfo, type Store, type WriteOptions, type WritePacer } from './store.js';
import type { TokenBucket } from './token-bucket.js';

/** Slice size when no limit is in force (pacing then only counts bytes). */
const UNLIMITED_SLICE_BYTES = 256 * 1024;

/**
 * What a throttled store asks before and while it sends: a WritePacer (slice size and
 * `take`) plus optional hooks. The bandwidth manager (src/node/bandwidth.ts) makes one
 * per run; `chainThrottle` is the plain chain of buckets.
 */
export interface UploadThrottle extends WritePacer {
  /**
   * Awaited before a write sends anything (the budget check: it may wait until a spent
   * budget renews, or reject when the run is stopped). Not called for reads or deletes.
   */
  beforeWrite?(name: string, size: number): Promise<void>;
  /** Called once when the store is closed (unregisters the run). */
  close?(): void;
}

/**
 * A throttle over a chain of token buckets (node-wide, per target, per job; pass the most
 * specific first). Every slice takes its bytes from each bucket in order, so the
 * effective limit is the lowest in force and bytes count against every level.
 * Concurrent writers sharing a bucket are served first come, first served slice by
 * slice (TokenBucket.take), which shares the node limit fairly between jobs. Slices are
 * the smallest `sliceBytes()` of the limited buckets (20 ms of the lowest rate).
 * `buckets` is called per slice, so the chain may change; `onSent` is told each slice's
 * bytes once every bucket let them through; `signal` aborts waiting.
 */
export function chainThrottle(
  buckets: () => readonly TokenBucket[],
  opts: { signal?: AbortSignal; onSent?: (bytes: number) => void } = {},
): UploadThrottle {
  return {
    sliceBytes() {
      let slice = Infinity;
      for (const b of buckets()) if (b.bytesPerSecond !== null) slice = Math.min(slice, b.sliceBytes());
      return slice === Infinity ? UNLIMITED_SLICE_BYTES : slice;
    },
    async take(bytes) {
      for (const b of buckets()) await b.take(bytes, opts.signal);
      opts.onSent?.(bytes);
    },
  };
}

/**
 * A Store decorator that throttles uploads: each `write` runs `throttle.beforeWrite`,
 * then passes the throttle as `opts.pace` to the inner store, which sends the body in
 * slices of at most `sliceBytes()` and awaits `take(n)` before each (local, node and S3
 * stores do; the retry decorator passes it through, so retried attempts are paced too).
 * Smooth, not bursty: the bytes reach the wire as they are allowed, never in one burst
 * after a long wait. A store that ignores `pace` (the memory store) is paced after the
 * fact: the bytes it did not take are taken, in slices, once it returns, so the long-run
 * rate holds anyway. Reads, listings and deletes are not throttled. `close` closes the
 * inner store, then calls `throttle.close`.
 */
export function throttleStore(inner: Store, throttle: UploadThrottle): Store {
  /** The throttle, then the caller's own pacer; counts what went through. */
  const pacer = (outer: WritePacer | undefined) => {
    const p = {
      taken: 0,
      sliceBytes: () => Math.min(throttle.sliceBytes(), outer?.sliceBytes() ?? Infinity),
      async take(bytes: number) {
        await throttle.take(bytes);
        await outer?.take(bytes);
        p.taken += bytes;
      },
    };
    return p;
  };
  const spool: FileSpool | undefined = inner.spool && {
    dir: inner.spool.dir,
    // The file is on the store's disk already: its bytes are paid for, then it is published.
    async adopt(name: string, file: string, opts?: WriteOptions): Promise<void> {
      const size = (await stat(file)).size;
      await throttle.beforeWrite?.(name, size);
      await payFor(pacer(opts?.pace), size);
      const { pace: _paid, ...rest } = opts ?? {};
      void _paid;
      await inner.spool!.adopt(name, file, rest);
    },
    cleanup: (olderThan: Date) => inner.spool!.cleanup(olderThan),
  };
  return {
    location: inner.location,
    list: (prefix: string): AsyncIterable<ObjectInfo> => inner.list(prefix),
    stat: (name: string) => inner.stat(name),
    read: (name: string, range?: ByteRange) => inner.read(name, range),
    async write(name: string, data: Buffer, opts?: WriteOptions): Promise<void> {
      await throttle.beforeWrite?.(name, data.length);
      const pace = pacer(opts?.pace);
      await inner.write(name, data, { ...opts, pace });
      // The inner store did not pace (or not all of it): pay for the rest now.
      await payFor(pace, data.length - pace.taken);
    },
    ...(spool ? { spool } : {}),
    delete: (name: string) => inner.delete(name),
    async close(): Promise<void> {
      try {
        await inner.close();
      } finally {
        throttle.close?.();
      }
    },
  };
}

import { abortError, type Clock } from '../node/clock.js';
import { ObjectExistsError, StoreError, type ByteRange, type ObjectInfo, type Store, type WriteOptions } from './store.js';

export interface RetryOptions {
  readonly clock: Clock;
  /** Attempts per call, the first included (default 6). */
  readonly maxAttempts?: number;
  /** First backoff; doubles per attempt (default 500 ms). */
  readonly baseDelayMs?: number;
  /** Cap on one backoff (default 30 s). */
  readonly maxDelayMs?: number;
  /** Give up when the next wait would end later than this after the first attempt (default 10 min). */
  readonly maxElapsedMs?: number;
  /** Source of randomness for jitter, in [0, 1) (tests pass a fixed one). */
  readonly random?: () => number;
  /** Called before each wait, e.g. to show "waiting for peer". */
  readonly onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Aborts waiting between attempts. */
  readonly signal?: AbortSignal;
}

/**
 * True when retrying the same call might succeed: a StoreError that is not permanent,
 * or a plain network error. Anything else (a bug, a permanent store error) is final.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof StoreError) return !err.permanent;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && TRANSIENT_CODES.has(code);
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** True when `name` holds exactly `data` (a write that landed although its answer was lost). */
async function landedIntact(store: Store, name: string, data: Buffer): Promise<boolean> {
  const sameContent = (err: unknown) => (err as { sameContent?: boolean }).sameContent;
  try {
    const info = await store.stat(name);
    if (!info || info.size !== data.length) return false;
    return (await store.read(name)).equals(data);
  } catch (err) {
    return sameContent(err) === true;
  }
}

/**
 * Wraps a store so transient failures are retried with exponential backoff and full
 * jitter (AWS's advice: spreads retries of many clients). A store error may carry
 * `retryAfterMs` (from a Retry-After header); the wait is then at least that. Permanent
 * errors pass through at once. `write` is safe to retry: when an attempt whose answer was
 * lost did land, the retry finds the object, reads it back and succeeds if it holds
 * exactly our bytes (ObjectExistsError otherwise, as without the decorator).
 * `list` restarts from scratch on failure, so a retried listing may repeat no entries.
 */
export function withRetry(store: Store, opts: RetryOptions): Store {
  const maxAttempts = opts.maxAttempts ?? 6;
  const baseDelayMs = opts.baseDelayMs ?? 500;
  const maxDelayMs = opts.maxDelayMs ?? 30_000;
  const maxElapsedMs = opts.maxElapsedMs ?? 10 * 60_000;
  const random = opts.random ?? Math.random;

  async function attempt<T>(op: () => Promise<T>): Promise<T> {
    const startedMs = opts.clock.nowMs();
    for (let n = 1; ; n++) {
      try {
        return await op();
      } catch (err) {
        if (!isTransient(err) || n >= maxAttempts) throw err;
        const backoff = Math.min(maxDelayMs, baseDelayMs * 2 ** (n - 1));
        const retryAfter = (err as { retryAfterMs?: number }).retryAfterMs ?? 0;
        const delayMs = Math.max(retryAfter, Math.round(random() * backoff));
        if (opts.clock.nowMs() + delayMs - startedMs > maxElapsedMs) throw err;
        opts.onRetry?.(err, n, delayMs);
        if (opts.signal?.aborted) throw abortError(opts.signal);
        await opts.clock.sleep(delayMs, opts.signal);
      }
    }
  }

  return {
    location: store.location,
    list(prefix: string): AsyncIterable<ObjectInfo> {
      return {
        async *[Symbol.asyncIterator]() {
          // Collect first so a failure halfway restarts cleanly instead of yielding twice.
          const all = await attempt(async () => {
            const items: ObjectInfo[] = [];
            for await (const item of store.list(prefix)) items.push(item);
            return items;
          });
          yield* all;
        },
      };
    },
    stat: (name) => attempt(() => store.stat(name)),
    read: (name, range?: ByteRange) => attempt(() => store.read(name, range)),
    write: (name, data, writeOpts?: WriteOptions) => {
      let failedBefore = false;
      return attempt(async () => {
        try {
          await store.write(name, data, writeOpts); // each attempt is paced again
        } catch (err) {
          // An attempt that failed in transit may still have landed: then the retry finds
          // the object. It is our write when its bytes are ours.
          if (failedBefore && err instanceof ObjectExistsError && (await landedIntact(store, name, data))) return;
          failedBefore ||= isTransient(err);
          throw err;
        }
      });
    },
    delete: (name) => attempt(() => store.delete(name)),
    close: () => store.close(),
  };
}

/**
 * The only place that reads the wall clock. Everything else receives a Clock, so tests
 * can live through weeks of schedule in milliseconds (see test/helpers/fake-clock.ts).
 * `scripts/lint.mjs` rejects `Date.now()` and bare `new Date()` anywhere else.
 */
export interface Clock {
  /** The current time. */
  now(): Date;
  /** Milliseconds since the epoch; same instant as now(). */
  nowMs(): number;
  /**
   * Resolves after `ms` milliseconds of this clock's time, or rejects with an AbortError
   * when `signal` aborts first. Callers that wait for long must sleep in slices
   * (at most 30 s) and re-read now() afterwards: a suspended laptop stops timers.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Real time. */
export const systemClock: Clock = {
  now: () => new Date(),
  nowMs: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal));
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, Math.max(0, ms));
      const onAbort = () => {
        clearTimeout(timer);
        reject(abortError(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const err = new Error('The operation was aborted');
  err.name = 'AbortError';
  return err;
}

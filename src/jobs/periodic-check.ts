import type { Clock } from '../node/clock.js';

/** A check that runs now and then every interval until stopped. */
export interface PeriodicCheck {
  /** Runs the check now (queued behind a running one); resolves when it has run. */
  checkNow(): Promise<void>;
  /** Stops the loop and waits for a running check to end. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs `check` at once and then every `intervalMs` of `clock` time, never two at a time,
 * until stop(), which aborts `stopper` (pass your own when the check needs its signal).
 * `check` must not throw: it reports its own errors. Used by the node's watches (overdue
 * alerts, verify and prune).
 */
export function startPeriodicCheck(
  clock: Clock,
  intervalMs: number,
  check: () => Promise<void>,
  stopper: AbortController = new AbortController(),
): PeriodicCheck {
  let chain: Promise<void> = Promise.resolve();
  const checkNow = () => (chain = chain.then(check, check));
  const loop = (async () => {
    while (!stopper.signal.aborted) {
      await checkNow();
      try {
        await clock.sleep(intervalMs, stopper.signal);
      } catch {
        return;
      }
    }
  })();
  return {
    checkNow,
    async stop() {
      stopper.abort();
      await loop;
      await chain.catch(() => {});
    },
  };
}

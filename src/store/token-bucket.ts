import { abortError, type Clock } from '../node/clock.js';

interface Waiter {
  readonly bytes: number;
  resolve(): void;
}

/** Longest single sleep of the queue; a rate change wakes it earlier anyway. */
const MAX_SLEEP_MS = 1000;

/**
 * Smallest burst allowance, in bytes: at very low rates a bucket still lets one small
 * slice through without waiting.
 */
const MIN_BURST_BYTES = 1024;
/**
 * Burst allowance as a share of one second's rate. 15 ms keeps any 100 ms window within
 * 1.15× the limit (100 ms of rate + 15 ms of burst), under the 1.2× that "smooth" means
 * here, with room for the socket's own bunching: a line shared with video calls never
 * sees a saturating burst (kopia#2665). Slices are half the burst, so a timer that
 * fires late by up to half a burst (7 ms) loses no tokens and the long-run rate stays
 * exact.
 */
const BURST_SECONDS = 0.015;

/**
 * A token bucket for upload bytes. Time comes from the injected clock, so
 * `takeDuration(n)` tells exactly how long a caller must wait without sleeping (kopia's
 * TokenBucket design). Tokens may go negative: a large take is granted at once and
 * paid back by the callers after it, which keeps the long-run rate exact; callers that
 * want smoothness take in slices of at most `sliceBytes()`.
 *
 * Not thread-safe across workers; one instance per limit per process. Rate changes
 * (setRate) apply from the moment they are made, also to callers already waiting in
 * take() (they are re-timed at once).
 */
export class TokenBucket {
  private tokens: number;
  private lastRefillMs: number;
  private rate: number | null;
  private readonly queue: Waiter[] = [];
  private pumping = false;
  private wake: AbortController | null = null;

  /** `bytesPerSecond: null` = no limit. */
  constructor(
    private readonly clock: Clock,
    bytesPerSecond: number | null,
  ) {
    this.rate = bytesPerSecond;
    this.tokens = this.capacity();
    this.lastRefillMs = clock.nowMs();
  }

  /** The limit in force (bytes per second), or null for none. */
  get bytesPerSecond(): number | null {
    return this.rate;
  }

  /** Changes the limit; accumulated tokens are capped to the new burst size. */
  setRate(bytesPerSecond: number | null): void {
    this.refill();
    if (bytesPerSecond === this.rate) return;
    this.rate = bytesPerSecond;
    this.tokens = Math.min(this.tokens, this.capacity());
    this.wake?.abort();
  }

  /** A slice size that keeps sends smooth at the current rate: half the burst (at least MIN_BURST_BYTES). */
  sliceBytes(): number {
    return this.rate === null ? 1024 * 1024 : Math.max(MIN_BURST_BYTES, Math.floor(this.capacity() / 2));
  }

  /** The burst allowance in bytes (tokens saved up at most); Infinity without a limit. */
  burstBytes(): number {
    return this.capacity();
  }

  /**
   * Takes `bytes` tokens and returns how many milliseconds the caller must wait before
   * sending them (0 when it may send now). Never sleeps.
   */
  takeDuration(bytes: number): number {
    if (this.rate === null) return 0;
    this.refill();
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.rate) * 1000);
  }

  /**
   * Waits until `bytes` may be sent, then takes them. Callers are served first come,
   * first served (concurrent writers sharing this bucket alternate slice by slice); a
   * caller is let through once the tokens cover min(bytes, burst), so a take larger than
   * the burst leaves a debt paid by the callers after it. A rate change (setRate) wakes
   * the queue at once and applies to every caller still waiting. Rejects with the
   * signal's reason when `signal` aborts while waiting (nothing is taken then).
   */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.queue.length === 0) {
      this.refill();
      if (this.rate === null || this.tokens >= Math.min(bytes, this.capacity())) {
        this.tokens -= this.rate === null ? 0 : bytes;
        return Promise.resolve();
      }
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        reject(abortError(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
      if (!this.pumping) void this.pump();
    });
  }

  /** Number of callers waiting in take(). */
  get waiting(): number {
    return this.queue.length;
  }

  /** Serves the queue in order, sleeping until the head's tokens are there. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length > 0) {
        this.refill();
        const head = this.queue[0]!;
        if (this.rate === null || this.tokens >= Math.min(head.bytes, this.capacity())) {
          if (this.rate !== null) this.tokens -= head.bytes;
          this.queue.shift();
          head.resolve();
          continue;
        }
        const needMs = Math.ceil(((Math.min(head.bytes, this.capacity()) - this.tokens) / this.rate) * 1000);
        this.wake = new AbortController();
        try {
          await this.clock.sleep(Math.max(1, Math.min(needMs, MAX_SLEEP_MS)), this.wake.signal);
        } catch {
          // Woken by setRate: re-evaluate at the new rate.
        }
        this.wake = null;
      }
    } finally {
      this.pumping = false;
    }
  }

  private capacity(): number {
    return this.rate === null ? Infinity : Math.max(MIN_BURST_BYTES, this.rate * BURST_SECONDS);
  }

  private refill(): void {
    const now = this.clock.nowMs();
    const elapsedMs = Math.max(0, now - this.lastRefillMs);
    this.lastRefillMs = now;
    if (this.rate !== null) this.tokens = Math.min(this.capacity(), this.tokens + (elapsedMs / 1000) * this.rate);
  }
}

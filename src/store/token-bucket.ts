import type { Clock } from '../node/clock.js';

/**
 * Smallest burst allowance, in bytes: at very low rates a bucket still lets one small
 * slice through without waiting.
 */
const MIN_BURST_BYTES = 1024;
/**
 * Burst allowance as a share of one second's rate. 20 ms keeps any 100 ms window within
 * 1.2× the limit (100 ms of rate + 20 ms of burst), which is what "smooth" means here:
 * a line shared with video calls never sees a saturating burst (kopia#2665).
 */
const BURST_SECONDS = 0.02;

/**
 * A token bucket for upload bytes. Time comes from the injected clock, so
 * `takeDuration(n)` tells exactly how long a caller must wait without sleeping (kopia's
 * TokenBucket design). Tokens may go negative: a large take is granted at once and
 * paid back by the callers after it, which keeps the long-run rate exact; callers that
 * want smoothness take in slices of at most `sliceBytes()`.
 *
 * Not thread-safe across workers; one instance per limit per process. Rate changes
 * (setRate) apply from the moment they are made, also to callers already waiting once
 * they take again.
 */
export class TokenBucket {
  private tokens: number;
  private lastRefillMs: number;
  private rate: number | null;

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
    this.rate = bytesPerSecond;
    this.tokens = Math.min(this.tokens, this.capacity());
  }

  /** A slice size that keeps sends smooth at the current rate. */
  sliceBytes(): number {
    return this.rate === null ? 1024 * 1024 : Math.max(MIN_BURST_BYTES, Math.floor(this.capacity()));
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

  /** Takes `bytes` tokens and sleeps as long as needed. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const waitMs = this.takeDuration(bytes);
    if (waitMs > 0) await this.clock.sleep(waitMs, signal);
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

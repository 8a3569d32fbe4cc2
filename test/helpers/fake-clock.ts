import { abortError, type Clock } from '../../src/node/clock.js';

interface Sleeper {
  wakeAtMs: number;
  seq: number;
  resolve: () => void;
}

/**
 * A clock that only moves when a test says so. `advance(ms)` moves time forward and
 * wakes every sleeper whose time has come, in order of wake time, letting each one's
 * continuation run (microtasks and a macrotask turn) before moving further.
 */
export class FakeClock implements Clock {
  private ms: number;
  private sleepers: Sleeper[] = [];
  private seq = 0;

  constructor(start: Date | string | number) {
    this.ms = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.ms);
  }

  nowMs(): number {
    return this.ms;
  }

  /** Number of pending sleepers (useful to wait until code under test is parked). */
  get pendingSleepers(): number {
    return this.sleepers.length;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal));
      const sleeper: Sleeper = { wakeAtMs: this.ms + Math.max(0, ms), seq: this.seq++, resolve: () => {} };
      const onAbort = () => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper);
        reject(abortError(signal!));
      };
      sleeper.resolve = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.sleepers.push(sleeper);
    });
  }

  /** Moves time forward by `ms`, waking sleepers in order as their time comes. */
  async advance(ms: number): Promise<void> {
    const target = this.ms + ms;
    for (;;) {
      await settle();
      const due = this.sleepers
        .filter((s) => s.wakeAtMs <= target)
        .sort((a, b) => a.wakeAtMs - b.wakeAtMs || a.seq - b.seq)[0];
      if (!due) break;
      this.sleepers = this.sleepers.filter((s) => s !== due);
      this.ms = Math.max(this.ms, due.wakeAtMs);
      due.resolve();
    }
    this.ms = target;
    await settle();
  }

  /** Jumps to an absolute time (never backwards). */
  async advanceTo(at: Date | string | number): Promise<void> {
    await this.advance(Math.max(0, new Date(at).getTime() - this.ms));
  }
}

/** Lets pending promise continuations and one macrotask turn run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

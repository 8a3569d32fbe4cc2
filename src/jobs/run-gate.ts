/**
 * The gate a run awaits at every chunk boundary (restic's `Freeze()`): while it is closed,
 * no new read or upload starts. p-queue's `pause()` only stops new tasks from being taken;
 * running ones carry on, so pause and suspend need this.
 *
 * The gate is closed while at least one reason holds it (`window closed`, `paused by
 * owner`, `budget spent`): the scheduler closes and opens each reason independently, so
 * the owner resuming a run does not reopen a closed window and vice versa.
 */
import { abortError } from '../node/clock.js';

export class RunGate {
  private readonly reasonSet = new Set<string>();
  /** Parked callers; `ignore` lists reasons that do not hold that caller. */
  private waiters: Array<{ ignore: ReadonlySet<string> | null; done: () => void }> = [];
  private readonly listeners = new Set<(open: boolean) => void>();

  /** Closes the gate for `reason` (idempotent per reason). */
  close(reason: string): void {
    const was = this.isOpen;
    this.reasonSet.add(reason);
    if (was) this.emit(false);
  }

  /** True when no reason holds the gate apart from those in `ignore`. */
  isOpenIgnoring(ignore: Iterable<string>): boolean {
    const skip = new Set(ignore);
    for (const r of this.reasonSet) if (!skip.has(r)) return false;
    return true;
  }

  /**
   * Removes `reason`, or every reason when none is given; when no reason is left the gate
   * opens and every parked `wait()` resolves.
   */
  open(reason?: string): void {
    if (this.reasonSet.size === 0) return;
    if (reason === undefined) this.reasonSet.clear();
    else this.reasonSet.delete(reason);
    // Callers that ignore some reasons may be let through while the gate stays closed.
    const go = this.waiters.filter((w) => (w.ignore ? this.isOpenIgnoring(w.ignore) : this.isOpen));
    if (go.length > 0) {
      this.waiters = this.waiters.filter((w) => !go.includes(w));
      for (const w of go) w.done();
    }
    if (this.isOpen) this.emit(true);
  }

  /** True when no reason holds the gate. */
  get isOpen(): boolean {
    return this.reasonSet.size === 0;
  }

  /** The reasons currently holding the gate, in the order they were added. */
  get reasons(): string[] {
    return [...this.reasonSet];
  }

  /**
   * Resolves at once when open, else when the gate opens. Rejects with the signal's reason
   * (an AbortError) when `signal` aborts first, so a cancelled suspended run ends promptly.
   * With `ignore`, the reasons listed do not hold this caller (a finish_file run's chunk
   * boundaries ignore the window, so a started file finishes).
   */
  wait(signal?: AbortSignal, ignore?: Iterable<string>): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const skip = ignore ? new Set(ignore) : null;
    if (skip ? this.isOpenIgnoring(skip) : this.isOpen) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(abortError(signal!));
      };
      const waiter = {
        ignore: skip,
        done: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Number of callers parked in `wait()` (tests and status use it). */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Calls `fn(open)` whenever the gate opens or closes; returns an unsubscribe function. */
  onChange(fn: (open: boolean) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(open: boolean): void {
    for (const fn of this.listeners) {
      try {
        fn(open);
      } catch {
        // A listener's failure must not break the gate.
      }
    }
  }
}

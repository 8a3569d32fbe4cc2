import type { Clock } from '../node/clock.js';
import type { BandwidthControls, BandwidthLimitStatus } from './controls.js';
import type { NodeStatus } from './status.js';
import { liveView, type LiveView, type NodeFigures } from './views.js';

/** Samples older than this are forgotten; the rate is the average over what is left. */
const RATE_WINDOW_MS = 5_000;

/**
 * Per-job send rate from successive byte counters (bytes sent so far in the current run).
 * A counter that goes down is a new run: its history is dropped. Not thread-safe (one event loop).
 */
export class RateTracker {
  private samples = new Map<string, Array<{ at: number; bytes: number }>>();

  record(nowMs: number, job: string, bytes: number | null): void {
    if (bytes === null) {
      this.samples.delete(job);
      return;
    }
    let list = this.samples.get(job) ?? [];
    const last = list[list.length - 1];
    if (last && bytes < last.bytes) list = [];
    if (!last || nowMs > last.at) list.push({ at: nowMs, bytes });
    while (list.length > 2 && list[0]!.at < nowMs - RATE_WINDOW_MS) list.shift();
    this.samples.set(job, list);
  }

  /** Bytes/s over the recent samples; undefined until two samples a second apart exist. */
  rate(job: string): number | undefined {
    const list = this.samples.get(job);
    if (!list || list.length < 2) return undefined;
    const a = list[0]!;
    const b = list[list.length - 1]!;
    if (b.at - a.at < 900) return undefined;
    return ((b.bytes - a.bytes) * 1000) / (b.at - a.at);
  }

  rates(): Map<string, number> {
    const out = new Map<string, number>();
    for (const job of this.samples.keys()) {
      const r = this.rate(job);
      if (r !== undefined) out.set(job, r);
    }
    return out;
  }
}

/** One published snapshot of the node: the raw status and the formatted live view. */
export interface LiveUpdate {
  readonly status: NodeStatus;
  readonly view: LiveView;
  /** Every bandwidth limit (empty without bandwidth controls). */
  readonly limits: readonly BandwidthLimitStatus[];
}

/**
 * Polls the node's status once per interval while at least one event stream listens, and
 * hands every listener the same update (one status build per tick however many tabs are
 * open). Pages call `current()` for a fresh update, which also feeds the rate tracker.
 */
export class LiveHub {
  private readonly listeners = new Set<(u: LiveUpdate) => void>();
  private timer: NodeJS.Timeout | null = null;
  private readonly rates = new RateTracker();
  /** Start of each job's live run, kept while it is paused or suspended (no live progress then). */
  private readonly runStarts = new Map<string, string>();

  constructor(
    private readonly opts: {
      clock: Clock;
      status: () => Promise<NodeStatus>;
      bandwidth?: BandwidthControls | undefined;
      intervalMs: number;
    },
  ) {}

  get size(): number {
    return this.listeners.size;
  }

  async current(): Promise<LiveUpdate> {
    const status = await this.opts.status();
    const nowMs = this.opts.clock.nowMs();
    const sent = await this.sentThisRun(status);
    for (const j of status.jobs) this.rates.record(nowMs, j.name, j.progress ? (sent.get(j.name) ?? j.progress.bytesWritten) : null);
    const rates = this.rates.rates();
    let figures: NodeFigures = { rate: [...rates.values()].reduce((a, b) => a + b, 0), limit: undefined, limits: [] };
    if (this.opts.bandwidth) {
      try {
        const bw = await this.opts.bandwidth.status();
        const node = bw.limits.find((l) => l.scope.kind === 'node');
        figures = { rate: bw.currentBytesPerSecond, limit: node ? node.effectiveBytesPerSecond : null, limits: bw.limits };
      } catch {
        // Bandwidth figures are extra; the status is still worth sending.
      }
    }
    return { status, view: liveView(status, rates, figures, sent), limits: figures.limits };
  }

  /**
   * Bytes each running job has really sent since its run started, from the bandwidth
   * accounting (the throttled store counts what leaves); empty without bandwidth controls,
   * and the run's written-bytes counter is shown instead.
   */
  private async sentThisRun(status: NodeStatus): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const bw = this.opts.bandwidth;
    if (!bw) return out;
    for (const j of status.jobs) {
      if (j.progress?.startedAt) this.runStarts.set(j.name, j.progress.startedAt);
      else if (!j.paused && j.state !== 'suspended') this.runStarts.delete(j.name);
      const since = this.runStarts.get(j.name);
      if (since === undefined) continue;
      try {
        // Usage is accounted in whole minutes: count from the minute the run started in.
        const points = await bw.usage({ since: new Date(Math.floor(Date.parse(since) / 60_000) * 60_000), job: j.name, bucketMs: 86_400_000 });
        out.set(j.name, points.reduce((a, p) => a + p.bytes, 0));
      } catch {
        // Fall back to the run's own counter.
      }
    }
    return out;
  }

  /** Adds a listener; the returned function removes it. The first listener starts polling. */
  subscribe(listener: (u: LiveUpdate) => void): () => void {
    this.listeners.add(listener);
    if (!this.timer) this.schedule();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.timer) {
        clearTimeout(this.timer);
        this.timer = null;
      }
    };
  }

  /** Stops polling and forgets every listener (node stop). */
  close(): void {
    this.listeners.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    // setTimeout, not the Clock: this paces network writes, not schedule decisions.
    this.timer = setTimeout(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.listeners.size === 0) {
      this.timer = null;
      return;
    }
    try {
      const update = await this.current();
      for (const l of this.listeners) l(update);
    } catch {
      // A failed status build is retried at the next tick.
    }
    if (this.listeners.size > 0) this.schedule();
    else this.timer = null;
  }
}
